//! Command-line pieces shared by the subcommands: the INPUT files, and value parsers whose
//! possible values come from the format crate's own lists (so a system call or row kind added
//! there is offered here, and listed in `--help`, without an edit in the analyzer).

use std::{path::PathBuf, str::FromStr};

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

/// The capture files a command reads.
#[derive(Debug, clap::Args)]
pub struct Inputs {
    /// Capture files written by mmap-recorder (Parquet).
    #[arg(value_name = "INPUT", required = true)]
    pub paths: Vec<PathBuf>,
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
