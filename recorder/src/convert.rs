//! The one conversion between the kernel ABI (`recorder_common`) and capture rows
//! (`mmap_format`).
use std::borrow::Cow;

use mmap_format::{
    event::{Event, RowKind, Syscall, path_sources, sources},
    metadata::ClockAnchor,
    names::kernel_dev_to_user,
};
use recorder_common::{EventKind, RecordRef, record_flags};

/// Bytes up to the first NUL, as lossy UTF-8 (borrowed when already valid).
fn c_str(bytes: &[u8]) -> Cow<'_, str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
}

/// A file's path as the kernel walked it: components last first, each NUL terminated.
#[derive(Debug, PartialEq, Eq)]
pub struct WalkedPath {
    pub path: String,
    pub name: String,
    pub truncated: bool,
    pub memfd: bool,
    /// A component was not valid UTF-8 (converted lossily, with U+FFFD).
    pub lossy: bool,
}

/// Rebuilds the path from the components the kernel sent.
pub fn walked_path(bytes: &[u8], flags: u16) -> Option<WalkedPath> {
    if flags & record_flags::HAS_FILE == 0 {
        return None;
    }
    let components: Vec<Cow<'_, str>> = bytes
        .split(|&b| b == 0)
        .filter(|c| !c.is_empty())
        .map(String::from_utf8_lossy)
        .collect();
    let lossy = components.iter().any(|c| matches!(c, Cow::Owned(_)));
    let name = components
        .first()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let truncated = flags & record_flags::PATH_TRUNCATED != 0;
    let mut path = String::with_capacity(bytes.len() + 4);
    if truncated {
        path.push('…');
    }
    for component in components.iter().rev() {
        path.push('/');
        path.push_str(component);
    }
    if path.is_empty() {
        path.push('/');
    }
    let memfd = flags & record_flags::PATH_PSEUDO != 0 && name.starts_with("memfd:");
    Some(WalkedPath {
        path,
        name,
        truncated,
        memfd,
        lossy,
    })
}

/// Converts one kernel record into `event`, which must be `Event::default()`. `source` names
/// the attach mode; `Err` carries an unknown raw event kind. In place, not returned: an `Event`
/// is 616 bytes, and returning one by value copied it twice per row (the writer thread's
/// `memmove` went from 2.9 % to 1.3 % of a recording's samples on the mmap+munmap loop,
/// docs/PERFORMANCE.md).
pub fn fill_event<'a>(
    event: &mut Event<'a>,
    rec: &'a RecordRef<'a>,
    anchor: &ClockAnchor,
    source: &'static str,
) -> Result<(), u16> {
    let head = &rec.head;
    let kind = EventKind::try_from(head.event)?;
    let wall = |ns: u64| anchor.boot_to_wall_ns(ns);
    event.kind = RowKind::Syscall;
    event.ts_ns = wall(head.ts_enter_ns);
    event.cpu = head.cpu;
    event.pid = head.tgid;
    event.tid = head.tid;
    event.ppid = head.ppid;
    event.uid = head.uid;
    event.gid = head.gid;
    event.comm = c_str(&head.comm);
    event.cgroup_id = head.cgroup_id;
    event.source = Some(Cow::Borrowed(source));
    if head.pidns_ino != 0 {
        event.pidns_ino = Some(head.pidns_ino);
        event.ns_pid = Some(head.ns_pid);
        event.ns_tid = Some(head.ns_tid);
    }
    let a0 = head.args[0];
    match kind {
        EventKind::Mmap
        | EventKind::Munmap
        | EventKind::Mprotect
        | EventKind::Mremap
        | EventKind::Brk => {
            // A call seen at its exit only has no entry time: its time is its exit, and
            // `ts_exit_ns` stays null so that no duration is made up.
            if head.flags & record_flags::EXIT_ONLY == 0 {
                event.ts_exit_ns = Some(wall(head.ts_exit_ns));
            }
            syscall_columns(event, kind, rec);
        }
        EventKind::Fork => {
            event.kind = RowKind::Fork;
            event.child_pid = Some(a0 as u32);
        }
        EventKind::Exec => {
            event.kind = RowKind::Exec;
            let filename = c_str(rec.path);
            event.path_lossy = Some(matches!(filename, Cow::Owned(_)));
            event.file_name = Some(Cow::Owned(
                filename.rsplit('/').next().unwrap_or_default().to_owned(),
            ));
            event.file_path = Some(filename);
            event.path_source = Some(Cow::Borrowed(path_sources::EXEC_FILENAME));
            event.path_truncated = Some(head.flags & record_flags::PATH_TRUNCATED != 0);
        }
        EventKind::Exit => {
            event.kind = RowKind::Exit;
            event.exit_code = Some(a0 as u32 as i32);
        }
        EventKind::Lost => {
            event.kind = RowKind::Lost;
            event.ts_exit_ns = Some(wall(head.ts_exit_ns));
            event.lost_count = Some(a0);
            event.source = Some(Cow::Borrowed(sources::KERNEL));
            event.comm = Cow::Borrowed("");
            event.pidns_ino = None;
            event.ns_pid = None;
            event.ns_tid = None;
        }
    }
    Ok(())
}

