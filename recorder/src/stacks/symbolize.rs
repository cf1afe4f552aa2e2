//! Naming module file offsets with `blazesym` at segment end.
//!
//! blazesym opens the file it symbolizes by path. The module is not given to it by its own path
//! (which the traced process may have replaced since, by a symlink or a FIFO) but as
//! `/proc/self/fd/N` of the file the recorder opened safely when the stack was interned (see
//! [`super::elf`]), which names exactly that file. A fresh `Symbolizer` per segment end, dropped
//! before the files may close, so that its path-keyed cache never outlives the descriptors.

use std::{os::fd::AsRawFd, sync::Arc};

use blazesym::symbolize::{Input, Symbolized, Symbolizer, source::Source};

use super::elf::{ModuleFile, Via};

/// A frame's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Name {
    pub function: Arc<str>,
    pub file: Option<Arc<str>>,
    pub line: Option<u32>,
    pub via: Via,
}

/// Starts a symbolizer for one segment end: demangled names, file:line from DWARF where the
/// module has it; no separate debug files looked up (`mmap-analyze symbolize --debug-dir` does
/// that afterwards).
pub(crate) fn symbolizer() -> Symbolizer {
    Symbolizer::builder()
        .enable_code_info(true)
        .enable_demangling(true)
        .enable_inlined_fns(false)
        .set_debug_dirs(Some(Vec::<std::path::PathBuf>::new()))
        .build()
}

/// Names `offsets` (file offsets, already adjusted for return addresses) of `module`, one
/// result per offset (`None`: not named).
pub(crate) fn names(
    symbolizer: &Symbolizer,
    module: &ModuleFile,
    offsets: &[u64],
) -> Vec<Option<Name>> {
    let (Some(file), Some(via)) = (&module.file, module.via) else {
        return vec![None; offsets.len()];
    };
    let mut elf =
        blazesym::symbolize::source::Elf::new(format!("/proc/self/fd/{}", file.as_raw_fd()));
    elf.debug_syms = true;
    let src = Source::from(elf);
    let Ok(found) = symbolizer.symbolize(&src, Input::FileOffset(offsets)) else {
        return vec![None; offsets.len()];
    };
    let mut out: Vec<Option<Name>> = found
        .into_iter()
        .map(|s| match s {
            Symbolized::Sym(sym) => Some(Name {
                function: Arc::from(&*sym.name),
                file: sym
                    .code_info
                    .as_ref()
                    .map(|c| Arc::from(&*c.to_path().to_string_lossy())),
                line: sym.code_info.as_ref().and_then(|c| c.line),
                via,
            }),
            Symbolized::Unknown(_) => None,
        })
        .collect();
    out.resize(offsets.len(), None);
    out
}
