//! The rows of several captures as one stream, in time order.

use std::{cmp::Reverse, collections::BinaryHeap};

use mmap_format::event::Event;

/// The rows of one source, in its order.
pub type EventIter<'a, E> = Box<dyn Iterator<Item = Result<Event<'static>, E>> + 'a>;

/// Opens a source.
pub type Opener<'a, E> = Box<dyn FnOnce() -> Result<EventIter<'a, E>, E> + 'a>;

/// A source not opened yet: how to open it, and the earliest time any of its rows can have.
pub struct Source<'a, E> {
    /// No row of the source is earlier (`None`: not known, so it is opened first).
    pub start: Option<i64>,
    /// Opens the source (plans and starts its query).
    pub open: Opener<'a, E>,
}

/// The rows of several sources (the files of a capture), each in its own order, as one stream
/// in time order.
///
/// Several sources are merged by entry time (a k-way merge: one row per open source is held in
/// memory). Rows with equal times keep the order of the sources (the inputs on the command
/// line). A source is opened only when the merge reaches its `start`: the segments of a long
/// recording are read one after the other, and a reader that stops early (`--limit`) opens
/// only those it needs. The rows come out as they would if every source were open from the
/// start, since no row of a source is earlier than its `start`.
pub fn merge<'a, E>(sources: Vec<Source<'a, E>>) -> MergedEvents<'a, E> {
    MergedEvents::new(sources)
}

pub struct MergedEvents<'a, E> {
    /// Each source once opened.
    open: Vec<Option<EventIter<'a, E>>>,
    /// The sources not opened yet, the next to open last: (start, index, how to open it).
    waiting: Vec<(i64, usize, Opener<'a, E>)>,
    /// The next row of each source, once read.
    heads: Vec<Option<Event<'static>>>,
    /// (time, source index) of every head that is present; the smallest comes out first.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    /// An error read ahead of time, returned after the row before it.
    pending_error: Option<E>,
    done: bool,
    /// The source of the row returned last.
    last_source: usize,
}

impl<'a, E> MergedEvents<'a, E> {
    fn new(sources: Vec<Source<'a, E>>) -> Self {
        let count = sources.len();
        let mut waiting: Vec<_> = sources
            .into_iter()
            .enumerate()
            .map(|(index, source)| (source.start.unwrap_or(i64::MIN), index, source.open))
            .collect();
        // The next to open (earliest start, then first given) last.
        waiting.sort_by_key(|&(start, index, _)| Reverse((start, index)));
        Self {
            open: (0..count).map(|_| None).collect(),
            waiting,
            heads: (0..count).map(|_| None).collect(),
            heap: BinaryHeap::new(),
            pending_error: None,
            done: false,
            last_source: 0,
        }
    }

    /// The index (in the sources given to [`merge`]) of the source of the row returned last.
    pub fn last_source(&self) -> usize {
        self.last_source
    }

    /// Opens every source whose start the merge has reached (the earliest row held), or the
    /// next one when no row is held.
    fn open_reached(&mut self) -> Result<(), E> {
        loop {
            let frontier = self.heap.peek().map(|Reverse((ts, _))| *ts);
            let reached = self
                .waiting
                .last()
                .is_some_and(|&(start, _, _)| frontier.is_none_or(|ts| start <= ts));
            if !reached {
                return Ok(());
            }
            let Some((_, index, open)) = self.waiting.pop() else {
                return Ok(());
            };
            if let Some(slot) = self.open.get_mut(index) {
                *slot = Some(open()?);
            }
            self.advance(index)?;
        }
    }

    /// Reads the next row of source `index` into its head.
    fn advance(&mut self, index: usize) -> Result<(), E> {
        let Some(Some(source)) = self.open.get_mut(index) else {
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
            None => {
                // Done: its query and buffers go now, not at the end of the merge.
                if let Some(slot) = self.open.get_mut(index) {
                    *slot = None;
                }
                Ok(())
            }
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
        if let Err(err) = self.open_reached() {
            self.done = true;
            return Some(Err(err));
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

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, rc::Rc};

    use super::*;

    fn event(ts_ns: i64, pid: u32) -> Event<'static> {
        Event {
            ts_ns,
            pid,
            ..Event::default()
        }
    }

    /// A source of rows (time, tag) that records in `opened` when it is opened.
    fn source<'a>(
        start: Option<i64>,
        rows: &[(i64, u32)],
        name: u32,
        opened: &Rc<RefCell<Vec<u32>>>,
    ) -> Source<'a, String> {
        let rows: Vec<Event<'static>> = rows.iter().map(|&(ts, pid)| event(ts, pid)).collect();
        let opened = Rc::clone(opened);
        Source {
            start,
            open: Box::new(move || {
                opened.borrow_mut().push(name);
                Ok(Box::new(rows.into_iter().map(Ok)) as EventIter<'a, String>)
            }),
        }
    }

    #[test]
    fn sources_are_merged_by_time_and_opened_only_when_reached() {
        let opened = Rc::new(RefCell::new(Vec::new()));
        let sources = vec![
            source(Some(10), &[(10, 1), (30, 1), (20, 1)], 0, &opened),
            source(Some(25), &[(25, 2), (40, 2)], 1, &opened),
            source(Some(100), &[(100, 3)], 2, &opened),
        ];
        let mut merged = merge(sources);
        let first: Vec<(i64, u32)> = merged
            .by_ref()
            .take(2)
            .map(|e| e.map(|e| (e.ts_ns, e.pid)).expect("row"))
            .collect();
        assert_eq!(first, [(10, 1), (25, 2)]);
        // The third source starts at 100: nothing read so far reached it.
        assert_eq!(*opened.borrow(), [0, 1]);
        let rest: Vec<(i64, u32)> = merged
            .map(|e| e.map(|e| (e.ts_ns, e.pid)).expect("row"))
            .collect();
        // Each source keeps its own order (30 before 20); the merge takes the earliest head.
        assert_eq!(rest, [(30, 1), (20, 1), (40, 2), (100, 3)]);
        assert_eq!(*opened.borrow(), [0, 1, 2]);
    }

    #[test]
    fn equal_times_keep_the_order_of_the_sources_and_unknown_starts_open_first() {
        let opened = Rc::new(RefCell::new(Vec::new()));
        let sources = vec![
            source(Some(5), &[(5, 1)], 0, &opened),
            source(Some(5), &[(5, 2)], 1, &opened),
            source(None, &[(5, 3), (1, 3)], 2, &opened),
        ];
        let rows: Vec<u32> = merge(sources)
            .map(|e| e.map(|e| e.pid).expect("row"))
            .collect();
        assert_eq!(rows, [1, 2, 3, 3]);
        assert_eq!(*opened.borrow(), [2, 0, 1]);
    }

    #[test]
    fn a_source_that_fails_to_open_ends_the_merge_with_its_error() {
        let opened = Rc::new(RefCell::new(Vec::new()));
        let failing: Source<'_, String> = Source {
            start: Some(50),
            open: Box::new(|| Err("damaged".to_owned())),
        };
        let sources = vec![source(Some(1), &[(1, 1), (60, 1)], 0, &opened), failing];
        let rows: Vec<Result<u32, String>> = merge(sources).map(|e| e.map(|e| e.pid)).collect();
        assert_eq!(rows, [Ok(1), Err("damaged".to_owned())]);
    }
}
