//! The consumer side of the BPF ring buffer, with its data area mapped once.
//!
//! aya's `RingBuf` maps the data area twice, back to back, so that a record that wraps past the
//! end reads as one slice. The kernel's pages count in the recorder's resident memory as soon as
//! they are mapped, so that costs twice the ring's size (33 MiB for the default 16 MiB ring).
//! Here the data area is mapped once and the few records that wrap are copied out in two pieces.
//!
//! The layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (user space writes
//! it), page 1 the producer position; the data area follows. Each record starts, 8-byte aligned,
//! with an 8-byte header whose first u32 is the length with the BUSY and DISCARD bits; the kernel
//! clears BUSY with a fully ordered exchange when the record is committed.
use std::{
    ops::Range,
    os::fd::{AsFd as _, AsRawFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering},
};

use aya::maps::MapData;

/// Bits of a record header's length word (include/uapi/linux/bpf.h).
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
/// Bytes of a record header.
const HEADER: usize = 8;

/// One mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: libc::c_int, offset: usize) -> std::io::Result<Self> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: a new shared mapping of the map's descriptor; the kernel checks the length,
        // offset and protection against the ring's layout.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::Other))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; nothing borrows it past its owner.
        unsafe { libc::munmap(self.ptr.as_ptr(), self.len) };
    }
}

/// The ring buffer's consumer (one thread reads it).
pub struct Ring {
    /// Keeps the descriptor open while the mappings live.
    map: MapData,
    /// Page 0: the consumer position.
    consumer: Mapping,
    /// Page 1, the producer position, then the data area.
    producer: Mapping,
    page: usize,
    size: usize,
    /// The consumer position, and the bytes of the item handed out last, consumed at the next
    /// call (the item borrows the ring until then).
    pos: usize,
    pending: usize,
    /// A record that wraps, copied out whole.
    wrapped: Vec<u8>,
}

// SAFETY: the mappings are plain shared memory owned by the Ring; the kernel's concurrent writes
// go through the atomics and the BUSY protocol, whatever thread the Ring is on.
unsafe impl Send for Ring {}

impl Ring {
    /// Maps the ring buffer `map` (a BPF_MAP_TYPE_RINGBUF).
    pub fn new(map: MapData) -> std::io::Result<Self> {
        let size = map.info().map_err(std::io::Error::other)?.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::Other))?;
        if !size.is_power_of_two() || size < page {
            return Err(std::io::Error::other(format!(
                "a ring buffer of {size} bytes (not a power of two of at least a page)"
            )));
        }
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + size, libc::PROT_READ, page)?;
        // SAFETY: page 0 of the ring, mapped above, starts with the consumer position (an
        // aligned usize).
        let pos = unsafe { consumer.ptr.cast::<AtomicUsize>().as_ref() }.load(Ordering::Acquire);
        Ok(Self {
            map,
            consumer,
            producer,
            page,
            size,
            pos,
            pending: 0,
            wrapped: Vec::new(),
        })
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: page 0 starts with the consumer position, an aligned usize that lives as long
        // as the mapping (as long as self).
        unsafe { self.consumer.ptr.cast::<AtomicUsize>().as_ref() }
    }

    fn producer_pos(&self) -> &AtomicUsize {
        // SAFETY: as above, for the producer position at the start of page 1.
        unsafe { self.producer.ptr.cast::<AtomicUsize>().as_ref() }
    }

    /// `len` bytes of the data area from `offset` (within it).
    fn data(&self, offset: usize, len: usize) -> &[u8] {
        debug_assert!(offset + len <= self.size);
        // SAFETY: the data area is `size` bytes after the producer page, mapped for as long as
        // self; the kernel does not write the bytes of a committed record until the consumer
        // position passes them, which happens only after the returned slice is no longer used
        // (the next call to `next` takes `&mut self`).
        unsafe {
            std::slice::from_raw_parts(
                self.producer
                    .ptr
                    .as_ptr()
                    .cast::<u8>()
                    .add(self.page + offset),
                len,
            )
        }
    }

    /// The next committed record, or `None` when the ring is empty (or the next record is still
    /// being written). The record handed out before is consumed now.
    pub fn next(&mut self) -> Option<&[u8]> {
        let mask = self.size - 1;
        let pending = std::mem::take(&mut self.pending);
        self.advance(pending);
        loop {
            if self.pos == self.producer_pos().load(Ordering::Acquire) {
                return None;
            }
            let offset = self.pos & mask;
            // SAFETY: records are 8-byte aligned and the size a power of two of at least a page,
            // so the header lies whole inside the data area; its first u32 is written by the
            // kernel with an exchange, read here with Acquire so that the record's bytes are
            // visible once BUSY is clear.
            let header = unsafe {
                (*self
                    .producer
                    .ptr
                    .as_ptr()
                    .cast::<u8>()
                    .add(self.page + offset)
                    .cast::<AtomicU32>())
                .load(Ordering::Acquire)
            };
            if header & BUSY_BIT != 0 {
                return None;
            }
            let len = (header & !(BUSY_BIT | DISCARD_BIT)) as usize;
            if len > self.size - HEADER {
                // Not a header the kernel writes: stop reading rather than read past the ring.
                return None;
            }
            let total = (HEADER + len).next_multiple_of(8);
            if header & DISCARD_BIT != 0 {
                self.advance(total);
                continue;
            }
            self.pending = total;
            let (head, tail) = pieces(offset, len, self.size);
            if tail.is_empty() {
                return Some(self.data(head.start, head.len()));
            }
            let mut wrapped = std::mem::take(&mut self.wrapped);
            wrapped.clear();
            wrapped.extend_from_slice(self.data(head.start, head.len()));
            wrapped.extend_from_slice(self.data(tail.start, tail.len()));
            self.wrapped = wrapped;
            return Some(&self.wrapped);
        }
    }

    /// Consumes `bytes`: the kernel may write over them.
    fn advance(&mut self, bytes: usize) {
        if bytes > 0 {
            self.pos = self.pos.wrapping_add(bytes);
            self.consumer_pos().store(self.pos, Ordering::Release);
        }
    }
}

/// Where the `len` bytes of the record whose header is at `offset` lie in a data area of `size`
/// bytes (a power of two): up to its end, then (for a record that wraps) from its start.
fn pieces(offset: usize, len: usize, size: usize) -> (Range<usize>, Range<usize>) {
    let start = (offset + HEADER) & (size - 1);
    let first = len.min(size - start);
    (start..start + first, 0..len - first)
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("size", &self.size)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_whole_or_in_two_pieces_when_it_wraps() {
        // Inside the area.
        assert_eq!(pieces(0, 152, 4096), (8..160, 0..0));
        // Ending exactly at the end: one piece.
        assert_eq!(pieces(4096 - 160, 152, 4096), (3944..4096, 0..0));
        // The header at the end, the data from the start: one piece.
        assert_eq!(pieces(4096 - 8, 152, 4096), (0..152, 0..0));
        // Wrapping: the first 40 bytes at the end, the other 112 from the start.
        assert_eq!(pieces(4096 - 48, 152, 4096), (4056..4096, 0..112));
        // An empty record.
        assert_eq!(pieces(4096 - 8, 0, 4096), (0..0, 0..0));
    }
}
