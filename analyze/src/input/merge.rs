//! The rows of several captures as one stream, in time order.

use std::{cmp::Reverse, collections::BinaryHeap};

use mmap_format::{FormatError, event::Event, reader::CaptureReader};

type EventIter = Box<dyn Iterator<Item = Result<Event<'static>, FormatError>> + Send>;

/// The rows of all `readers` in time order, streaming.
///
/// Each file is read in its recording order; several files are merged by entry time (a k-way
/// merge: one row per file is held in memory). Rows with equal times keep the order of the
/// inputs on the command line.
pub fn merged_events(readers: &[CaptureReader]) -> Result<MergedEvents, FormatError> {
    let mut sources = Vec::with_capacity(readers.len());
    for reader in readers {
        sources.push(reader.events()?);
    }
    Ok(MergedEvents::new(sources))
}

pub struct MergedEvents {
    sources: Vec<EventIter>,
    /// The next row of each source, once read.
    heads: Vec<Option<Event<'static>>>,
    /// (time, source index) of every head that is present; the smallest comes out first.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    primed: bool,
    /// An error read ahead of time, returned after the row before it.
    pending_error: Option<FormatError>,
    done: bool,
}

impl MergedEvents {
    fn new(sources: Vec<EventIter>) -> Self {
        let heads = sources.iter().map(|_| None).collect();
        Self {
            sources,
            heads,
            heap: BinaryHeap::new(),
            primed: false,
            pending_error: None,
            done: false,
        }
    }

    /// Reads the next row of source `index` into its head.
    fn advance(&mut self, index: usize) -> Result<(), FormatError> {
        let Some(source) = self.sources.get_mut(index) else {
            return Ok(());
        };
        match source.next() {
            Some(Ok(event)) => {
                self.heap.push(Reverse((event.ts_ns, index)));
                if let Some(head) = self.heads.get_mut(index) {
                    *head = Some(event);
                }
                Ok(())
            }
            Some(Err(err)) => Err(err),
            None => Ok(()),
        }
    }
}

impl Iterator for MergedEvents {
    type Item = Result<Event<'static>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(err) = self.pending_error.take() {
            self.done = true;
            return Some(Err(err));
        }
        if !self.primed {
            self.primed = true;
            for index in 0..self.sources.len() {
                if let Err(err) = self.advance(index) {
                    self.done = true;
                    return Some(Err(err));
                }
            }
        }
        let Reverse((_, index)) = self.heap.pop()?;
        let event = self.heads.get_mut(index).and_then(Option::take)?;
        if let Err(err) = self.advance(index) {
            self.pending_error = Some(err);
        }
        Some(Ok(event))
    }
}
