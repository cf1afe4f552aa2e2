//! zstd compression contexts kept for reuse instead of made anew for every column chunk read.
//!
//! Parquet 59's zstd codec makes a compression context with its decompression context
//! (`ZSTDCodec::new`), and its reader makes a codec for every column chunk it reads: 6,000 for
//! `top` on the 10 M-row benchmark capture, though reading never compresses. Making a context
//! asks the CPU whether it has BMI2 (`ZSTD_cpuSupportsBmi2`, three CPUID instructions, whatever
//! zstd was built with), and on a virtual machine every CPUID exits to the hypervisor: 6 % of
//! `top`'s CPU there was `ZSTD_createCCtx` alone (docs/PERFORMANCE.md). arrow-rs made its
//! contexts lazy after the release DataFusion 55 uses (apache/arrow-rs#9401).
//!
//! The build links `mmap-analyze` with `--wrap` for `ZSTD_createCCtx` and `ZSTD_freeCCtx`
//! (build.rs), so every caller in the binary reaches the two functions below. A context freed
//! while it is small (it never compressed, so it holds no work space) is reset to the state of
//! a new one (`ZSTD_CCtx_reset` with `ZSTD_reset_session_and_parameters`: parameters back to
//! their defaults, no dictionary) and kept, up to [`KEPT`]; the next context asked for is one
//! of those. A context that compressed (the writers of `redact`, `extract`, `pack`) is freed as
//! before, so the pool never holds their megabytes of work space.
//!
//! Every context in this binary comes from `ZSTD_createCCtx` (the `zstd` crate's `CCtx::create`,
//! which parquet and the format crate use); none is a static context (`ZSTD_initStaticCCtx`),
//! whose memory belongs to its caller and which could not be kept.

use std::sync::Mutex;

use zstd::zstd_safe::zstd_sys::{
    ZSTD_CCtx, ZSTD_CCtx_reset, ZSTD_ResetDirective, ZSTD_isError, ZSTD_sizeof_CCtx,
};

/// Contexts kept at most: more than a scan holds at once (a codec per column being read, per
/// partition).
const KEPT: usize = 64;

/// A kept context is at most this large: one that never compressed has no work space.
const SMALL: usize = 64 * 1024;

/// The kept contexts, as addresses (a context may move between threads; it is used by one at
/// a time, and a kept one by none).
static KEPT_CONTEXTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

unsafe extern "C" {
    fn __real_ZSTD_createCCtx() -> *mut ZSTD_CCtx;
    fn __real_ZSTD_freeCCtx(cctx: *mut ZSTD_CCtx) -> usize;
}

fn kept() -> std::sync::MutexGuard<'static, Vec<usize>> {
    KEPT_CONTEXTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `ZSTD_createCCtx`: a kept context, else a new one.
#[unsafe(no_mangle)]
pub extern "C" fn __wrap_ZSTD_createCCtx() -> *mut ZSTD_CCtx {
    if let Some(address) = kept().pop() {
        return address as *mut ZSTD_CCtx;
    }
    // SAFETY: zstd's own constructor, no arguments.
    unsafe { __real_ZSTD_createCCtx() }
}

/// `ZSTD_freeCCtx`: keeps a small context reset to new, frees any other.
///
/// # Safety
/// As for `ZSTD_freeCCtx`: `cctx` is null or a context from `ZSTD_createCCtx` not used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __wrap_ZSTD_freeCCtx(cctx: *mut ZSTD_CCtx) -> usize {
    if cctx.is_null() {
        return 0;
    }
    // SAFETY: `cctx` is a live context (the caller's contract).
    let keep = unsafe {
        ZSTD_sizeof_CCtx(cctx) <= SMALL
            && ZSTD_isError(ZSTD_CCtx_reset(
                cctx,
                ZSTD_ResetDirective::ZSTD_reset_session_and_parameters,
            )) == 0
    };
    if keep {
        let mut contexts = kept();
        if contexts.len() < KEPT {
            contexts.push(cctx as usize);
            return 0;
        }
    }
    // SAFETY: as above; not kept, so no one holds it after this.
    unsafe { __real_ZSTD_freeCCtx(cctx) }
}

#[cfg(test)]
mod tests {
    use zstd::zstd_safe::zstd_sys::{
        ZSTD_CCtx_setParameter, ZSTD_cParameter, ZSTD_compress2, ZSTD_compressBound,
        ZSTD_createCCtx, ZSTD_freeCCtx,
    };

    use super::*;

    fn compress(cctx: *mut ZSTD_CCtx, data: &[u8]) -> Vec<u8> {
        // SAFETY: a live context, buffers of the lengths given.
        unsafe {
            let mut out = vec![0u8; ZSTD_compressBound(data.len())];
            let n = ZSTD_compress2(
                cctx,
                out.as_mut_ptr().cast(),
                out.len(),
                data.as_ptr().cast(),
                data.len(),
            );
            assert_eq!(ZSTD_isError(n), 0);
            out.truncate(n);
            out
        }
    }

    #[test]
    fn a_context_freed_unused_comes_back_as_new_and_one_that_compressed_is_freed() {
        let data: Vec<u8> = (0..1_000_000u32)
            .flat_map(|i| (i % 1000).to_le_bytes())
            .collect();
        // SAFETY: zstd's API, each context used by this thread only and freed once.
        unsafe {
            // The calls in this crate reach the wrappers (build.rs links with --wrap).
            let first = ZSTD_createCCtx();
            let set = ZSTD_CCtx_setParameter(first, ZSTD_cParameter::ZSTD_c_checksumFlag, 1);
            assert_eq!(ZSTD_isError(set), 0);
            assert_eq!(ZSTD_freeCCtx(first), 0);
            // Other tests use contexts at the same time: this may or may not be `first`, and
            // must compress exactly as a new context does (no checksum: 4 bytes shorter).
            let second = ZSTD_createCCtx();
            let fresh = __real_ZSTD_createCCtx();
            let (reused, new) = (compress(second, &data), compress(fresh, &data));
            assert!(
                reused == new,
                "{} bytes from the context asked for (the one freed: {}), {} from a new one",
                reused.len(),
                second == first,
                new.len()
            );
            // Having compressed a megabyte, both hold work space: freed, not kept.
            assert!(ZSTD_sizeof_CCtx(second) > SMALL);
            assert_eq!(ZSTD_freeCCtx(second), 0);
            assert!(!kept().contains(&(second as usize)));
            assert_eq!(__real_ZSTD_freeCCtx(fresh), 0);
        }
    }
}
