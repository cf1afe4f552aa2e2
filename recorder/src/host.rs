//! Facts about the recording host that go into every capture.
use std::fs;

pub struct HostInfo {
    pub hostname: String,
    pub kernel_release: String,
    pub boot_id: String,
    pub page_size: u32,
}

impl HostInfo {
    pub fn read() -> Self {
        let uts = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        Self {
            hostname: field(|u| u.nodename()),
            kernel_release: field(|u| u.release()),
            boot_id: fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            page_size: page_size(),
        }
    }
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size).unwrap_or(4096)
}
