//! `mmap-analyze redact`: a copy of captures that can be handed over, where names (paths,
//! thread names, user and group ids, host names, cgroup paths, command lines) are keyed
//! pseudonyms. docs/FORMAT.md ("Derived captures: redaction and provenance") has the table of
//! what happens to each column and key.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    process::ExitCode,
};

use clap::ValueEnum;
use mmap_format::{
    event::{Event, path_sources, sources, symbol_sources},
    metadata::{CaptureMetadata, Redaction},
};

use crate::{
    cli::Inputs,
    derive::{self, Output, Parents, WrittenFormat, pseudonym::Key},
    input,
};

/// Write a copy of captures that can be shared: names become keyed pseudonyms.
///
/// Paths, thread names (comm), user and group ids, the host name, cgroup paths and the
/// recorder's command line become pseudonyms made with HMAC-SHA256 and the key in KEY: the same
/// value gets the same pseudonym everywhere, so counts, joins and every command work on the
/// copy as on the original, and two captures redacted with the same key can be compared. No one
/// without the key can tell what a pseudonym stands for, or test a guess. Addresses, sizes,
/// protections, flags, times, process ids and device numbers stay; inode numbers stay unless
/// `--inodes hash`.
///
/// The copy is ONE capture file (the INPUTs' rows, segments in order) whose metadata says what
/// was redacted and how, with the key's id (never the key), and names each input by its SHA-256
/// (not by its file name). Keep the key to redact later captures with the same pseudonyms;
/// anyone who has it can test guesses.
///
/// The output is written to a temporary file next to OUT and renamed when complete; an existing
/// OUT is replaced only with --force, and never when it is an input, a directory or a symbolic
/// link.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// The capture file to write.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,

    /// The key: a file of 16 to 4096 bytes, used as it is (a final newline is part of it). Make
    /// one with `head -c 32 /dev/urandom > KEY` and keep it: the same key gives the same
    /// pseudonyms.
    #[arg(long, value_name = "KEY")]
    key_file: PathBuf,

    /// File paths and names (file_path, file_name, exec'd programs, memfd and [anon:] names).
    #[arg(long = "paths", value_enum, value_name = "HOW", default_value_t = PathMode::Dirs)]
    path_mode: PathMode,

    /// Thread names (comm), in the rows and in the recorder's targets.
    #[arg(long, value_enum, value_name = "HOW", default_value_t = Mode::Hash)]
    comm: Mode,

    /// User and group ids (uid, gid); 0 (root) stays 0.
    #[arg(long, value_enum, value_name = "HOW", default_value_t = Mode::Hash)]
    ids: Mode,

    /// The recording machine's host name and boot id.
    #[arg(long, value_enum, value_name = "HOW", default_value_t = Mode::Hash)]
    hostname: Mode,

    /// cgroup paths and ids (cgroup_path, cgroup_id, the recorder's --cgroup targets).
    #[arg(long, value_enum, value_name = "HOW", default_value_t = Mode::Hash)]
    cgroups: Mode,

    /// Inode numbers (file_ino, pidns_ino).
    #[arg(long, value_enum, value_name = "HOW", default_value_t = Mode::Keep)]
    inodes: Mode,

    /// Function names of call-stack frames (frame_function). Kept by default: they name code,
    /// not people or places, and they are what a stack is read for. The frames' modules and
    /// source files are paths (--paths); their build ids and offsets stay, so that `symbolize`
    /// can still name frames of the copy.
    #[arg(long, value_enum, value_name = "HOW", default_value_t = Mode::Keep)]
    functions: Mode,

    /// Replace OUT if it exists (a regular file that is not an input).
    #[arg(long)]
    force: bool,

    /// How what was written is printed.
    #[arg(long, value_enum, default_value_t = WrittenFormat::Text)]
    format: WrittenFormat,
}

const EXAMPLES: &str = "\
Examples:
  # A key, kept with the original captures (never shared)
  head -c 32 /dev/urandom > incident.key

  # All segments of a recording as one shareable file
  mmap-analyze redact rec/ -o shared.parquet --key-file incident.key

  # Hide every path, keep thread names
  mmap-analyze redact build.parquet -o shared.parquet --key-file incident.key \\
    --paths hash --comm keep

  # What was done, from the copy's metadata
  mmap-analyze sql shared.parquet \"SELECT DISTINCT comm FROM calls\"";

