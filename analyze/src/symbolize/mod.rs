//! Naming frames afterwards (`mmap-analyze symbolize`): the frames a recording could not name
//! keep their module's build id and the file offset of their address; here the module (or its
//! debug file) is found in debug directories by build id ([`debug_dirs`]) and `blazesym` names
//! the offsets: function (demangled) and, when the file has DWARF line tables, file and line.

pub mod debug_dirs;

use std::{
    collections::BTreeMap,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use blazesym::symbolize::{
    Input, Symbolized, Symbolizer,
    source::{Elf, Source},
};

/// A frame to name: a file offset in a module, and whether it is a return address (every frame
/// but the innermost), which names the call instruction before it: offset - 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wanted {
    pub offset: u64,
    pub is_return: bool,
}

impl Wanted {
    /// The offset looked up.
    fn lookup(self) -> u64 {
        if self.is_return {
            self.offset.saturating_sub(1)
        } else {
            self.offset
        }
    }
}

/// A name found for a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// Names what it can of `wanted` in `files` (ELF files with the module's build id): each file
/// offset is placed by the program headers of the first file that maps it (an executable or
/// library; a debug file's segments hold no code), then named by the first file that has a
/// symbol for it (debug files first: they have the line tables). Returns the names, or why none
/// could be placed when no file maps any.
pub fn name_offsets(
    symbolizer: &Symbolizer,
    files: &[PathBuf],
    wanted: &[Wanted],
) -> Result<BTreeMap<Wanted, Named>, &'static str> {
    let layouts: Vec<Vec<Segment>> = files.iter().filter_map(|f| segments(f)).collect();
    let placed: Vec<(Wanted, u64)> = wanted
        .iter()
        .filter_map(|w| {
            layouts
                .iter()
                .find_map(|layout| virtual_offset(layout, w.lookup()))
                .map(|v| (*w, v))
        })
        .collect();
    if placed.is_empty() && !wanted.is_empty() {
        return Err(
            "no file with this build id maps the offsets (a debug file alone cannot \
                    place a file offset: add the executable or library to a --debug-dir)",
        );
    }
    let offsets: Vec<u64> = placed.iter().map(|(_, v)| *v).collect();
    let mut named = BTreeMap::new();
    for file in files {
        let mut elf = Elf::new(file);
        elf.debug_syms = true;
        let source = Source::Elf(elf);
        let Ok(found) = symbolizer.symbolize(&source, Input::VirtOffset(offsets.as_slice())) else {
            continue;
        };
        for ((w, _), symbolized) in placed.iter().zip(found) {
            if named.contains_key(w) {
                continue;
            }
            if let Symbolized::Sym(sym) = symbolized {
                let code = sym.code_info.as_deref();
                named.insert(
                    *w,
                    Named {
                        function: sym.name.into_owned(),
                        file: code.map(|c| c.to_path().display().to_string()),
                        line: code.and_then(|c| c.line),
                    },
                );
            }
        }
    }
    Ok(named)
}

/// A loadable segment of an ELF file: where it is in the file and where it is mapped.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    file_start: u64,
    file_size: u64,
    address: u64,
}

/// The loadable segments of the ELF file at `path` that hold bytes of the file, or `None` when
/// it has none (a debug file) or is not a readable regular ELF file. Read without following a
/// link or blocking, and without reading the whole file.
pub fn segments(path: &Path) -> Option<Vec<Segment>> {
    use object::{Object as _, ObjectSegment as _};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let cache = object::ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    let segments: Vec<Segment> = elf
        .segments()
        .map(|s| {
            let (file_start, file_size) = s.file_range();
            Segment {
                file_start,
                file_size,
                address: s.address(),
            }
        })
        .filter(|s| s.file_size > 0)
        .collect();
    (!segments.is_empty()).then_some(segments)
}

/// The address in the file's own layout of file offset `offset`.
fn virtual_offset(layout: &[Segment], offset: u64) -> Option<u64> {
    layout
        .iter()
        .find(|s| s.file_start <= offset && offset - s.file_start < s.file_size)
        .map(|s| offset - s.file_start + s.address)
}

/// A symbolizer that demangles and reads line tables, and looks for no debug file outside the
/// file it is given (no `/usr/lib/debug`, no debug link elsewhere).
pub fn symbolizer() -> Symbolizer {
    Symbolizer::builder()
        .enable_code_info(true)
        .enable_inlined_fns(false)
        .enable_demangling(true)
        .set_debug_dirs(Some::<[&Path; 0]>([]))
        .build()
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A program compiled with `cc -g` is named by file offset: function, source file, line; a
    /// return address by the byte before it; an offset past its end not at all. (GNU ld maps a
    /// position-independent executable's text at an address equal to its file offset, so `nm`'s
    /// address is the offset.)
    #[test]
    fn offsets_in_a_program_get_its_function_names_and_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("p.c");
        std::fs::write(
            &source,
            "__attribute__((noinline)) int named_here(int x) { return x * 7 + 3; }\n\
             int main(int argc, char **argv) { (void)argv; return named_here(argc); }\n",
        )
        .expect("write");
        let program = dir.path().join("p");
        let status = Command::new("cc")
            .args(["-g", "-O1", "-fPIE", "-pie", "-Wl,--build-id=sha1", "-o"])
            .arg(&program)
            .arg(&source)
            .status()
            .expect("run cc");
        assert!(status.success());
        let nm = Command::new("nm").arg(&program).output().expect("run nm");
        let listing = String::from_utf8_lossy(&nm.stdout);
        let addr = listing
            .lines()
            .find(|l| l.ends_with(" named_here"))
            .and_then(|l| u64::from_str_radix(l.split(' ').next()?, 16).ok())
            .expect("named_here in nm");
        let named = name_offsets(
            &symbolizer(),
            std::slice::from_ref(&program),
            &[
                Wanted {
                    offset: addr + 2,
                    is_return: false,
                },
                Wanted {
                    offset: addr + 1,
                    is_return: true,
                },
                Wanted {
                    offset: 1 << 40,
                    is_return: false,
                },
            ],
        )
        .expect("the program places its offsets");
        assert_eq!(named.len(), 2, "{named:?}");
        for named in named.values() {
            assert_eq!(named.function, "named_here");
            assert!(
                named.file.as_deref().is_some_and(|f| f.ends_with("p.c")),
                "{named:?}"
            );
            assert_eq!(named.line, Some(1));
        }
        assert!(debug_dirs::build_id_of(&program).is_some_and(|id| id.len() == 40));
    }
}
