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
    cell.chars().count()
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
        let cell = cell.as_ref();
        let w = widths.get(i).copied().unwrap_or(0);
        let align = columns.get(i).map_or(Align::Left, |c| c.align);
        if i > 0 {
            line.push_str(GAP);
        }
        match align {
            Align::Right => line.push_str(&format!("{cell:>w$}")),
            // The last column is not padded: no trailing blanks.
            Align::Left if i == last => line.push_str(cell),
            Align::Left => line.push_str(&format!("{cell:<w$}")),
        }
    }
    let trimmed = line.trim_end();
    out.write_all(trimmed.as_bytes())?;
    out.write_all(b"\n")
}

/// A table that holds all its rows.
#[derive(Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[Column]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Writes the header and the rows, each line starting with `indent`.
    pub fn write(&self, out: &mut impl Write, indent: &str) -> io::Result<()> {
        let widths = fit(&self.columns, &self.rows);
        let headers: Vec<&str> = self.columns.iter().map(|c| c.header.as_ref()).collect();
        write_line(out, indent, &self.columns, &widths, &headers)?;
        for row in &self.rows {
            write_line(out, indent, &self.columns, &widths, row)?;
        }
        Ok(())
    }
}

/// A table written as it goes, sized from its first `block` rows.
#[derive(Debug)]
pub struct StreamingTable {
    columns: Vec<Column>,
    block: usize,
    pending: Vec<Vec<String>>,
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
        match &self.widths {
            Some(widths) => write_line(out, "", &self.columns, widths, &row),
            None => {
                self.pending.push(row);
                if self.pending.len() >= self.block {
                    self.start(out)?;
                }
                Ok(())
            }
        }
    }

    /// Writes what is still held back (all of it, for output shorter than one block).
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.widths.is_none() {
            self.start(out)?;
        }
        Ok(())
    }

    fn start(&mut self, out: &mut impl Write) -> io::Result<()> {
        let widths = fit(&self.columns, &self.pending);
        let headers: Vec<&str> = self.columns.iter().map(|c| c.header.as_ref()).collect();
        write_line(out, "", &self.columns, &widths, &headers)?;
        for row in std::mem::take(&mut self.pending) {
            write_line(out, "", &self.columns, &widths, &row)?;
        }
        self.widths = Some(widths);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
