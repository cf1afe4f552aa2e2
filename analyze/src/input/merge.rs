//! The rows of several captures as one stream, in time order.

use std::{cmp::Reverse, collections::BinaryHeap};

use mmap_format::event::Event;

/// The rows of one source, in its order.
type EventIter<'a, E> = Box<dyn Iterator<Item = Result<Event<'static>, E>> + 'a>;

/// The rows of several sources (the files of a capture), each in its own order, as one stream
/// in time order.
///
/// Several sources are merged by entry time (a k-way merge: one row per source is held in
/// memory). Rows with equal times keep the order of the sources (the inputs on the command
/// line).
pub fn merge<'a, E>(sources: Vec<EventIter<'a, E>>) -> MergedEvents<'a, E> {
    MergedEvents::new(sources)
}

pub struct MergedEvents<'a, E> {
    sources: Vec<EventIter<'a, E>>,
    /// The next row of each source, once read.
    heads: Vec<Option<Event<'static>>>,
    /// (time, source index) of every head that is present; the smallest comes out first.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    primed: bool,
    /// An error read ahead of time, returned after the row before it.
    pending_error: Option<E>,
    done: bool,
    /// The source of the row returned last.
    last_source: usize,
}

impl<'a, E> MergedEvents<'a, E> {
    fn new(sources: Vec<EventIter<'a, E>>) -> Self {
        let heads = sources.iter().map(|_| None).collect();
        Self {
            sources,
            heads,
            heap: BinaryHeap::new(),
            primed: false,
            pending_error: None,
            done: false,
            last_source: 0,
        }
    }

    /// The index (in the sources given to [`merge`]) of the source of the row returned last.
    pub fn last_source(&self) -> usize {
        self.last_source
    }

    /// Reads the next row of source `index` into its head.
    fn advance(&mut self, index: usize) -> Result<(), E> {
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

impl<E> Iterator for MergedEvents<'_, E> {
    type Item = Result<Event<'static>, E>;

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
        self.last_source = index;
        if let Err(err) = self.advance(index) {
            self.pending_error = Some(err);
        }
        Some(Ok(event))
    }
}
