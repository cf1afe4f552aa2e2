//! Links `mmap-analyze` with packed relative relocations (`-z pack-relative-relocs`, DT_RELR)
//! where the toolchain and the C library support them, and, in a release build, with the
//! functions its commands run laid out together.
//!
//! The binary is position-independent (ASLR), so the dynamic loader relocates every pointer in
//! its read-only data when it starts: about 233,000 relative relocations, 5.6 MB of `.rela.dyn`
//! in the RELA format. Packed as RELR they take 64 KB, and a command starts 1 ms sooner
//! (`--version`) and a short question on a small capture answers 4-6 ms sooner (measured,
//! docs/PERFORMANCE.md, 2026-12-04 late). A C library older than glibc 2.36 cannot load such a
//! binary, and an older linker does not know the option, so the build first links and runs a
//! small C program with it, and adds the option only when that works (never when cross
//! compiling: the program could not run here).
//!
//! The release build also gives the linker `link-order.txt`, the functions the commands run on
//! a small capture (`--symbol-ordering-file`, which lld knows), so that they lie together at the
//! start of `.text` instead of spread over its ~100 MB: a short question takes ~500 fewer page
//! faults and answers 2-3 ms sooner (docs/PERFORMANCE.md, stop 58). The names in the file carry
//! hashes of the release profile, the compiler and Cargo.lock; `make link-order` writes it
//! again. A linker without the option (GNU ld) links as before, with a warning.

use std::{env, fs, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(zstd_contexts)");
    // zstd's compression contexts kept for reuse (src/zstd_contexts.rs): every call in the
    // binary to the two functions reaches the wrappers there. GNU ld, gold and lld all know
    // --wrap.
    if env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux") {
        println!("cargo:rustc-cfg=zstd_contexts");
        println!("cargo:rustc-link-arg-bins=-Wl,--wrap=ZSTD_createCCtx,--wrap=ZSTD_freeCCtx");
    }
    link_order();
    println!("cargo:rerun-if-env-changed=MMAP_ANALYZE_NO_RELR");
    if env::var_os("MMAP_ANALYZE_NO_RELR").is_some() {
        return;
    }
    let target = env::var("TARGET").unwrap_or_default();
    let host = env::var("HOST").unwrap_or_default();
    if target != host || !target.ends_with("-linux-gnu") {
        return;
    }
    if probe() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    } else {
        println!(
            "cargo:warning=the linker or the C library cannot pack relative relocations \
             (-z pack-relative-relocs): mmap-analyze starts a few ms slower"
        );
    }
}

/// Whether a C program linked with the option here links without a warning and runs.
fn probe() -> bool {
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let source = out.join("relr_probe.c");
    let program = out.join("relr_probe");
    // A pointer in initialized data: a relative relocation in a position-independent program.
    let code = "static int x; int *p = &x; int main(void) { return *p; }\n";
    if fs::write(&source, code).is_err() {
        return false;
    }
    let linker = env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_owned());
    let linked = Command::new(&linker)
        .args(["-pie", "-fPIE", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&program)
        .arg(&source)
        .output()
        .is_ok_and(|o| o.status.success() && o.stderr.is_empty());
    linked && Command::new(&program).status().is_ok_and(|s| s.success())
}

/// Hands `link-order.txt` to the linker of a release build (see the top of this file), when
/// rustc's linker takes it.
fn link_order() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=MMAP_ANALYZE_NO_LINK_ORDER");
    // The names are those of the release profile (a debug build's hashes differ).
    if env::var_os("MMAP_ANALYZE_NO_LINK_ORDER").is_some()
        || env::var("PROFILE").as_deref() != Ok("release")
    {
        return;
    }
    let Some(order) = env::var_os("CARGO_MANIFEST_DIR")
        .map(|dir| PathBuf::from(dir).join("link-order.txt"))
        .filter(|order| order.is_file())
    else {
        return;
    };
    // -Xlinker: one argument each, whatever commas the path holds.
    let args = [
        "-Xlinker".to_owned(),
        format!("--symbol-ordering-file={}", order.display()),
        "-Xlinker".to_owned(),
        "--no-warn-symbol-ordering".to_owned(),
    ];
    if rustc_links_with(&args) {
        for arg in args {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    } else {
        println!(
            "cargo:warning=the linker does not take --symbol-ordering-file (lld does): \
             mmap-analyze's short commands take ~500 more page faults"
        );
    }
}

/// Whether rustc, with this build's flags and target, links an empty program with `args`
/// given to its linker.
fn rustc_links_with(args: &[String]) -> bool {
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let source = out.join("order_probe.rs");
    if fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut command = Command::new(rustc);
    command
        .arg("--crate-type=bin")
        .arg("-o")
        .arg(out.join("order_probe"));
    if let Ok(target) = env::var("TARGET") {
        command.arg("--target").arg(target);
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    command.args(flags.split('\x1f').filter(|flag| !flag.is_empty()));
    for arg in args {
        command.arg(format!("-Clink-arg={arg}"));
    }
    command.arg(&source);
    command.output().is_ok_and(|o| o.status.success())
}
