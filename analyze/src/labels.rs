//! Labels: how the values of a capture are shown to people (times, results, flags, devices,
//! sizes, counts), shared by every command's table and JSON output.

use chrono::{DateTime, Timelike as _, Utc};
/// RFC 3339 in UTC with nanoseconds: `2026-11-27T06:01:13.123456789Z` (the format crate's, as
/// the capture's metadata writes its times).
pub use mmap_format::metadata::format_rfc3339_ns as rfc3339_ns;
use mmap_format::{
    event::{Event, RowKind, Syscall},
    names,
};

use crate::replay::{MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE};

/// Time of day in UTC with nanoseconds: `06:01:13.123456789`.
pub fn time_of_day_ns(ts_ns: i64) -> String {
    TimeOfDay(ts_ns).to_string()
}

/// [`time_of_day_ns`] as a value to `write!` (one formatting pass, no string of its own).
pub struct TimeOfDay(pub i64);

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = DateTime::<Utc>::from_timestamp_nanos(self.0).time();
        write!(
            f,
            "{:02}:{:02}:{:02}.{:09}",
            time.hour(),
            time.minute(),
            time.second(),
            time.nanosecond()
        )
    }
}

/// `0x7f0000001000`.
pub fn hex(value: u64) -> String {
    format!("{value:#x}")
}

/// The errno's name (`EBADF`), or `errno 4000` for a number without a known name.
pub fn errno_label(errno: i32) -> String {
    match names::errno_name(errno) {
        Some(name) => name.to_owned(),
        None => format!("errno {errno}"),
    }
}

