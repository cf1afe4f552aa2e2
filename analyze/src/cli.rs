//! Command-line pieces shared by the subcommands: the INPUT files, and value parsers whose
//! possible values come from the format crate's own lists (so a system call or row kind added
//! there is offered here, and listed in `--help`, without an edit in the analyzer).

use std::{path::PathBuf, str::FromStr};

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

/// The captures a command reads.
#[derive(Debug, clap::Args)]
pub struct Inputs {
    /// Captures written by mmap-recorder: files, directories of segments (their regular *.parquet
    /// files in name order) or glob patterns (expanded here when the shell left them quoted).
    /// Also `s3://bucket/key`, `s3://bucket/prefix/` (its *.parquet objects, in key order),
    /// `s3://bucket/prefix/*.parquet` (a glob on the keys) and `file:///abs/path`.
    #[arg(value_name = "INPUT", required = true)]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub remote: Remote,
}

/// Where `s3://` inputs are read from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Remote {
    /// The S3 endpoint for s3:// inputs, e.g. http://localhost:9000 for a local MinIO (http://
    /// is allowed then). Without it: AWS_ENDPOINT_URL, else AWS's own. Credentials and region
    /// come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (or
    /// AWS_DEFAULT_REGION); AWS_ALLOW_HTTP=true allows an http:// AWS_ENDPOINT_URL.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

/// A parser that accepts exactly the names in `values` and turns the one given into a `T` with
/// `T`'s `FromStr`: give it the names of a format enum's `ALL` list.
pub fn one_of<T>(
    values: impl IntoIterator<Item = PossibleValue>,
) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    PossibleValuesParser::new(values).try_map(|name| name.parse::<T>())
}

/// Markdown text as help: each paragraph and each list item joined into one line, which clap
/// then wraps to the terminal's width (the text's own line breaks would not fit every width).
pub fn reflow(markdown: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut in_block = false;
    for line in markdown.lines() {
        let text = line.trim_start();
        if text.is_empty() {
            lines.push(String::new());
            in_block = false;
        } else if in_block && !starts_list_item(text) {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(text);
            }
        } else {
            lines.push(line.trim_end().to_owned());
            in_block = true;
        }
    }
    lines.join("\n")
}

/// `- item` or `12. item`.
fn starts_list_item(text: &str) -> bool {
    let after_number = text.trim_start_matches(|c: char| c.is_ascii_digit());
    text.starts_with("- ") || (after_number.len() < text.len() && after_number.starts_with(". "))
}

/// The copy that docs/ANALYZE.md holds of the Markdown file `file` (a path from the repository's
/// root): the text between a marker ending `FILE, verbatim. -->` and a blank line, and
/// `<!-- End of FILE. -->`.
#[cfg(test)]
pub fn copy_in_docs(file: &str) -> Option<&'static str> {
    const DOC: &str = include_str!("../../docs/ANALYZE.md");
    let begin = format!("{file}, verbatim. -->\n\n");
    let end = format!("\n<!-- End of {file}. -->");
    DOC.split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(copy, _)| copy)
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};
    use mmap_format::event::Syscall;

    use super::*;

    fn command() -> Command {
        Command::new("t").arg(
            Arg::new("syscall")
                .long("syscall")
                .value_parser(one_of::<Syscall>(
                    Syscall::ALL.map(|s| PossibleValue::new(s.as_str())),
                )),
        )
    }

    #[test]
    fn reflow_joins_paragraphs_and_list_items() {
        let markdown = "A paragraph\nthat goes on.\n\n1. One\n   item.\n   - a sub\n     item\n   - b\n\n\
                        10. Ten\n";
        assert_eq!(
            reflow(markdown),
            "A paragraph that goes on.\n\n1. One item.\n   - a sub item\n   - b\n\n10. Ten"
        );
    }

    #[test]
    fn every_name_of_the_list_parses_into_its_value() {
        for syscall in Syscall::ALL {
            let matches = command()
                .try_get_matches_from(["t", "--syscall", syscall.as_str()])
                .expect("a known name parses");
            assert_eq!(matches.get_one::<Syscall>("syscall"), Some(&syscall));
        }
        let err = command()
            .try_get_matches_from(["t", "--syscall", "read"])
            .expect_err("an unknown name is refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    }
}