/// What is done to a kind of value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Replace it with its keyed pseudonym.
    Hash,
    /// Keep it as it is.
    Keep,
}

/// What is done to paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PathMode {
    /// Replace each component of a path with its pseudonym (the depth and shared directories
    /// stay visible); kernel names ([heap], [stack], [vdso], ...) stay.
    Hash,
    /// Keep paths under well-known system directories (/usr except /usr/local, /lib*, /bin,
    /// /sbin, /etc, /proc, /sys, /dev except /dev/shm); hash every other path as `hash` does,
    /// but keep its file's extension (`.so.6`, `.bin`).
    Dirs,
    /// Remove paths and file names (the kernel names [heap], [stack], ... stay).
    Drop,
    /// Keep paths as they are.
    Keep,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Hash => "hash",
            Self::Keep => "keep",
        }
    }
}

impl PathMode {
    fn name(self) -> &'static str {
        match self {
            Self::Hash => "hash",
            Self::Dirs => "dirs",
            Self::Drop => "drop",
            Self::Keep => "keep",
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    input::remote::refuse(&args.inputs.paths, "redact")?;
    let key = Key::read(&args.key_file)?;
    let readers = derive::order(input::open(&args.inputs)?);
    let output = Output::check(&args.output, args.force, &readers, &args.inputs.paths)?;
    let parents = Parents::hash(&readers)?;
    let mut redactor = Redactor::new(
        key,
        Choices {
            paths: args.path_mode,
            comm: args.comm,
            ids: args.ids,
            hostname: args.hostname,
            cgroups: args.cgroups,
            inodes: args.inodes,
            functions: args.functions,
        },
    );
    let merged = derive::merge(&readers)?;
    let mut hidden = parents.files.clone();
    for parent in &mut hidden {
        parent.file.clear();
    }
    let mut metadata = redactor.metadata(merged);
    metadata
        .provenance
        .push(derive::derivation("redact", hidden, Vec::new()));
    let rows = derive::all_rows(&readers)?;
    let mut written = derive::write(
        &output,
        &readers,
        &parents,
        rows,
        &metadata,
        "redacting",
        |row| Some(redactor.row(row)),
    )?;
    written.key_id = Some(redactor.key.id());
    derive::print(&written, args.format)?;
    Ok(ExitCode::SUCCESS)
}

/// What is done to each kind of value.
#[derive(Clone, Copy, Debug)]
pub struct Choices {
    pub paths: PathMode,
    pub comm: Mode,
    pub ids: Mode,
    pub hostname: Mode,
    pub cgroups: Mode,
    pub inodes: Mode,
    pub functions: Mode,
}

impl Choices {
    /// Command lines (the recorder's, the command it ran, an extract's selection) can hold any
    /// of the values: they are hashed unless everything is kept.
    fn command_lines(&self) -> Mode {
        let all_kept = self.paths == PathMode::Keep
            && [
                self.comm,
                self.ids,
                self.hostname,
                self.cgroups,
                self.inodes,
                self.functions,
            ]
            .iter()
            .all(|m| *m == Mode::Keep);
        if all_kept { Mode::Keep } else { Mode::Hash }
    }

