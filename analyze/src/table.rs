//! Plain-text tables with aligned columns.
//!
//! [`Table`] holds all rows and sizes each column to fit. [`StreamingTable`] is for output that
//! may be long: it sizes its columns from the first block of rows, then writes every later row as
//! it comes (a wider cell pushes the rest of its line over rather than holding output back).

use std::{
    borrow::Cow,
    io::{self, Write},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A column: its header and how its cells align.
#[derive(Clone, Debug)]
pub struct Column {
    pub header: Cow<'static, str>,
    pub align: Align,
}

impl Column {
    pub const fn left(header: &'static str) -> Self {
        Self {
            header: Cow::Borrowed(header),
            align: Align::Left,
        }
    }

    pub const fn right(header: &'static str) -> Self {
        Self {
            header: Cow::Borrowed(header),
            align: Align::Right,
        }
    }

    /// A column whose header is known only at run time (e.g. from a query).
    pub fn new(header: String, align: Align) -> Self {
        Self {
            header: Cow::Owned(header),
            align,
        }
    }
}

const GAP: &str = "  ";

fn width(cell: &str) -> usize {
    visible(cell).chars().count()
}

/// `text` safe to print on a terminal: every control character (a traced process can put escape
/// sequences in its name or a file's) shown as a visible escape such as `\u{1b}` or `\n`. The
/// one place where untrusted text is made printable: tables, fields and error lines use it.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().collect()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `cell` padded with blanks to `width` characters, on the left or the right (by hand: the
/// formatter's width is limited to 65,535, and a cell from a file may be wider).
fn pad(line: &mut String, cell: &str, width: usize, align: Align) {
    let fill = width.saturating_sub(cell.chars().count());
    if align == Align::Right {
        line.extend(std::iter::repeat_n(' ', fill));
    }
    line.push_str(cell);
    if align == Align::Left {
        line.extend(std::iter::repeat_n(' ', fill));
    }
}

fn fit(columns: &[Column], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = columns.iter().map(|c| width(&c.header)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    widths
}

fn write_line<S: AsRef<str>>(
    out: &mut impl Write,
    indent: &str,
    columns: &[Column],
    widths: &[usize],
    cells: &[S],
) -> io::Result<()> {
    let mut line = String::from(indent);
    let last = cells.len().saturating_sub(1);
    for (i, cell) in cells.iter().enumerate() {
        let cell = visible(cell.as_ref());
        let w = widths.get(i).copied().unwrap_or(0);
        let align = columns.get(i).map_or(Align::Left, |c| c.align);
        if i > 0 {
            line.push_str(GAP);
        }
        match align {
            // The last column is not padded: no trailing blanks.
            Align::Left if i == last => line.push_str(&cell),
            align => pad(&mut line, &cell, w, align),
        }
    }
    let trimmed = line.trim_end();
    out.write_all(trimmed.as_bytes())?;
    out.write_all(b"\n")
}

/// Writes `lines` as they are, each made [`visible`], without trailing blanks.
fn write_free(out: &mut impl Write, lines: &[String]) -> io::Result<()> {
    for line in lines {
        writeln!(out, "{}", visible(line).trim_end())?;
    }
    Ok(())
}

/// Writes `Label  value` lines, the values aligned after the longest label.
pub fn write_fields(out: &mut impl Write, fields: &[(&str, String)]) -> io::Result<()> {
    let width = fields
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    for (label, value) in fields {
        let mut line = String::new();
        pad(&mut line, label, width, Align::Left);
        writeln!(out, "{line}  {}", visible(value))?;
    }
    Ok(())
}

/// A table that holds all its rows.
#[derive(Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
    /// The free lines under each row ([`Table::push_with_lines`]), by row.
    lines: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[Column]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
            lines: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.push_with_lines(row, Vec::new());
    }

    /// Pushes `row`, and `lines` (not cells: they take no part in the widths) to write under
    /// it, each made [`visible`].
    pub fn push_with_lines(&mut self, row: Vec<String>, lines: Vec<String>) {
        self.rows.push(row);
        self.lines.push(lines);
    }

    /// Writes the header and the rows, each line starting with `indent`.
    pub fn write(&self, out: &mut impl Write, indent: &str) -> io::Result<()> {
        let widths = fit(&self.columns, &self.rows);
        let headers: Vec<&str> = self.columns.iter().map(|c| c.header.as_ref()).collect();
        write_line(out, indent, &self.columns, &widths, &headers)?;
        for (row, lines) in self.rows.iter().zip(&self.lines) {
            write_line(out, indent, &self.columns, &widths, row)?;
            write_free(out, lines)?;
        }
        Ok(())
    }
}

