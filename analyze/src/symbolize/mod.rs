//! Naming frames afterwards (`mmap-analyze symbolize`): the frames a recording could not name
//! keep their module's build id and the file offset of their address; here the module (or its
//! debug file) is found in debug directories by build id ([`debug_dirs`]) and `blazesym` names
//! the offsets: function (demangled) and, when the file has DWARF line tables, file and line.

pub mod debug_dirs;

use std::{collections::BTreeMap, path::Path};

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

/// Names what it can of `wanted` in the ELF file at `path`; the others are not in the map. An
/// error (not an ELF file, unreadable) names none.
pub fn name_offsets(
    symbolizer: &Symbolizer,
    path: &Path,
    wanted: &[Wanted],
) -> BTreeMap<Wanted, Named> {
    let mut elf = Elf::new(path);
    elf.debug_syms = true;
    let source = Source::Elf(elf);
    let offsets: Vec<u64> = wanted.iter().map(|w| w.lookup()).collect();
    let Ok(found) = symbolizer.symbolize(&source, Input::FileOffset(offsets.as_slice())) else {
        return BTreeMap::new();
    };
    wanted
        .iter()
        .zip(found)
        .filter_map(|(w, symbolized)| match symbolized {
            Symbolized::Sym(sym) => {
                let code = sym.code_info.as_deref();
                Some((
                    *w,
                    Named {
                        function: sym.name.into_owned(),
                        file: code.map(|c| c.to_path().display().to_string()),
                        line: code.and_then(|c| c.line),
                    },
                ))
            }
            Symbolized::Unknown(_) => None,
        })
        .collect()
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
            &program,
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
        );
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
