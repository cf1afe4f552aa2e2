//! Checks that run before anything is loaded, each failing with one line that says what is
//! missing and how to fix it.
use std::path::Path;

use anyhow::bail;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability bits of this process (from /proc/self/status).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Root, or CAP_BPF + CAP_PERFMON (CAP_SYS_ADMIN implies both).
pub fn check_privileges() -> anyhow::Result<()> {
    let caps = effective_caps();
    let has = |cap: u32| caps & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    bail!(
        "recording needs root or the capabilities {} (missing: {}); run it with sudo, or grant \
         them: sudo setcap cap_bpf,cap_perfmon+ep $(command -v mmap-recorder)",
        "CAP_BPF and CAP_PERFMON",
        missing.join(", ")
    )
}

/// BTF of the running kernel, needed for the struct offsets the programs use.
pub fn check_btf(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        bail!(
            "{} is missing: this kernel was built without BTF (CONFIG_DEBUG_INFO_BTF=y is needed)",
            path.display()
        );
    }
    Ok(())
}

const TRACEFS: &str = "/sys/kernel/tracing";

/// Tracepoints are attached through tracefs; mount it when it is not (as systemd would).
pub fn ensure_tracefs() -> anyhow::Result<()> {
    let events = Path::new(TRACEFS).join("events/syscalls");
    if events.exists() || Path::new("/sys/kernel/debug/tracing/events/syscalls").exists() {
        return Ok(());
    }
    let result = nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    match result {
        Ok(()) if events.exists() => {
            say!("mmap-recorder: mounted tracefs on {TRACEFS}");
            Ok(())
        }
        Ok(()) => bail!(
            "tracefs at {TRACEFS} has no events/syscalls: the kernel needs CONFIG_FTRACE_SYSCALLS=y"
        ),
        Err(err) => bail!(
            "tracefs is not mounted and mounting it failed ({err}); mount it with: \
             sudo mount -t tracefs tracefs {TRACEFS}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_btf_names_the_kernel_option() {
        let err = check_btf(Path::new("/nonexistent/vmlinux")).expect_err("missing");
        let text = err.to_string();
        assert!(text.contains("CONFIG_DEBUG_INFO_BTF"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }
}
