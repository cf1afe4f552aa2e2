//! One row of a capture, as Rust values.

use std::{borrow::Cow, fmt, str::FromStr};

/// The highest `ret` value that encodes an error: the kernel returns `-errno` with
/// `1 <= errno <= 4095` (`MAX_ERRNO`).
pub const MAX_ERRNO: i64 = 4095;

/// What a row describes (`kind` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// One system call, entry and exit.
    Syscall,
}

impl RowKind {
    /// Every kind this version knows.
    pub const ALL: [Self; 1] = [Self::Syscall];

    /// The value stored in the `kind` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Syscall => "syscall",
        }
    }

    /// The position in [`RowKind::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// The system call of a `syscall` row (`syscall` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Syscall {
    Mmap,
    Munmap,
    Mremap,
    Mprotect,
    Brk,
}

impl Syscall {
    /// Every system call this version knows.
    pub const ALL: [Self; 5] = [
        Self::Mmap,
        Self::Munmap,
        Self::Mremap,
        Self::Mprotect,
        Self::Brk,
    ];

    /// The value stored in the `syscall` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mmap => "mmap",
            Self::Munmap => "munmap",
            Self::Mremap => "mremap",
            Self::Mprotect => "mprotect",
            Self::Brk => "brk",
        }
    }

    /// The position in [`Syscall::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// A string that is not a known [`RowKind`] or [`Syscall`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownName {
    /// "row kind" or "syscall".
    pub what: &'static str,
    /// The string that did not match.
    pub value: String,
}

impl FromStr for RowKind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "row kind",
                value: s.to_owned(),
            })
    }
}

impl FromStr for Syscall {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|syscall| syscall.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "syscall",
                value: s.to_owned(),
            })
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Syscall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of a capture. The strings borrow when writing (no allocation per row) and are owned
/// when reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub kind: RowKind,
    pub syscall: Option<Syscall>,
    /// Wall-clock time of syscall entry, ns since the Unix epoch (UTC).
    pub ts_ns: i64,
    /// Wall-clock time of syscall exit, ns since the Unix epoch (UTC).
    pub ts_exit_ns: Option<i64>,
    pub cpu: u32,
    /// Process id (kernel tgid).
    pub pid: u32,
    /// Thread id (kernel pid).
    pub tid: u32,
    /// Parent's process id (`real_parent->tgid`).
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Thread name (`task->comm`), lossy UTF-8.
    pub comm: Cow<'a, str>,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    pub addr: Option<u64>,
    pub len: Option<u64>,
    pub prot: Option<u64>,
    pub flags: Option<u64>,
    pub fd: Option<i32>,
    pub off: Option<u64>,
    /// Return value: an address, 0, or `-errno`.
    pub ret: Option<i64>,
    /// Device of the mapped file, user-space `st_dev` encoding (see [`crate::names::makedev`]).
    pub file_dev: Option<u64>,
    pub file_ino: Option<u64>,
    /// The mapped file's name (v1.0: last path component only).
    pub file_name: Option<Cow<'a, str>>,
}

impl Event<'_> {
    /// `-ret` when `-4095 <= ret <= -1`, else `None`.
    pub fn errno(&self) -> Option<i32> {
        errno_from_ret(self.ret?)
    }

    /// Copies the borrowed strings, if any.
    pub fn into_owned(self) -> Event<'static> {
        Event {
            kind: self.kind,
            syscall: self.syscall,
            ts_ns: self.ts_ns,
            ts_exit_ns: self.ts_exit_ns,
            cpu: self.cpu,
            pid: self.pid,
            tid: self.tid,
            ppid: self.ppid,
            uid: self.uid,
            gid: self.gid,
            comm: Cow::Owned(self.comm.into_owned()),
            cgroup_id: self.cgroup_id,
            addr: self.addr,
            len: self.len,
            prot: self.prot,
            flags: self.flags,
            fd: self.fd,
            off: self.off,
            ret: self.ret,
            file_dev: self.file_dev,
            file_ino: self.file_ino,
            file_name: self.file_name.map(|name| Cow::Owned(name.into_owned())),
        }
    }
}

/// The errno encoded in a syscall return value: `-ret` when `-4095 <= ret <= -1`, else `None`.
pub fn errno_from_ret(ret: i64) -> Option<i32> {
    if (-MAX_ERRNO..=-1).contains(&ret) {
        // -4095..=-1 negated fits in i32.
        i32::try_from(-ret).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in RowKind::ALL {
            assert_eq!(kind.as_str().parse::<RowKind>(), Ok(kind));
        }
        for syscall in Syscall::ALL {
            assert_eq!(syscall.as_str().parse::<Syscall>(), Ok(syscall));
        }
        assert_eq!(Syscall::Mprotect.as_str(), "mprotect");
        assert_eq!(RowKind::Syscall.to_string(), "syscall");
        let err = "fork"
            .parse::<RowKind>()
            .expect_err("fork is not a 1.0 kind");
        assert_eq!(err.to_string(), "unknown row kind \"fork\"");
        assert!("MMAP".parse::<Syscall>().is_err());
        for (i, kind) in RowKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
        for (i, syscall) in Syscall::ALL.into_iter().enumerate() {
            assert_eq!(syscall.index(), i);
        }
    }

    #[test]
    fn errno_is_derived_from_ret() {
        assert_eq!(errno_from_ret(-1), Some(1));
        assert_eq!(errno_from_ret(-9), Some(9));
        assert_eq!(errno_from_ret(-22), Some(22));
        assert_eq!(errno_from_ret(-4095), Some(4095));
        assert_eq!(errno_from_ret(-4096), None);
        assert_eq!(errno_from_ret(0), None);
        assert_eq!(errno_from_ret(1), None);
        assert_eq!(errno_from_ret(i64::MIN), None);
        // A high user-space address read as i64 stays an address.
        assert_eq!(errno_from_ret(0x7f12_3456_7000), None);
    }
}
