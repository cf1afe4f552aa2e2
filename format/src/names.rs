//! Names of mmap arguments and results on Linux x86_64: PROT_* bits, MAP_* flags, errno
//! values, and the two encodings of device numbers.

use std::fmt::Write as _;

/// PROT_* bits, lowest first.
pub const PROT_BITS: [(u64, &str); 6] = [
    (0x1, "PROT_READ"),
    (0x2, "PROT_WRITE"),
    (0x4, "PROT_EXEC"),
    (0x8, "PROT_SEM"),
    (0x0100_0000, "PROT_GROWSDOWN"),
    (0x0200_0000, "PROT_GROWSUP"),
];

/// The mask of the mapping type in mmap flags.
pub const MAP_TYPE: u64 = 0x03;

/// The mapping types (`flags & MAP_TYPE`).
pub const MAP_TYPES: [(u64, &str); 3] = [
    (0x01, "MAP_SHARED"),
    (0x02, "MAP_PRIVATE"),
    (0x03, "MAP_SHARED_VALIDATE"),
];

/// MAP_* bits other than the mapping type, lowest first (x86_64 values).
pub const MAP_BITS: [(u64, &str); 15] = [
    (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"),
    (0x40, "MAP_32BIT"),
    (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"),
    (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"),
    (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"),
    (0x1_0000, "MAP_NONBLOCK"),
    (0x2_0000, "MAP_STACK"),
    (0x4_0000, "MAP_HUGETLB"),
    (0x8_0000, "MAP_SYNC"),
    (0x10_0000, "MAP_FIXED_NOREPLACE"),
    (0x400_0000, "MAP_UNINITIALIZED"),
];

/// `MAP_HUGETLB`.
pub const MAP_HUGETLB: u64 = 0x4_0000;
/// With `MAP_HUGETLB`, bits 26..=31 hold log2 of the huge page size (`MAP_HUGE_SHIFT`).
pub const MAP_HUGE_SHIFT: u32 = 26;
/// The mask of the huge page size after shifting by [`MAP_HUGE_SHIFT`].
pub const MAP_HUGE_MASK: u64 = 0x3f;

/// "PROT_READ|PROT_WRITE", "PROT_NONE" for 0; unknown bits as hex: "PROT_READ|0x100".
pub fn prot_names(prot: u64) -> String {
    if prot == 0 {
        return "PROT_NONE".to_owned();
    }
    let mut out = String::new();
    let rest = push_bits(&mut out, prot, &PROT_BITS);
    push_rest(&mut out, rest);
    out
}

/// The mapping type of mmap flags: "MAP_SHARED", "MAP_PRIVATE", "MAP_SHARED_VALIDATE", or
/// `None` when `flags & 0x03` is 0.
pub fn map_type_name(flags: u64) -> Option<&'static str> {
    let ty = flags & MAP_TYPE;
    MAP_TYPES
        .iter()
        .find(|(value, _)| *value == ty)
        .map(|(_, name)| *name)
}

/// "MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS"... (x86_64 values); unknown bits as hex.
///
/// The mapping type comes first, then the other flags from the lowest bit up, as strace prints
/// them; "0" for 0. With `MAP_HUGETLB`, bits 26..=31 are the huge page size and print as
/// `MAP_HUGE_2MB`, `MAP_HUGE_1GB`, ...; without it bit 26 is `MAP_UNINITIALIZED`.
pub fn map_flags_names(flags: u64) -> String {
    if flags == 0 {
        return "0".to_owned();
    }
    let mut out = String::new();
    if let Some(name) = map_type_name(flags) {
        out.push_str(name);
    }
    let mut rest = flags & !MAP_TYPE;
    let huge_bits = MAP_HUGE_MASK << MAP_HUGE_SHIFT;
    let huge = if rest & MAP_HUGETLB != 0 && rest & huge_bits != 0 {
        let shift = (rest & huge_bits) >> MAP_HUGE_SHIFT;
        let name = huge_page_name(shift);
        if name.is_some() {
            rest &= !huge_bits;
        }
        name
    } else {
        None
    };
    rest = push_bits(&mut out, rest, &MAP_BITS);
    if let Some(huge) = huge {
        push_sep(&mut out);
        out.push_str(&huge);
    }
    push_rest(&mut out, rest);
    out
}

/// "MAP_HUGE_2MB" for a huge page size of `1 << shift` bytes.
fn huge_page_name(shift: u64) -> Option<String> {
    let (value, unit) = match shift {
        10..=19 => (1u64 << (shift - 10), "KB"),
        20..=29 => (1u64 << (shift - 20), "MB"),
        30..=63 => (1u64 << (shift - 30), "GB"),
        _ => return None,
    };
    Some(format!("MAP_HUGE_{value}{unit}"))
}

fn push_sep(out: &mut String) {
    if !out.is_empty() {
        out.push('|');
    }
}

/// Appends the names of the set bits; returns the bits left unnamed.
fn push_bits(out: &mut String, mut bits: u64, names: &[(u64, &str)]) -> u64 {
    for (bit, name) in names {
        if bits & bit != 0 {
            push_sep(out);
            out.push_str(name);
            bits &= !bit;
        }
    }
    bits
}

fn push_rest(out: &mut String, rest: u64) {
    if rest != 0 {
        push_sep(out);
        // Writing to a String cannot fail.
        let _ = write!(out, "{rest:#x}");
    }
}

/// Linux errno names 1..=133 (asm-generic, used by x86_64); "" where no name has the number
/// (41 and 58 are only the aliases EWOULDBLOCK and EDEADLOCK).
const ERRNO_NAMES: [&str; 134] = [
    "",                // 0
    "EPERM",           // 1
    "ENOENT",          // 2
    "ESRCH",           // 3
    "EINTR",           // 4
    "EIO",             // 5
    "ENXIO",           // 6
    "E2BIG",           // 7
    "ENOEXEC",         // 8
    "EBADF",           // 9
    "ECHILD",          // 10
    "EAGAIN",          // 11
    "ENOMEM",          // 12
    "EACCES",          // 13
    "EFAULT",          // 14
    "ENOTBLK",         // 15
    "EBUSY",           // 16
    "EEXIST",          // 17
    "EXDEV",           // 18
    "ENODEV",          // 19
    "ENOTDIR",         // 20
    "EISDIR",          // 21
    "EINVAL",          // 22
    "ENFILE",          // 23
    "EMFILE",          // 24
    "ENOTTY",          // 25
    "ETXTBSY",         // 26
    "EFBIG",           // 27
    "ENOSPC",          // 28
    "ESPIPE",          // 29
    "EROFS",           // 30
    "EMLINK",          // 31
    "EPIPE",           // 32
    "EDOM",            // 33
    "ERANGE",          // 34
    "EDEADLK",         // 35
    "ENAMETOOLONG",    // 36
    "ENOLCK",          // 37
    "ENOSYS",          // 38
    "ENOTEMPTY",       // 39
    "ELOOP",           // 40
    "",                // 41
    "ENOMSG",          // 42
    "EIDRM",           // 43
    "ECHRNG",          // 44
    "EL2NSYNC",        // 45
    "EL3HLT",          // 46
    "EL3RST",          // 47
    "ELNRNG",          // 48
    "EUNATCH",         // 49
    "ENOCSI",          // 50
    "EL2HLT",          // 51
    "EBADE",           // 52
    "EBADR",           // 53
    "EXFULL",          // 54
    "ENOANO",          // 55
    "EBADRQC",         // 56
    "EBADSLT",         // 57
    "",                // 58
    "EBFONT",          // 59
    "ENOSTR",          // 60
    "ENODATA",         // 61
    "ETIME",           // 62
    "ENOSR",           // 63
    "ENONET",          // 64
    "ENOPKG",          // 65
    "EREMOTE",         // 66
    "ENOLINK",         // 67
    "EADV",            // 68
    "ESRMNT",          // 69
    "ECOMM",           // 70
    "EPROTO",          // 71
    "EMULTIHOP",       // 72
    "EDOTDOT",         // 73
    "EBADMSG",         // 74
    "EOVERFLOW",       // 75
    "ENOTUNIQ",        // 76
    "EBADFD",          // 77
    "EREMCHG",         // 78
    "ELIBACC",         // 79
    "ELIBBAD",         // 80
    "ELIBSCN",         // 81
    "ELIBMAX",         // 82
    "ELIBEXEC",        // 83
    "EILSEQ",          // 84
    "ERESTART",        // 85
    "ESTRPIPE",        // 86
    "EUSERS",          // 87
    "ENOTSOCK",        // 88
    "EDESTADDRREQ",    // 89
    "EMSGSIZE",        // 90
    "EPROTOTYPE",      // 91
    "ENOPROTOOPT",     // 92
    "EPROTONOSUPPORT", // 93
    "ESOCKTNOSUPPORT", // 94
    "EOPNOTSUPP",      // 95
    "EPFNOSUPPORT",    // 96
    "EAFNOSUPPORT",    // 97
    "EADDRINUSE",      // 98
    "EADDRNOTAVAIL",   // 99
    "ENETDOWN",        // 100
    "ENETUNREACH",     // 101
    "ENETRESET",       // 102
    "ECONNABORTED",    // 103
    "ECONNRESET",      // 104
    "ENOBUFS",         // 105
    "EISCONN",         // 106
    "ENOTCONN",        // 107
    "ESHUTDOWN",       // 108
    "ETOOMANYREFS",    // 109
    "ETIMEDOUT",       // 110
    "ECONNREFUSED",    // 111
    "EHOSTDOWN",       // 112
    "EHOSTUNREACH",    // 113
    "EALREADY",        // 114
    "EINPROGRESS",     // 115
    "ESTALE",          // 116
    "EUCLEAN",         // 117
    "ENOTNAM",         // 118
    "ENAVAIL",         // 119
    "EISNAM",          // 120
    "EREMOTEIO",       // 121
    "EDQUOT",          // 122
    "ENOMEDIUM",       // 123
    "EMEDIUMTYPE",     // 124
    "ECANCELED",       // 125
    "ENOKEY",          // 126
    "EKEYEXPIRED",     // 127
    "EKEYREVOKED",     // 128
    "EKEYREJECTED",    // 129
    "EOWNERDEAD",      // 130
    "ENOTRECOVERABLE", // 131
    "ERFKILL",         // 132
    "EHWPOISON",       // 133
];

/// Kernel-internal errnos (include/linux/errno.h). They are not meant for user space, but a
/// tracepoint at syscall exit sees them before the kernel restarts or converts the call.
const KERNEL_ERRNO_NAMES: [(i32, &str); 17] = [
    (512, "ERESTARTSYS"),
    (513, "ERESTARTNOINTR"),
    (514, "ERESTARTNOHAND"),
    (515, "ENOIOCTLCMD"),
    (516, "ERESTART_RESTARTBLOCK"),
    (517, "EPROBE_DEFER"),
    (518, "EOPENSTALE"),
    (519, "ENOPARAM"),
    (521, "EBADHANDLE"),
    (522, "ENOTSYNC"),
    (523, "EBADCOOKIE"),
    (524, "ENOTSUPP"),
    (525, "ETOOSMALL"),
    (526, "ESERVERFAULT"),
    (527, "EBADTYPE"),
    (528, "EJUKEBOX"),
    (529, "EIOCBQUEUED"),
];

/// "EINVAL" for 22 ... (Linux x86_64 errno names); None for unknown numbers.
///
/// Where two names share a number the kernel's primary one is returned: EAGAIN (not
/// EWOULDBLOCK), EDEADLK (not EDEADLOCK), EOPNOTSUPP (not ENOTSUP). The kernel-internal values
/// 512..=529 (ERESTARTSYS, ...) are named too.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    if let Some(name) = usize::try_from(errno).ok().and_then(|i| ERRNO_NAMES.get(i)) {
        return (!name.is_empty()).then_some(*name);
    }
    KERNEL_ERRNO_NAMES
        .iter()
        .find(|(value, _)| *value == errno)
        .map(|(_, name)| *name)
}

/// The number of an errno name ("EINVAL" -> 22); also accepts the aliases EWOULDBLOCK,
/// EDEADLOCK and ENOTSUP.
pub fn errno_from_name(name: &str) -> Option<i32> {
    match name {
        "EWOULDBLOCK" => return Some(11),
        "EDEADLOCK" => return Some(35),
        "ENOTSUP" => return Some(95),
        "" => return None,
        _ => {}
    }
    if let Some(i) = ERRNO_NAMES.iter().position(|n| *n == name) {
        return i32::try_from(i).ok();
    }
    KERNEL_ERRNO_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(value, _)| *value)
}