/// The system call of a syscall record; `None` for lifecycle and loss records.
pub fn syscall_of(kind: EventKind) -> Option<Syscall> {
    match kind {
        EventKind::Mmap => Some(Syscall::Mmap),
        EventKind::Munmap => Some(Syscall::Munmap),
        EventKind::Mprotect => Some(Syscall::Mprotect),
        EventKind::Mremap => Some(Syscall::Mremap),
        EventKind::Brk => Some(Syscall::Brk),
        EventKind::Fork | EventKind::Exec | EventKind::Exit | EventKind::Lost => None,
    }
}

/// The columns of a syscall row: the call, its result and its arguments where the format puts
/// them (every call's first argument is an address, all but brk's second a length).
fn syscall_columns<'a>(event: &mut Event<'a>, kind: EventKind, rec: &'a RecordRef<'a>) {
    let head = &rec.head;
    let [a0, a1, a2, a3, a4, a5] = head.args;
    let syscall = syscall_of(kind);
    event.kind = RowKind::Syscall;
    event.syscall = syscall;
    event.ret = Some(head.ret);
    event.addr = Some(a0);
    if syscall != Some(Syscall::Brk) {
        event.len = Some(a1);
    }
    match syscall {
        Some(Syscall::Mmap) => {
            event.prot = Some(a2);
            event.flags = Some(a3);
            // The tracepoint's `unsigned long fd` holds a truncated int: -1 is 0xffffffff.
            event.fd = Some(a4 as u32 as i32);
            event.off = Some(a5);
            if let Some(path) = walked_path(rec.path, head.flags) {
                event.file_dev = Some(kernel_dev_to_user(head.file_dev));
                event.file_ino = Some(head.file_ino);
                event.file_name = Some(Cow::Owned(path.name));
                event.file_path = Some(Cow::Owned(path.path));
                event.path_source = Some(Cow::Borrowed(path_sources::KERNEL_DENTRY_WALK));
                event.path_truncated = Some(path.truncated);
                event.path_lossy = Some(path.lossy);
                event.file_deleted = Some(head.flags & record_flags::FILE_DELETED != 0);
                event.file_memfd = Some(path.memfd);
            }
        }
        Some(Syscall::Mprotect) => event.prot = Some(a2),
        Some(Syscall::Mremap) => {
            event.new_len = Some(a2);
            event.flags = Some(a3);
            event.new_addr = Some(a4);
        }
        Some(Syscall::Munmap | Syscall::Brk | Syscall::Other) | None => {}
    }
}

#[cfg(test)]
mod tests {
    use recorder_common::RecordHeader;

    use super::*;

    #[test]
    fn each_kind_becomes_the_format_syscall_of_the_same_name() {
        for &kind in EventKind::ALL {
            assert_eq!(
                syscall_of(kind).map(Syscall::as_str),
                kind.syscall_name(),
                "{kind:?}"
            );
        }
    }

    const ANCHOR: ClockAnchor = ClockAnchor {
        boot_ns: 1_000,
        realtime_ns: 1_700_000_000_000_000_000,
        uncertainty_ns: 10,
    };

    /// A header and its path bytes.
    struct Rec {
        head: RecordHeader,
        path: Vec<u8>,
    }