    /// The `fields` of the [`Redaction`] metadata.
    fn fields(&self) -> BTreeMap<String, String> {
        [
            ("paths", self.paths.name()),
            ("comm", self.comm.name()),
            ("ids", self.ids.name()),
            ("hostname", self.hostname.name()),
            ("cgroups", self.cgroups.name()),
            ("inodes", self.inodes.name()),
            ("functions", self.functions.name()),
            ("command_line", self.command_lines().name()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// Kernel names of anonymous regions in /proc/PID/maps: not chosen by a program, kept.
const KERNEL_NAMES: [&str; 7] = [
    "[heap]",
    "[stack]",
    "[vdso]",
    "[vvar]",
    "[vvar_vclock]",
    "[vsyscall]",
    "[uprobes]",
];

/// Top directories whose paths `--paths dirs` keeps: the same on every Linux machine.
const SYSTEM_DIRS: [&str; 11] = [
    "usr", "lib", "lib32", "lib64", "libx32", "bin", "sbin", "etc", "proc", "sys", "dev",
];

/// Places under [`SYSTEM_DIRS`] whose names are the site's or a program's own: hashed.
const NOT_SYSTEM: [&str; 2] = ["/usr/local", "/dev/shm"];

/// The marker a truncated path starts with (`…/`).
const TRUNCATED: &str = "\u{2026}";

/// Entries held in the cache of pseudonyms before it is emptied (bounds its memory).
const CACHE_ENTRIES: usize = 1 << 16;

/// Turns rows and metadata into their redacted form.
pub struct Redactor {
    key: Key,
    choices: Choices,
    /// kind -> value -> pseudonym of the strings met, so a value repeated on many rows is hashed
    /// once.
    cache: HashMap<&'static str, HashMap<String, String>>,
    /// (kind, number) -> pseudonym of the numbers met.
    numbers: HashMap<(&'static str, u64), u64>,
    /// Entries in both caches.
    cached: usize,
}

impl Redactor {
    pub fn new(key: Key, choices: Choices) -> Self {
        Self {
            key,
            choices,
            cache: HashMap::new(),
            numbers: HashMap::new(),
            cached: 0,
        }
    }

    /// The first `digits` hex digits of the pseudonym of `value` as `kind`, cached.
    fn hex(&mut self, kind: &'static str, value: &str, digits: usize) -> String {
        if let Some(known) = self.cache.get(kind).and_then(|values| values.get(value)) {
            return known.clone();
        }
        let pseudonym = self.key.hex(kind, value.as_bytes(), digits);
        self.make_room();
        self.cache
            .entry(kind)
            .or_default()
            .insert(value.to_owned(), pseudonym.clone());
        pseudonym
    }

    /// The MAC of `value` as `kind`, as a u64, cached.
    fn number(&mut self, kind: &'static str, value: u64) -> u64 {
        if let Some(known) = self.numbers.get(&(kind, value)) {
            return *known;
        }
        let pseudonym = self.key.u64(kind, value);
        self.make_room();
        self.numbers.insert((kind, value), pseudonym);
        pseudonym
    }

    /// Empties the caches when they are full (bounds their memory).
    fn make_room(&mut self) {
        if self.cached >= CACHE_ENTRIES {
            self.cache.clear();
            self.numbers.clear();
            self.cached = 0;
        }
        self.cached += 1;
    }

    /// A redacted row.
    pub fn row(&mut self, mut row: Event<'static>) -> Event<'static> {
        let c = self.choices;
        // Paths first: file_name follows what became of file_path.
        let original_path = row.file_path.take();
        let original_name = row.file_name.take();
        let path = original_path.as_deref().and_then(|p| self.path(p));
        let name = original_name.as_deref().and_then(|name| {
            let last = original_path.as_deref().and_then(|p| p.rsplit('/').next());
            match (&path, c.paths) {
                (_, PathMode::Keep) => Some(name.to_owned()),
                (_, PathMode::Drop) => None,
                // The name is the path's last component: the redacted path's last component.
                (Some(p), _) if last == Some(name) => p.rsplit('/').next().map(str::to_owned),
                _ => Some(self.component(name, c.paths == PathMode::Dirs)),
            }
        });
        if path.is_none() && original_path.is_some() {
            // Dropped: what described the path goes with it.
            row.path_source = None;
            row.path_truncated = None;
            row.path_lossy = None;
        }
        row.file_path = path.map(Cow::Owned);
        row.file_name = name.map(Cow::Owned);

        if c.comm == Mode::Hash {
            row.comm = Cow::Owned(self.comm(&row.comm));
        }
        if c.cgroups == Mode::Hash {
            row.cgroup_path = row.cgroup_path.take().map(|p| Cow::Owned(self.cgroup(&p)));
            row.cgroup_id = self.nonzero_u64("cgroup_id", row.cgroup_id);
        }
        if c.ids == Mode::Hash {
            row.uid = self.id("uid", row.uid);
            row.gid = self.id("gid", row.gid);
        }
        if c.inodes == Mode::Hash {
            row.file_ino = row.file_ino.map(|ino| self.nonzero_u64("ino", ino));
            row.pidns_ino = row.pidns_ino.map(|ino| self.id("pidns_ino", ino));
        }
        // Call-stack frames: the module and the source file are paths; the function name stays
        // unless told.
        row.frame_module = row
            .frame_module
            .take()
            .and_then(|p| self.path(&p))
            .map(Cow::Owned);
        row.frame_file = row
            .frame_file
            .take()
            .and_then(|p| self.path(&p))
            .map(Cow::Owned);
        if c.functions == Mode::Hash {
            row.frame_function = row
                .frame_function
                .take()
                .map(|f| Cow::Owned(format!("f-{}", self.hex("function", &f, 16))));
        }
        // Names of the format's own lists stay; anything else in these columns is hashed.
        row.source = row.source.take().map(|s| {
            if KNOWN_SOURCES.contains(&s.as_ref()) {
                s
            } else {
                Cow::Owned(format!("x-{}", self.hex("name", &s, 16)))
            }
        });
        row.symbol_source = row.symbol_source.take().map(|s| {
            if KNOWN_SYMBOL_SOURCES.contains(&s.as_ref()) {
                s
            } else {
                Cow::Owned(format!("x-{}", self.hex("name", &s, 16)))
            }
        });
        row.path_source = row.path_source.take().map(|s| {
            if KNOWN_PATH_SOURCES.contains(&s.as_ref()) {
                s
            } else {
                Cow::Owned(format!("x-{}", self.hex("name", &s, 16)))
            }
        });
        row
    }

    /// A path as `--paths` says; `None` when it is dropped.
    fn path(&mut self, path: &str) -> Option<String> {
        let mode = self.choices.paths;
        if mode == PathMode::Keep || KERNEL_NAMES.contains(&path) {
            return Some(path.to_owned());
        }
        if let Some(name) = path
            .strip_prefix("[anon:")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            return (mode != PathMode::Drop)
                .then(|| format!("[anon:{}]", self.hex("anon", name, 16)));
        }
        if mode == PathMode::Drop {
            return None;
        }
        if path.starts_with('[') {
            // A bracketed name this version does not know: stays bracketed (anonymous memory).
            return Some(format!("[x-{}]", self.hex("anon", path, 16)));
        }
        if let Some(name) = path.strip_prefix("/memfd:") {
            return Some(format!("/memfd:{}", self.hex("memfd", name, 16)));
        }
        let dirs = mode == PathMode::Dirs;
        if dirs && is_system(path) {
            return Some(path.to_owned());
        }
        let count = path.split('/').count();
        let parts: Vec<String> = path
            .split('/')
            .enumerate()
            .map(|(i, part)| match part {
                "" | "." | ".." | TRUNCATED => part.to_owned(),
                _ => self.component(part, dirs && i + 1 == count),
            })
            .collect();
        Some(parts.join("/"))
    }

    /// One component of a path: 16 hex digits, with the name's extension when `extension`.
    fn component(&mut self, name: &str, extension: bool) -> String {
        let hashed = self.hex("path", name, 16);
        if extension {
            format!("{hashed}{}", extension_of(name))
        } else {
            hashed
        }
    }

    /// A thread name: `c-` and 12 hex digits (14 bytes: within the kernel's 15, so `--comm`
    /// matches it).
    fn comm(&mut self, comm: &str) -> String {
        format!("c-{}", self.hex("comm", comm, 12))
    }

    /// A cgroup path, component by component (the root `/` stays).
    fn cgroup(&mut self, path: &str) -> String {
        let parts: Vec<String> = path
            .split('/')
            .map(|part| match part {
                "" | "." | ".." => part.to_owned(),
                _ => self.hex("cgroup", part, 16),
            })
            .collect();
        parts.join("/")
    }

    /// An id: 0 stays 0 (root); any other becomes a number with the top bit set (2^31 and
    /// above, never a real id of a usual system), from its pseudonym.
    fn id(&mut self, kind: &'static str, id: u32) -> u32 {
        if id == 0 {
            return 0;
        }
        let low = u32::try_from(self.number(kind, u64::from(id)) & 0x7fff_ffff).unwrap_or(0);
        0x8000_0000 | low
    }

    /// A number: 0 stays 0 (none); any other becomes a non-zero number from its pseudonym.
    fn nonzero_u64(&mut self, kind: &'static str, value: u64) -> u64 {
        if value == 0 {
            return 0;
        }
        self.number(kind, value).max(1)
    }

    /// A command line of the recorder: its option names (`-o`, `--comm`) and plain numbers
    /// stay, the value after `--name=` and every other argument become `a-` and 16 hex digits,
    /// and so does every argument after `--` (the recorded command's own); a program named
    /// `mmap-recorder` stays.
    fn command_line(&mut self, args: &[String]) -> Vec<String> {
        let mut own = true;
        args.iter()
            .map(|arg| {
                let word = if own {
                    self.argument(arg)
                } else {
                    self.argument_value(arg)
                };
                if arg == "--" {
                    own = false;
                }
                word
            })
            .collect()
    }

    /// An argument of an mmap-capture tool: see [`Redactor::command_line`].
    fn argument(&mut self, arg: &str) -> String {
        let option = |text: &str| {
            let name = text.trim_start_matches('-');
            text.starts_with('-')
                && text.len() - name.len() <= 2
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        let kept = arg == "--"
            || RECORDER_WORDS.contains(&arg)
            || option(arg)
            || (!arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()));
        if kept {
            return arg.to_owned();
        }
        if let Some((name, value)) = arg.split_once('=')
            && option(name)
        {
            return format!("{name}={}", self.argument_value(value));
        }
        if arg.rsplit('/').next() == Some("mmap-recorder") && !arg.contains("..") {
            return "mmap-recorder".to_owned();
        }
        self.argument_value(arg)
    }

    fn argument_value(&mut self, value: &str) -> String {
        format!("a-{}", self.hex("arg", value, 16))
    }

    /// The redacted metadata: host name and boot id, targets, command lines, earlier
    /// provenance, and the [`Redaction`] that says what was done.
    pub fn metadata(&mut self, mut meta: CaptureMetadata) -> CaptureMetadata {
        let c = self.choices;
        if c.hostname == Mode::Hash {
            meta.hostname = format!("host-{}", self.hex("hostname", &meta.hostname.clone(), 16));
            if !meta.boot_id.is_empty() {
                let mac = self.key.mac("boot_id", meta.boot_id.as_bytes());
                meta.boot_id = derive::uuid_shaped(&mac);
            }
        }
        if c.comm == Mode::Hash {
            meta.targets.comms = meta.targets.comms.iter().map(|n| self.comm(n)).collect();
        }
        if c.cgroups == Mode::Hash {
            meta.targets.cgroups = meta
                .targets
                .cgroups
                .iter()
                .map(|p| self.cgroup(p))
                .collect();
        }
        if c.command_lines() == Mode::Hash {
            meta.command_line = self.command_line(&meta.command_line);
            // The recorded program's own arguments: every one hashed.
            meta.targets.command = meta
                .targets
                .command
                .take()
                .map(|command| command.iter().map(|a| self.argument_value(a)).collect());
            for step in &mut meta.provenance {
                step.selection = step.selection.iter().map(|a| self.argument(a)).collect();
            }
        }
        // Earlier steps' input names can tell what the capture was about.
        for step in &mut meta.provenance {
            for parent in &mut step.parents {
                parent.file.clear();
            }
        }
        let mut fields = c.fields();
        if let Some(earlier) = &meta.redaction
            && earlier.key_id != self.key.id()
        {
            fields.insert("earlier_key_id".to_owned(), earlier.key_id.clone());
        }
        meta.redaction = Some(Redaction {
            method: "hmac-sha256".to_owned(),
            key_id: self.key.id(),
            fields,
            tool: derive::tool(),
        });
        meta
    }
}

/// Words of the recorder's command line that stay: its subcommand.
const RECORDER_WORDS: [&str; 1] = ["record"];

const KNOWN_SOURCES: [&str; 12] = [
    sources::TRACEPOINT,
    sources::TRACEPOINT_EXIT,
    sources::RAW_TRACEPOINT,
    sources::TP_BTF,
    sources::TP_BTF_EXIT,
    sources::KPROBE,
    sources::FENTRY,
    sources::PROC_MAPS_START,
    sources::PROC_MAPS_EXEC,
    sources::KERNEL,
    sources::STACK_FP,
    sources::STACK_DWARF,
];

const KNOWN_SYMBOL_SOURCES: [&str; 3] = [
    symbol_sources::MAP_FILES,
    symbol_sources::PATH,
    symbol_sources::DEBUG_DIR,
];

const KNOWN_PATH_SOURCES: [&str; 5] = [
    path_sources::KERNEL_DENTRY_WALK,
    path_sources::PROC_MAP_FILES,
    path_sources::PROC_FD,
    path_sources::PROC_MAPS,
    path_sources::EXEC_FILENAME,
];

/// Whether `--paths dirs` keeps `path`: an absolute path under one of [`SYSTEM_DIRS`], not
/// under [`NOT_SYSTEM`], without `.` or `..` components.
fn is_system(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let under = |dir: &str| path == dir || path.starts_with(&format!("{dir}/"));
    if NOT_SYSTEM.iter().any(|dir| under(dir)) {
        return false;
    }
    let mut parts = rest.split('/');
    parts.next().is_some_and(|top| SYSTEM_DIRS.contains(&top))
        && !rest.split('/').any(|part| part == "." || part == "..")
}

/// The extension `--paths dirs` keeps: a shared library's `.so` with its version
/// (`.so.6`, `.so.1.2.3`), else the last `.` part when it is 1 to 8 ASCII letters or digits and
/// the name has something before it; else nothing.
fn extension_of(name: &str) -> &str {
    if let Some(at) = name.rfind(".so")
        && at > 0
    {
        let tail = &name[at..];
        let version = &tail[3..];
        if version.is_empty()
            || (version.starts_with('.')
                && version[1..]
                    .split('.')
                    .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())))
        {
            return tail;
        }
    }
    match name.rfind('.') {
        Some(at) if at > 0 => {
            let ext = &name[at + 1..];
            if (1..=8).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
                &name[at..]
            } else {
                ""
            }
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(paths: PathMode) -> Redactor {
        Redactor::new(
            Key::new(vec![9; 32]).expect("key"),
            Choices {
                paths,
                comm: Mode::Hash,
                ids: Mode::Hash,
                hostname: Mode::Hash,
                cgroups: Mode::Hash,
                inodes: Mode::Hash,
                functions: Mode::Keep,
            },
        )
    }

    #[test]
    fn extensions_kept_by_dirs() {
        for (name, ext) in [
            ("libc.so.6", ".so.6"),
            ("libfoo.so", ".so"),
            ("libx.so.1.2.3", ".so.1.2.3"),
            ("model.bin", ".bin"),
            ("archive.tar.gz", ".gz"),
            (".bashrc", ""),
            ("noext", ""),
            ("x.customer-acme", ""),
            ("libsecret.so.beta", ".beta"),
            ("a.verylongextension", ""),
        ] {
            assert_eq!(extension_of(name), ext, "{name}");
        }
    }

    #[test]
    fn system_paths_are_recognised() {
        for (path, system) in [
            ("/usr/lib/x86_64-linux-gnu/libc.so.6", true),
            ("/lib64/ld-linux-x86-64.so.2", true),
            ("/etc/ld.so.cache", true),
            ("/usr/local/lib/libacme.so", false),
            ("/dev/shm/acme-buffer", false),
            ("/dev/zero", true),
            ("/usr/../home/alice/x", false),
            ("/home/alice/x", false),
            ("usr/lib/x", false),
            ("/usrlocal/x", false),
        ] {
            assert_eq!(is_system(path), system, "{path}");
        }
    }

    #[test]
    fn paths_by_mode() {
        let mut r = redactor(PathMode::Dirs);
        assert_eq!(
            r.path("/usr/lib/libc.so.6").as_deref(),
            Some("/usr/lib/libc.so.6")
        );
        assert_eq!(r.path("[heap]").as_deref(), Some("[heap]"));
        let secret = r.path("/home/alice/project/model.bin").expect("hashed");
        assert!(
            !secret.contains("alice") && secret.ends_with(".bin"),
            "{secret}"
        );
        assert_eq!(secret.split('/').count(), 5, "{secret}");
        let anon = r.path("[anon:secret pool]").expect("hashed");
        assert!(
            anon.starts_with("[anon:") && !anon.contains("secret"),
            "{anon}"
        );
        let memfd = r.path("/memfd:secret").expect("hashed");
        assert!(
            memfd.starts_with("/memfd:") && !memfd.contains("secret"),
            "{memfd}"
        );
        let cut = r.path("\u{2026}/alice/x.so").expect("hashed");
        assert!(
            cut.starts_with("\u{2026}/") && !cut.contains("alice"),
            "{cut}"
        );
        // The same directory gives the same component.
        let other = r.path("/home/alice/other").expect("hashed");
        assert_eq!(secret.split('/').nth(2), other.split('/').nth(2));

        let mut r = redactor(PathMode::Hash);
        let lib = r.path("/usr/lib/libc.so.6").expect("hashed");
        assert!(!lib.contains("usr") && !lib.contains(".so"), "{lib}");

        let mut r = redactor(PathMode::Drop);
        assert_eq!(r.path("/usr/lib/libc.so.6"), None);
        assert_eq!(r.path("[stack]").as_deref(), Some("[stack]"));
        assert_eq!(r.path("[anon:x]"), None);
    }

    #[test]
    fn rows_keep_file_name_the_last_component_of_file_path() {
        let mut r = redactor(PathMode::Dirs);
        let row = Event {
            file_path: Some("/home/alice/model.bin".into()),
            file_name: Some("model.bin".into()),
            comm: "alice-tool".into(),
            uid: 1000,
            gid: 0,
            file_ino: Some(1234),
            cgroup_path: Some("/user.slice/alice.scope".into()),
            cgroup_id: 77,
            ..Default::default()
        };
        let out = r.row(row);
        let path = out.file_path.as_deref().expect("path");
        let name = out.file_name.as_deref().expect("name");
        assert_eq!(path.rsplit('/').next(), Some(name));
        assert!(
            !out.comm.contains("alice") && out.comm.len() <= 15,
            "{}",
            out.comm
        );
        assert!(out.uid >= 0x8000_0000 && out.gid == 0);
        assert!(out.file_ino.is_some_and(|ino| ino != 1234 && ino != 0));
        assert!(
            !out.cgroup_path
                .as_deref()
                .unwrap_or_default()
                .contains("alice")
        );
        assert_ne!(out.cgroup_id, 77);
    }

    #[test]
    fn command_line_arguments() {
        let mut r = redactor(PathMode::Dirs);
        assert_eq!(r.argument("--comm"), "--comm");
        assert_eq!(r.argument("-o"), "-o");
        assert_eq!(r.argument("1234"), "1234");
        assert_eq!(r.argument("/usr/bin/mmap-recorder"), "mmap-recorder");
        let value = r.argument("--comm=secret");
        assert!(
            value.starts_with("--comm=a-") && !value.contains("secret"),
            "{value}"
        );
        let path = r.argument("/home/alice/out.parquet");
        assert!(path.starts_with("a-") && !path.contains("alice"), "{path}");
        assert!(r.argument("---x").starts_with("a-"));
        let line: Vec<String> = ["mmap-recorder", "record", "--", "/x/tool", "--secret"]
            .map(str::to_owned)
            .into();
        let redacted = r.command_line(&line);
        assert_eq!(redacted[..3], ["mmap-recorder", "record", "--"]);
        assert!(
            redacted[3..].iter().all(|a| a.starts_with("a-")),
            "{redacted:?}"
        );
    }
}