/// A table written as it goes, sized from its first `block` rows.
#[derive(Debug)]
pub struct StreamingTable {
    columns: Vec<Column>,
    block: usize,
    /// Rows held back, each with the free lines written under it.
    pending: Vec<(Vec<String>, Vec<String>)>,
    widths: Option<Vec<usize>>,
}

impl StreamingTable {
    pub fn new(columns: &[Column], block: usize) -> Self {
        Self {
            columns: columns.to_vec(),
            block: block.max(1),
            pending: Vec::new(),
            widths: None,
        }
    }

    pub fn push(&mut self, out: &mut impl Write, row: Vec<String>) -> io::Result<()> {
        self.push_with_lines(out, row, Vec::new())
    }

    /// Pushes `row`, and `lines` (not cells: they take no part in the widths) to write under
    /// it, each made [`visible`].
    pub fn push_with_lines(
        &mut self,
        out: &mut impl Write,
        row: Vec<String>,
        lines: Vec<String>,
    ) -> io::Result<()> {
        match &self.widths {
            Some(widths) => {
                write_line(out, "", &self.columns, widths, &row)?;
                write_free(out, &lines)
            }
            None => {
                self.pending.push((row, lines));
                if self.pending.len() >= self.block {
                    self.start(out)?;
                }
                Ok(())
            }
        }
    }

    /// Writes what is still held back (all of it, for output shorter than one block); a table
    /// without rows writes nothing, not even its header.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.widths.is_none() && !self.pending.is_empty() {
            self.start(out)?;
        }
        Ok(())
    }

    fn start(&mut self, out: &mut impl Write) -> io::Result<()> {
        let rows: Vec<Vec<String>> = self.pending.iter().map(|(row, _)| row.clone()).collect();
        let widths = fit(&self.columns, &rows);
        let headers: Vec<&str> = self.columns.iter().map(|c| c.header.as_ref()).collect();
        write_line(out, "", &self.columns, &widths, &headers)?;
        for (row, lines) in std::mem::take(&mut self.pending) {
            write_line(out, "", &self.columns, &widths, &row)?;
            write_free(out, &lines)?;
        }
        self.widths = Some(widths);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_sent_to_the_terminal() {
        assert_eq!(visible("bash"), "bash");
        assert_eq!(visible("\u{1b}]0;pwned\u{7}"), "\\u{1b}]0;pwned\\u{7}");
        assert_eq!(visible("a\nb\u{9b}c"), "a\\nb\\u{9b}c");
        let mut table = Table::new(&[Column::left("COMM"), Column::right("N")]);
        table.push(vec!["\u{1b}[2J".into(), "1".into()]);
        let mut out = Vec::new();
        table.write(&mut out, "").expect("write");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("\\u{1b}[2J"), "{text:?}");
    }

    #[test]
    fn a_cell_wider_than_the_formatter_allows_is_printed_whole() {
        let wide = "x".repeat(70_000);
        let mut table = Table::new(&[Column::right("A"), Column::left("B"), Column::left("C")]);
        table.push(vec![wide.clone(), wide.clone(), "end".into()]);
        let mut out = Vec::new();
        table.write(&mut out, "").expect("write");
        let mut fields = Vec::new();
        write_fields(&mut fields, &[("Host", wide.clone())]).expect("fields");
        assert!(out.len() > 140_000 && fields.len() > 70_000);
    }

    #[test]
    fn columns_align_and_lines_have_no_trailing_blanks() {
        let mut table = Table::new(&[Column::left("NAME"), Column::right("N"), Column::left("X")]);
        table.push(vec!["a".into(), "1".into(), String::new()]);
        table.push(vec!["long name".into(), "12345".into(), "end".into()]);
        let mut out = Vec::new();
        table.write(&mut out, "  ").expect("write to a Vec");
        let text = String::from_utf8(out).expect("UTF-8");
        assert_eq!(
            text,
            "  NAME           N  X\n  a              1\n  long name  12345  end\n"
        );
    }

    #[test]
    fn streaming_table_sizes_from_first_block() {
        let mut table = StreamingTable::new(&[Column::left("A"), Column::left("B")], 2);
        let mut out = Vec::new();
        table
            .push(&mut out, vec!["xx".into(), "1".into()])
            .expect("push");
        assert!(out.is_empty(), "held back until the block is full");
        table
            .push(&mut out, vec!["yyy".into(), "2".into()])
            .expect("push");
        table
            .push(&mut out, vec!["zzzzz".into(), "3".into()])
            .expect("push");
        table.finish(&mut out).expect("finish");
        let text = String::from_utf8(out).expect("UTF-8");
        assert_eq!(text, "A    B\nxx   1\nyyy  2\nzzzzz  3\n");
    }
}