    impl Rec {
        fn as_ref(&self) -> RecordRef<'_> {
            RecordRef {
                head: self.head,
                path: &self.path,
                stack: None,
            }
        }
    }

    fn event(rec: &Rec, source: &'static str) -> Result<Event<'static>, u16> {
        let rec = rec.as_ref();
        let mut event = Event::default();
        fill_event(&mut event, &rec, &ANCHOR, source)?;
        Ok(event.into_owned())
    }

    fn record(kind: EventKind) -> Rec {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"work");
        Rec {
            head: RecordHeader {
                event: kind as u16,
                ts_enter_ns: 5_000,
                ts_exit_ns: 7_500,
                tgid: 42,
                tid: 43,
                ppid: 1,
                uid: 1000,
                gid: 100,
                cpu: 1,
                cgroup_id: 77,
                pidns_ino: 4026531836,
                ns_pid: 42,
                ns_tid: 43,
                comm,
                ..Default::default()
            },
            path: Vec::new(),
        }
    }

    /// A syscall record with these arguments and result.
    fn call(kind: EventKind, args: [u64; 6], ret: i64) -> Rec {
        let mut rec = record(kind);
        rec.head.args = args;
        rec.head.ret = ret;
        rec
    }

    #[test]
    fn a_call_seen_at_its_exit_only_has_its_exit_time_and_no_ts_exit() {
        let mut rec = call(EventKind::Munmap, [0x7000_0000, 4096, 0, 0, 0, 0], 0);
        rec.head.flags = record_flags::EXIT_ONLY;
        rec.head.ts_enter_ns = 7_500;
        let ev = event(&rec, sources::TRACEPOINT_EXIT).expect("kind");
        assert_eq!(ev.ts_ns, ANCHOR.boot_to_wall_ns(7_500));
        assert_eq!((ev.ts_exit_ns, ev.ret), (None, Some(0)));
        assert_eq!(ev.source.as_deref(), Some("tracepoint_exit"));
        // Without the flag, the same record has both times.
        rec.head.flags = 0;
        let ev = event(&rec, sources::TRACEPOINT).expect("kind");
        assert_eq!(ev.ts_exit_ns, Some(ANCHOR.boot_to_wall_ns(7_500)));
    }

    fn set_path(rec: &mut Rec, bytes: &[u8], flags: u16) {
        rec.path = bytes.to_vec();
        rec.head.path_len = bytes.len() as u16;
        rec.head.flags = flags;
    }

    #[test]
    fn anonymous_mmap() {
        let args = [0x7f00_0000_0000, 8192, 3, 0x22, 0xffff_ffff, 0];
        let rec = call(EventKind::Mmap, args, 0x7f12_3456_7000);
        let ev = event(&rec, sources::TRACEPOINT).expect("known kind");
        assert_eq!(ev.kind, RowKind::Syscall);
        assert_eq!(ev.syscall, Some(Syscall::Mmap));
        assert_eq!(ev.ts_ns, 1_700_000_000_000_004_000);
        assert_eq!(ev.ts_exit_ns, Some(1_700_000_000_000_006_500));
        assert_eq!(
            (ev.pid, ev.tid, ev.ppid, ev.uid, ev.gid),
            (42, 43, 1, 1000, 100)
        );
        assert_eq!(ev.comm, "work");
        assert_eq!(ev.addr, Some(0x7f00_0000_0000));
        assert_eq!(
            (ev.len, ev.prot, ev.flags),
            (Some(8192), Some(3), Some(0x22))
        );
        assert_eq!(ev.fd, Some(-1), "0xffffffff is fd -1");
        assert_eq!(ev.ret, Some(0x7f12_3456_7000));
        assert_eq!(ev.file_name, None);
        assert_eq!(ev.file_path, None);
        assert_eq!(ev.source.as_deref(), Some(sources::TRACEPOINT));
        assert_eq!(
            (ev.pidns_ino, ev.ns_pid, ev.ns_tid),
            (Some(4026531836), Some(42), Some(43))
        );
    }

    #[test]
    fn file_backed_mmap_with_a_walked_path() {
        let mut rec = call(EventKind::Mmap, [0, 4096, 1, 0x01, 3, 4096], -9);
        rec.head.file_dev = (8 << 20) | 1;
        rec.head.file_ino = 1234;
        set_path(
            &mut rec,
            b"libc.so.6\0x86_64-linux-gnu\0lib\0usr\0",
            record_flags::HAS_FILE | record_flags::PATH_COMPLETE,
        );
        let ev = event(&rec, sources::TRACEPOINT).expect("known kind");
        assert_eq!((ev.fd, ev.off), (Some(3), Some(4096)));
        assert_eq!(ev.file_dev, Some(mmap_format::names::makedev(8, 1)));
        assert_eq!(ev.file_ino, Some(1234));
        assert_eq!(ev.file_name.as_deref(), Some("libc.so.6"));
        assert_eq!(
            ev.file_path.as_deref(),
            Some("/usr/lib/x86_64-linux-gnu/libc.so.6")
        );
        assert_eq!(
            ev.path_source.as_deref(),
            Some(path_sources::KERNEL_DENTRY_WALK)
        );
        assert_eq!(
            (ev.path_truncated, ev.file_deleted, ev.file_memfd),
            (Some(false), Some(false), Some(false))
        );
        assert_eq!(ev.errno(), Some(9));
    }

    #[test]
    fn truncated_deleted_and_memfd_paths() {
        let p = walked_path(
            b"c\0b\0",
            record_flags::HAS_FILE | record_flags::PATH_TRUNCATED,
        )
        .expect("path");
        assert_eq!(p.path, "…/b/c");
        assert!(p.truncated);
        let p = walked_path(
            b"memfd:jit\0",
            record_flags::HAS_FILE | record_flags::PATH_PSEUDO | record_flags::FILE_DELETED,
        )
        .expect("path");
        assert_eq!((p.path.as_str(), p.memfd), ("/memfd:jit", true));
        assert_eq!(walked_path(b"x\0", 0), None, "no file");
    }

    /// A name that is not UTF-8 keeps its row: converted lossily and marked `path_lossy`.
    #[test]
    fn paths_that_are_not_utf8_are_marked_lossy() {
        let p = walked_path(b"bad-\xff\0tmp\0", record_flags::HAS_FILE).expect("path");
        assert_eq!(
            (p.path.as_str(), p.name.as_str(), p.lossy),
            ("/tmp/bad-\u{fffd}", "bad-\u{fffd}", true)
        );
        assert!(
            !walked_path(b"ok\0tmp\0", record_flags::HAS_FILE)
                .expect("path")
                .lossy
        );

        let mut rec = call(EventKind::Mmap, [0, 4096, 1, 1, 3, 0], 0x7000);
        set_path(&mut rec, b"bad-\xff\0tmp\0", record_flags::HAS_FILE);
        let ev = event(&rec, sources::TRACEPOINT).expect("kind");
        assert_eq!(ev.path_lossy, Some(true));

        let mut rec = record(EventKind::Exec);
        set_path(&mut rec, b"/bin/\xfe\0", record_flags::PATH_STRING);
        let ev = event(&rec, sources::TRACEPOINT).expect("kind");
        assert_eq!(
            (ev.file_path.as_deref(), ev.path_lossy),
            (Some("/bin/\u{fffd}"), Some(true))
        );
        let mut rec = record(EventKind::Exec);
        set_path(&mut rec, b"/bin/true\0", record_flags::PATH_STRING);
        assert_eq!(
            event(&rec, sources::TRACEPOINT).expect("kind").path_lossy,
            Some(false)
        );
    }

    #[test]
    fn other_syscalls() {
        let rec = call(EventKind::Mremap, [0x1000, 0x2000, 0x4000, 1, 0, 0], 0x9000);
        let ev = event(&rec, sources::RAW_TRACEPOINT).expect("kind");
        assert_eq!(ev.syscall, Some(Syscall::Mremap));
        assert_eq!(
            (ev.addr, ev.len, ev.new_len, ev.flags, ev.new_addr),
            (Some(0x1000), Some(0x2000), Some(0x4000), Some(1), Some(0))
        );
        assert_eq!(ev.prot, None);

        let rec = call(EventKind::Mprotect, [0x1000, 0x2000, 1, 0, 0, 0], 0);
        let ev = event(&rec, sources::TRACEPOINT).expect("kind");
        assert_eq!(
            (ev.syscall, ev.addr, ev.len, ev.prot),
            (Some(Syscall::Mprotect), Some(0x1000), Some(0x2000), Some(1))
        );
        assert_eq!(ev.fd, None);

        let rec = call(EventKind::Brk, [0x5000, 0, 0, 0, 0, 0], 0x5000);
        let ev = event(&rec, sources::TRACEPOINT).expect("kind");
        assert_eq!(
            (ev.syscall, ev.addr, ev.len, ev.ret),
            (Some(Syscall::Brk), Some(0x5000), None, Some(0x5000))
        );
    }

    #[test]
    fn lifecycle_and_loss() {
        let mut rec = record(EventKind::Fork);
        rec.head.args[0] = 99;
        let ev = event(&rec, sources::TRACEPOINT).expect("kind");
        assert_eq!(
            (ev.kind, ev.child_pid, ev.syscall, ev.ret),
            (RowKind::Fork, Some(99), None, None)
        );

        let mut rec = record(EventKind::Exec);
        set_path(&mut rec, b"/usr/bin/true\0", record_flags::PATH_STRING);
        let ev = event(&rec, sources::TRACEPOINT).expect("kind");
        assert_eq!(ev.kind, RowKind::Exec);
        assert_eq!(ev.file_path.as_deref(), Some("/usr/bin/true"));
        assert_eq!(ev.file_name.as_deref(), Some("true"));
        assert_eq!(ev.path_source.as_deref(), Some(path_sources::EXEC_FILENAME));

        let mut rec = record(EventKind::Exit);
        rec.head.args[0] = 256;
        let ev = event(&rec, sources::TRACEPOINT).expect("kind");
        assert_eq!((ev.kind, ev.exit_code), (RowKind::Exit, Some(256)));

        let mut rec = record(EventKind::Lost);
        rec.head.args[0] = 17;
        let ev = event(&rec, sources::TRACEPOINT).expect("kind");
        assert_eq!(
            (ev.kind, ev.lost_count, ev.cpu),
            (RowKind::Lost, Some(17), 1)
        );
        assert_eq!(ev.ts_exit_ns, Some(1_700_000_000_000_006_500));
        assert_eq!(ev.source.as_deref(), Some(sources::KERNEL));
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let mut rec = record(EventKind::Mmap);
        rec.head.event = 999;
        assert_eq!(event(&rec, sources::TRACEPOINT), Err(999));
    }
}
