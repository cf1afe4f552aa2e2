//! The one conversion between the kernel ABI (`recorder_common`) and capture rows
//! (`mmap_format`).
use std::borrow::Cow;

use mmap_format::{
    event::{Event, RowKind, Syscall},
    metadata::ClockAnchor,
    names::kernel_dev_to_user,
};
use recorder_common::{EventKind, SyscallRecord, file_flags};

/// Bytes up to the first NUL, as lossy UTF-8 (borrowed when already valid).
fn c_str(bytes: &[u8]) -> Cow<'_, str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
}

/// Converts one kernel record; `Err` carries an unknown raw event kind.
pub fn to_event<'a>(rec: &'a SyscallRecord, anchor: &ClockAnchor) -> Result<Event<'a>, u16> {
    let kind = EventKind::try_from(rec.event)?;
    let has_file = rec.file_flags & file_flags::HAS_FILE != 0;
    let mut event = Event {
        kind: RowKind::Syscall,
        syscall: None,
        ts_ns: anchor.boot_to_wall_ns(rec.ts_enter_ns),
        ts_exit_ns: Some(anchor.boot_to_wall_ns(rec.ts_exit_ns)),
        cpu: rec.cpu,
        pid: rec.tgid,
        tid: rec.tid,
        ppid: rec.ppid,
        uid: rec.uid,
        gid: rec.gid,
        comm: c_str(&rec.comm),
        cgroup_id: rec.cgroup_id,
        addr: None,
        len: None,
        prot: None,
        flags: None,
        fd: None,
        off: None,
        ret: Some(rec.ret),
        file_dev: has_file.then(|| kernel_dev_to_user(rec.file_dev)),
        file_ino: has_file.then_some(rec.file_ino),
        file_name: has_file.then(|| c_str(&rec.path)),
    };
    match kind {
        EventKind::Mmap => {
            let [addr, len, prot, flags, fd, off] = rec.args;
            event.syscall = Some(Syscall::Mmap);
            event.addr = Some(addr);
            event.len = Some(len);
            event.prot = Some(prot);
            event.flags = Some(flags);
            // The tracepoint's `unsigned long fd` holds a truncated int: -1 is 0xffffffff.
            event.fd = Some(fd as u32 as i32);
            event.off = Some(off);
        }
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANCHOR: ClockAnchor = ClockAnchor {
        boot_ns: 1_000,
        realtime_ns: 1_700_000_000_000_000_000,
        uncertainty_ns: 10,
    };

    fn record() -> SyscallRecord {
        let mut rec = SyscallRecord::ZERO;
        rec.event = EventKind::Mmap as u16;
        rec.ts_enter_ns = 5_000;
        rec.ts_exit_ns = 7_500;
        rec.args = [0x7f00_0000_0000, 8192, 3, 0x22, 0xffff_ffff, 0];
        rec.ret = 0x7f12_3456_7000;
        rec.tgid = 42;
        rec.tid = 43;
        rec.ppid = 1;
        rec.uid = 1000;
        rec.gid = 100;
        rec.cpu = 1;
        rec.cgroup_id = 77;
        rec.comm[..4].copy_from_slice(b"work");
        rec
    }

    #[test]
    fn anonymous_mmap() {
        let rec = record();
        let ev = to_event(&rec, &ANCHOR).expect("known kind");
        assert_eq!(ev.syscall, Some(Syscall::Mmap));
        assert_eq!(ev.ts_ns, 1_700_000_000_000_004_000);
        assert_eq!(ev.ts_exit_ns, Some(1_700_000_000_000_006_500));
        assert_eq!(
            (ev.pid, ev.tid, ev.ppid, ev.uid, ev.gid),
            (42, 43, 1, 1000, 100)
        );
        assert_eq!(ev.comm, "work");
        assert_eq!(ev.addr, Some(0x7f00_0000_0000));
        assert_eq!(ev.len, Some(8192));
        assert_eq!(ev.prot, Some(3));
        assert_eq!(ev.flags, Some(0x22));
        assert_eq!(ev.fd, Some(-1), "0xffffffff is fd -1");
        assert_eq!(ev.ret, Some(0x7f12_3456_7000));
        assert_eq!(ev.file_name, None);
        assert_eq!(ev.file_dev, None);
        assert_eq!(ev.errno(), None);
    }

    #[test]
    fn file_backed_mmap_and_errno() {
        let mut rec = record();
        rec.args[3] = 0x01;
        rec.args[4] = 3;
        rec.args[5] = 4096;
        rec.ret = -9;
        rec.file_flags = file_flags::HAS_FILE | file_flags::BASENAME_ONLY;
        rec.file_dev = (8 << 20) | 1;
        rec.file_ino = 1234;
        rec.path[..8].copy_from_slice(b"data.bin");
        let ev = to_event(&rec, &ANCHOR).expect("known kind");
        assert_eq!(ev.fd, Some(3));
        assert_eq!(ev.off, Some(4096));
        assert_eq!(ev.file_dev, Some(mmap_format::names::makedev(8, 1)));
        assert_eq!(ev.file_ino, Some(1234));
        assert_eq!(ev.file_name.as_deref(), Some("data.bin"));
        assert_eq!(ev.errno(), Some(9));
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let mut rec = record();
        rec.event = 999;
        assert_eq!(to_event(&rec, &ANCHOR), Err(999));
    }
}
