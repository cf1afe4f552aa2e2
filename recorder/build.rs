//! Builds the eBPF programs (`recorder-ebpf`) for bpfel-unknown-none with nightly and
//! bpf-linker, the aya template's way. `make bootstrap` installs both.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .ok_or_else(|| anyhow!("recorder/ has no parent"))?
        .join("recorder-ebpf");
    let root = root.to_str().context("non-UTF-8 path to recorder-ebpf")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "recorder-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF programs failed; run `make bootstrap` (nightly rust-src and bpf-linker)",
    )
}