/// glibc `makedev`: the user-space `dev_t` (what `stat` returns in `st_dev`).
pub fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (u64::from(major), u64::from(minor));
    ((major & 0xffff_f000) << 32)
        | ((major & 0x0000_0fff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0x0000_00ff)
}

/// glibc `major` of a user-space `dev_t`.
pub fn dev_major(dev: u64) -> u32 {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    // At most 32 bits are set.
    u32::try_from(major).unwrap_or(u32::MAX)
}

/// glibc `minor` of a user-space `dev_t`.
pub fn dev_minor(dev: u64) -> u32 {
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    // At most 32 bits are set.
    u32::try_from(minor).unwrap_or(u32::MAX)
}

/// The kernel's internal `dev_t` (`major << 20 | minor`, MINORBITS 20, as in
/// `inode->i_sb->s_dev`) to the user-space encoding.
pub fn kernel_dev_to_user(kdev: u32) -> u64 {
    makedev(kdev >> 20, kdev & 0x000f_ffff)
}

/// "major:minor" of a user-space `dev_t`, as in /proc/self/mountinfo, e.g. "259:2".
pub fn dev_string(dev: u64) -> String {
    format!("{}:{}", dev_major(dev), dev_minor(dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prot() {
        assert_eq!(prot_names(0), "PROT_NONE");
        assert_eq!(prot_names(1), "PROT_READ");
        assert_eq!(prot_names(3), "PROT_READ|PROT_WRITE");
        assert_eq!(prot_names(5), "PROT_READ|PROT_EXEC");
        assert_eq!(prot_names(0x101), "PROT_READ|0x100");
        assert_eq!(
            prot_names(0x0100_0003),
            "PROT_READ|PROT_WRITE|PROT_GROWSDOWN"
        );
        assert_eq!(prot_names(0x0200_0000), "PROT_GROWSUP");
        assert_eq!(prot_names(0x8), "PROT_SEM");
        assert_eq!(prot_names(0xf0), "0xf0");
    }

    #[test]
    fn map_flags() {
        assert_eq!(map_flags_names(0), "0");
        assert_eq!(map_flags_names(0x22), "MAP_PRIVATE|MAP_ANONYMOUS");
        assert_eq!(map_flags_names(0x01), "MAP_SHARED");
        assert_eq!(map_flags_names(0x03), "MAP_SHARED_VALIDATE");
        assert_eq!(map_flags_names(0x32), "MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS");
        assert_eq!(
            map_flags_names(0x812),
            "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE"
        );
        assert_eq!(
            map_flags_names(0x2_0122),
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_GROWSDOWN|MAP_STACK"
        );
        assert_eq!(
            map_flags_names(0x10_4022),
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE|MAP_FIXED_NOREPLACE"
        );
        assert_eq!(map_flags_names(0x8_0003), "MAP_SHARED_VALIDATE|MAP_SYNC");
        assert_eq!(
            map_flags_names(0x1_b042),
            "MAP_PRIVATE|MAP_32BIT|MAP_EXECUTABLE|MAP_LOCKED|MAP_POPULATE|MAP_NONBLOCK"
        );
        assert_eq!(
            map_flags_names(0x400_0022),
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_UNINITIALIZED"
        );
        // Unknown bits as hex, after the names.
        assert_eq!(map_flags_names(0x202), "MAP_PRIVATE|0x200");
        assert_eq!(
            map_flags_names(0x8000_0000_0002),
            "MAP_PRIVATE|0x800000000000"
        );
        // No mapping type.
        assert_eq!(map_flags_names(0x20), "MAP_ANONYMOUS");
        assert_eq!(map_type_name(0x20), None);
        assert_eq!(map_type_name(0x22), Some("MAP_PRIVATE"));
    }

    #[test]
    fn map_huge_page_sizes() {
        // MAP_HUGE_2MB = 21 << 26, MAP_HUGE_1GB = 30 << 26.
        assert_eq!(
            map_flags_names(0x4_0022 | (21 << 26)),
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_2MB"
        );
        assert_eq!(
            map_flags_names(0x4_0022 | (30 << 26)),
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_1GB"
        );
        assert_eq!(
            map_flags_names(0x4_0022 | (16 << 26)),
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_64KB"
        );
        assert_eq!(
            map_flags_names(0x4_0022),
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB"
        );
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_name(-22), None);
        assert_eq!(errno_name(1), Some("EPERM"));
        assert_eq!(errno_name(9), Some("EBADF"));
        assert_eq!(errno_name(11), Some("EAGAIN"));
        assert_eq!(errno_name(12), Some("ENOMEM"));
        assert_eq!(errno_name(22), Some("EINVAL"));
        assert_eq!(errno_name(35), Some("EDEADLK"));
        assert_eq!(errno_name(41), None);
        assert_eq!(errno_name(58), None);
        assert_eq!(errno_name(95), Some("EOPNOTSUPP"));
        assert_eq!(errno_name(133), Some("EHWPOISON"));
        assert_eq!(errno_name(134), None);
        assert_eq!(errno_name(512), Some("ERESTARTSYS"));
        assert_eq!(errno_name(520), None);
        assert_eq!(errno_name(4095), None);
        assert_eq!(errno_from_name("EINVAL"), Some(22));
        assert_eq!(errno_from_name("EWOULDBLOCK"), Some(11));
        assert_eq!(errno_from_name("ERESTARTSYS"), Some(512));
        assert_eq!(errno_from_name(""), None);
        assert_eq!(errno_from_name("ENOPE"), None);
        for errno in 1..=133 {
            if let Some(name) = errno_name(errno) {
                assert_eq!(errno_from_name(name), Some(errno));
            }
        }
    }

    /// Every number 1..=133 against the libc crate's constants for this target.
    #[test]
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    fn errno_names_match_libc() {
        let libc_names = [
            (libc::EPERM, "EPERM"),
            (libc::ENOENT, "ENOENT"),
            (libc::ESRCH, "ESRCH"),
            (libc::EINTR, "EINTR"),
            (libc::EIO, "EIO"),
            (libc::ENXIO, "ENXIO"),
            (libc::E2BIG, "E2BIG"),
            (libc::ENOEXEC, "ENOEXEC"),
            (libc::EBADF, "EBADF"),
            (libc::ECHILD, "ECHILD"),
            (libc::EAGAIN, "EAGAIN"),
            (libc::ENOMEM, "ENOMEM"),
            (libc::EACCES, "EACCES"),
            (libc::EFAULT, "EFAULT"),
            (libc::ENOTBLK, "ENOTBLK"),
            (libc::EBUSY, "EBUSY"),
            (libc::EEXIST, "EEXIST"),
            (libc::EXDEV, "EXDEV"),
            (libc::ENODEV, "ENODEV"),
            (libc::ENOTDIR, "ENOTDIR"),
            (libc::EISDIR, "EISDIR"),
            (libc::EINVAL, "EINVAL"),
            (libc::ENFILE, "ENFILE"),
            (libc::EMFILE, "EMFILE"),
            (libc::ENOTTY, "ENOTTY"),
            (libc::ETXTBSY, "ETXTBSY"),
            (libc::EFBIG, "EFBIG"),
            (libc::ENOSPC, "ENOSPC"),
            (libc::ESPIPE, "ESPIPE"),
            (libc::EROFS, "EROFS"),
            (libc::EMLINK, "EMLINK"),
            (libc::EPIPE, "EPIPE"),
            (libc::EDOM, "EDOM"),
            (libc::ERANGE, "ERANGE"),
            (libc::EDEADLK, "EDEADLK"),
            (libc::ENAMETOOLONG, "ENAMETOOLONG"),
            (libc::ENOLCK, "ENOLCK"),
            (libc::ENOSYS, "ENOSYS"),
            (libc::ENOTEMPTY, "ENOTEMPTY"),
            (libc::ELOOP, "ELOOP"),
            (libc::ENOMSG, "ENOMSG"),
            (libc::EIDRM, "EIDRM"),
            (libc::ECHRNG, "ECHRNG"),
            (libc::EL2NSYNC, "EL2NSYNC"),
            (libc::EL3HLT, "EL3HLT"),
            (libc::EL3RST, "EL3RST"),
            (libc::ELNRNG, "ELNRNG"),
            (libc::EUNATCH, "EUNATCH"),
            (libc::ENOCSI, "ENOCSI"),
            (libc::EL2HLT, "EL2HLT"),
            (libc::EBADE, "EBADE"),
            (libc::EBADR, "EBADR"),
            (libc::EXFULL, "EXFULL"),
            (libc::ENOANO, "ENOANO"),
            (libc::EBADRQC, "EBADRQC"),
            (libc::EBADSLT, "EBADSLT"),
            (libc::EBFONT, "EBFONT"),
            (libc::ENOSTR, "ENOSTR"),
            (libc::ENODATA, "ENODATA"),
            (libc::ETIME, "ETIME"),
            (libc::ENOSR, "ENOSR"),
            (libc::ENONET, "ENONET"),
            (libc::ENOPKG, "ENOPKG"),
            (libc::EREMOTE, "EREMOTE"),
            (libc::ENOLINK, "ENOLINK"),
            (libc::EADV, "EADV"),
            (libc::ESRMNT, "ESRMNT"),
            (libc::ECOMM, "ECOMM"),
            (libc::EPROTO, "EPROTO"),
            (libc::EMULTIHOP, "EMULTIHOP"),
            (libc::EDOTDOT, "EDOTDOT"),
            (libc::EBADMSG, "EBADMSG"),
            (libc::EOVERFLOW, "EOVERFLOW"),
            (libc::ENOTUNIQ, "ENOTUNIQ"),
            (libc::EBADFD, "EBADFD"),
            (libc::EREMCHG, "EREMCHG"),
            (libc::ELIBACC, "ELIBACC"),
            (libc::ELIBBAD, "ELIBBAD"),
            (libc::ELIBSCN, "ELIBSCN"),
            (libc::ELIBMAX, "ELIBMAX"),
            (libc::ELIBEXEC, "ELIBEXEC"),
            (libc::EILSEQ, "EILSEQ"),
            (libc::ERESTART, "ERESTART"),
            (libc::ESTRPIPE, "ESTRPIPE"),
            (libc::EUSERS, "EUSERS"),
            (libc::ENOTSOCK, "ENOTSOCK"),
            (libc::EDESTADDRREQ, "EDESTADDRREQ"),
            (libc::EMSGSIZE, "EMSGSIZE"),
            (libc::EPROTOTYPE, "EPROTOTYPE"),
            (libc::ENOPROTOOPT, "ENOPROTOOPT"),
            (libc::EPROTONOSUPPORT, "EPROTONOSUPPORT"),
            (libc::ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT"),
            (libc::EOPNOTSUPP, "EOPNOTSUPP"),
            (libc::EPFNOSUPPORT, "EPFNOSUPPORT"),
            (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
            (libc::EADDRINUSE, "EADDRINUSE"),
            (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
            (libc::ENETDOWN, "ENETDOWN"),
            (libc::ENETUNREACH, "ENETUNREACH"),
            (libc::ENETRESET, "ENETRESET"),
            (libc::ECONNABORTED, "ECONNABORTED"),
            (libc::ECONNRESET, "ECONNRESET"),
            (libc::ENOBUFS, "ENOBUFS"),
            (libc::EISCONN, "EISCONN"),
            (libc::ENOTCONN, "ENOTCONN"),
            (libc::ESHUTDOWN, "ESHUTDOWN"),
            (libc::ETOOMANYREFS, "ETOOMANYREFS"),
            (libc::ETIMEDOUT, "ETIMEDOUT"),
            (libc::ECONNREFUSED, "ECONNREFUSED"),
            (libc::EHOSTDOWN, "EHOSTDOWN"),
            (libc::EHOSTUNREACH, "EHOSTUNREACH"),
            (libc::EALREADY, "EALREADY"),
            (libc::EINPROGRESS, "EINPROGRESS"),
            (libc::ESTALE, "ESTALE"),
            (libc::EUCLEAN, "EUCLEAN"),
            (libc::ENOTNAM, "ENOTNAM"),
            (libc::ENAVAIL, "ENAVAIL"),
            (libc::EISNAM, "EISNAM"),
            (libc::EREMOTEIO, "EREMOTEIO"),
            (libc::EDQUOT, "EDQUOT"),
            (libc::ENOMEDIUM, "ENOMEDIUM"),
            (libc::EMEDIUMTYPE, "EMEDIUMTYPE"),
            (libc::ECANCELED, "ECANCELED"),
            (libc::ENOKEY, "ENOKEY"),
            (libc::EKEYEXPIRED, "EKEYEXPIRED"),
            (libc::EKEYREVOKED, "EKEYREVOKED"),
            (libc::EKEYREJECTED, "EKEYREJECTED"),
            (libc::EOWNERDEAD, "EOWNERDEAD"),
            (libc::ENOTRECOVERABLE, "ENOTRECOVERABLE"),
            (libc::ERFKILL, "ERFKILL"),
            (libc::EHWPOISON, "EHWPOISON"),
        ];
        assert_eq!(libc_names.len(), 131);
        for (value, name) in libc_names {
            assert_eq!(errno_name(value), Some(name), "errno {value}");
        }
        let named = (1..=133).filter(|e| errno_name(*e).is_some()).count();
        assert_eq!(named, libc_names.len());
        assert_eq!(libc::EWOULDBLOCK, 11);
        assert_eq!(libc::EDEADLOCK, 35);
        assert_eq!(libc::ENOTSUP, 95);
    }

    #[test]
    fn dev_numbers() {
        // /dev/sda1 is 8:1, /dev/nvme0n1p2 259:2 — small numbers keep the classic layout.
        assert_eq!(makedev(8, 1), 0x801);
        assert_eq!(makedev(259, 2), 0x10302);
        assert_eq!(dev_major(0x801), 8);
        assert_eq!(dev_minor(0x801), 1);
        // Large numbers use the high bits.
        let dev = makedev(0x1234_5678, 0x9abc_def0);
        assert_eq!(dev, 0x1234_59ab_cde6_78f0);
        assert_eq!(dev_major(dev), 0x1234_5678);
        assert_eq!(dev_minor(dev), 0x9abc_def0);
        assert_eq!(makedev(0, 0x100), 0x10_0000);
        for (major, minor) in [
            (0, 0),
            (1, 3),
            (4095, 255),
            (4096, 256),
            (u32::MAX, u32::MAX),
        ] {
            let dev = makedev(major, minor);
            assert_eq!((dev_major(dev), dev_minor(dev)), (major, minor));
        }
        // Kernel encoding: MINORBITS 20.
        assert_eq!(kernel_dev_to_user((8 << 20) | 1), makedev(8, 1));
        assert_eq!(
            kernel_dev_to_user((259 << 20) | 0x1_2345),
            makedev(259, 0x1_2345)
        );
        assert_eq!(kernel_dev_to_user(0), 0);
        assert_eq!(dev_string(makedev(259, 2)), "259:2");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn makedev_matches_libc() {
        for (major, minor) in [(8, 1), (259, 2), (4096, 256), (0xfff_ffff, 0xff_ffff)] {
            let ours = makedev(major, minor);
            assert_eq!(ours, libc::makedev(major, minor));
            assert_eq!(dev_major(ours), libc::major(ours));
            assert_eq!(dev_minor(ours), libc::minor(ours));
        }
    }
}
