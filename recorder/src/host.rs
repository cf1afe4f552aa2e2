//! Facts about the recording host that go into every capture.
use std::fs;

pub struct HostInfo {
    pub hostname: String,
    pub kernel_release: String,
    pub boot_id: String,
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
        }
    }
}
