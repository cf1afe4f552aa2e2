//! Every system call is known at every layer: the kernel side (`recorder_common::EventKind`,
//! whose syscall names are also the tracepoints the recorder attaches), the format
//! (`mmap_format::event::Syscall`) and the analyzer (`--syscall` values). A syscall added to one
//! layer and not to the others fails here; docs/DEVELOPING.md lists the steps.
use std::process::Command;

use mmap_capture_tests::workspace_bin;
use mmap_format::event::Syscall;
use recorder_common::EventKind;

fn kernel_syscalls() -> Vec<&'static str> {
    EventKind::ALL
        .iter()
        .filter_map(|kind| kind.syscall_name())
        .collect()
}

#[test]
fn kernel_side_and_format_know_the_same_system_calls() {
    let kernel = kernel_syscalls();
    for name in &kernel {
        let syscall: Syscall = name
            .parse()
            .unwrap_or_else(|e| panic!("the kernel side records {name}, the format does not: {e}"));
        assert_eq!(syscall.as_str(), *name);
    }
    for syscall in Syscall::ALL {
        assert!(
            kernel.contains(&syscall.as_str()),
            "the format knows {syscall}, the kernel side does not record it"
        );
    }
}

#[test]
fn the_analyzer_offers_every_recorded_system_call() {
    let out = Command::new(workspace_bin("mmap-analyze"))
        .args(["events", "--help"])
        .output()
        .expect("run mmap-analyze");
    let help = String::from_utf8_lossy(&out.stdout);
    let values = help
        .split("--syscall")
        .nth(1)
        .and_then(|rest| rest.split("[possible values: ").nth(1))
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("no possible values for --syscall in:\n{help}"));
    let offered: Vec<&str> = values.split(", ").map(str::trim).collect();
    for name in kernel_syscalls() {
        assert!(
            offered.contains(&name),
            "events --syscall does not offer {name}: {offered:?}"
        );
    }
}