/// The syscall's name, or the row kind for rows that are not system calls.
pub fn syscall_label(event: &Event<'_>) -> &'static str {
    match event.syscall {
        Some(syscall) => syscall.as_str(),
        None => event.kind.as_str(),
    }
}

/// What the row resulted in: for a call, `-EBADF` for a failure, a hex address for calls
/// returning addresses (mmap, mremap, brk), the plain number otherwise (`None` when the exit was
/// not seen); `child 1234` for a fork, the exit status for an exit, `lost 17 on cpu 2` for lost
/// records.
pub fn result_label(event: &Event<'_>) -> Option<String> {
    match event.kind {
        RowKind::Fork => return event.child_pid.map(|child| format!("child {child}")),
        RowKind::Exit => return event.exit_code.map(exit_status_label),
        RowKind::Lost => {
            return event
                .lost_count
                .map(|count| format!("lost {count} on cpu {}", event.cpu));
        }
        RowKind::Syscall => {}
        RowKind::Snapshot | RowKind::Exec | RowKind::Frame | RowKind::Other => return None,
    }
    let ret = event.ret?;
    if let Some(errno) = event.errno() {
        return Some(match names::errno_name(errno) {
            Some(name) => format!("-{name}"),
            None => format!("-{errno}"),
        });
    }
    let returns_address = event.syscall.is_some_and(Syscall::returns_address);
    Some(if returns_address {
        // An address is never negative once errors are set apart; show the bits as they are.
        hex(ret as u64)
    } else {
        ret.to_string()
    })
}

/// The flags argument decoded: MREMAP_* names for mremap, MAP_* names otherwise.
pub fn flags_label(event: &Event<'_>) -> Option<String> {
    let flags = event.flags?;
    Some(if event.syscall == Some(Syscall::Mremap) {
        mremap_flags_names(flags)
    } else {
        names::map_flags_names(flags)
    })
}

/// `MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP`; unknown bits as hex; `0` for none.
pub fn mremap_flags_names(flags: u64) -> String {
    const BITS: [(u64, &str); 3] = [
        (MREMAP_MAYMOVE, "MREMAP_MAYMOVE"),
        (MREMAP_FIXED, "MREMAP_FIXED"),
        (MREMAP_DONTUNMAP, "MREMAP_DONTUNMAP"),
    ];
    if flags == 0 {
        return "0".to_owned();
    }
    let mut parts: Vec<String> = BITS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    let known = BITS.iter().fold(0, |known, (bit, _)| known | bit);
    let unknown = flags & !known;
    if unknown != 0 {
        parts.push(format!("{unknown:#x}"));
    }
    parts.join("|")
}

/// Linux x86_64 signal names, by number.
const SIGNALS: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// A wait(2) status in words: `exit status 1`, `killed by SIGSEGV (core dumped)`.
pub fn exit_status_label(status: i32) -> String {
    let signal = status & 0x7f;
    if signal == 0 {
        return format!("exit status {}", (status >> 8) & 0xff);
    }
    let name = usize::try_from(signal - 1)
        .ok()
        .and_then(|i| SIGNALS.get(i))
        .map_or_else(|| format!("signal {signal}"), |name| (*name).to_owned());
    if status & 0x80 != 0 {
        format!("killed by {name} (core dumped)")
    } else {
        format!("killed by {name}")
    }
}

/// Time from entry to exit in nanoseconds, when the exit was seen.
pub fn duration_ns(event: &Event<'_>) -> Option<i64> {
    event
        .ts_exit_ns
        .map(|exit| exit.saturating_sub(event.ts_ns))
}

/// A device number as `major:minor`.
pub fn dev_label(dev: u64) -> String {
    format!("{}:{}", names::dev_major(dev), names::dev_minor(dev))
}

/// The file's path as recorded (`file_path`, else `file_name`), marked ` (deleted)`,
/// ` (memfd)` and ` (name not UTF-8)` (`path_lossy`: U+FFFD stands for its invalid bytes) when
/// it is one; `None` when the row names no file.
pub fn file_path_label(event: &Event<'_>) -> Option<String> {
    let mut path = event
        .file_path
        .as_deref()
        .or(event.file_name.as_deref())?
        .to_owned();
    if event.file_deleted == Some(true) {
        path.push_str(" (deleted)");
    }
    if event.file_memfd == Some(true) {
        path.push_str(" (memfd)");
    }
    if event.path_lossy == Some(true) {
        path.push_str(" (name not UTF-8)");
    }
    Some(path)
}

/// The mapped file in one field: `/usr/lib/libc.so.6 (8:1 ino 1234)`, preferring the full path
/// to the name; `None` for anonymous mappings.
pub fn file_label(event: &Event<'_>) -> Option<String> {
    let path = file_path_label(event);
    if path.is_none() && event.file_dev.is_none() && event.file_ino.is_none() {
        return None;
    }
    let name = path.unwrap_or_else(|| "?".to_owned());
    let mut details = Vec::new();
    if let Some(dev) = event.file_dev {
        details.push(dev_label(dev));
    }
    if let Some(ino) = event.file_ino {
        details.push(format!("ino {ino}"));
    }
    Some(if details.is_empty() {
        name
    } else {
        format!("{name} ({})", details.join(" "))
    })
}

/// Whether the call failed (returned -errno).
pub fn failed(event: &Event<'_>) -> bool {
    event.errno().is_some()
}

/// `1234567` as `1.2 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // One decimal is shown: the precision lost above 2^53 bytes does not show.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The plural ending of a count: `""` for 1, else `"s"` (`1 record`, `2 records`).
pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `1234567` as `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_nanoseconds() {
        let ts = 1_795_759_273_123_456_789; // 2026-11-27T06:01:13.123456789Z
        assert_eq!(rfc3339_ns(ts), "2026-11-27T06:01:13.123456789Z");
        assert_eq!(time_of_day_ns(ts), "06:01:13.123456789");
        assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        // The same text as chrono's own formatting, before the epoch and at the ends too.
        for ts in [ts, 0, -1, -1_500, 86_399_999_999_999, i64::MIN, i64::MAX] {
            let chrono = DateTime::<Utc>::from_timestamp_nanos(ts)
                .format("%H:%M:%S%.9f")
                .to_string();
            assert_eq!(time_of_day_ns(ts), chrono, "{ts}");
        }
    }

    #[test]
    fn file_path_label_marks_deleted_memfd_and_lossy_names() {
        let event = |deleted, memfd, lossy| Event {
            file_path: Some("/tmp/caf\u{fffd}".into()),
            file_deleted: Some(deleted),
            file_memfd: Some(memfd),
            path_lossy: Some(lossy),
            ..Event::default()
        };
        assert_eq!(
            file_path_label(&event(false, false, false)).as_deref(),
            Some("/tmp/caf\u{fffd}")
        );
        assert_eq!(
            file_path_label(&event(true, false, true)).as_deref(),
            Some("/tmp/caf\u{fffd} (deleted) (name not UTF-8)")
        );
        assert_eq!(file_path_label(&Event::default()), None);
    }

    #[test]
    fn exit_status_and_mremap_flags_read_well() {
        assert_eq!(exit_status_label(0), "exit status 0");
        assert_eq!(exit_status_label(3 << 8), "exit status 3");
        assert_eq!(exit_status_label(9), "killed by SIGKILL");
        assert_eq!(
            exit_status_label(0x80 | 11),
            "killed by SIGSEGV (core dumped)"
        );
        assert_eq!(exit_status_label(40), "killed by signal 40");
        assert_eq!(mremap_flags_names(0), "0");
        assert_eq!(mremap_flags_names(1), "MREMAP_MAYMOVE");
        assert_eq!(
            mremap_flags_names(7),
            "MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP"
        );
        assert_eq!(mremap_flags_names(0x11), "MREMAP_MAYMOVE|0x10");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(hex(0x7f00_0000_1000), "0x7f0000001000");
    }
}
