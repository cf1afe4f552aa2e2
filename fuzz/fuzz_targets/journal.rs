//! The crash journal on arbitrary bytes: its parser (`journal::read`, run by `recover` inside
//! `guard::catch`, as here) and then, when it finds frames, `recover` itself on a crashed
//! capture that goes with the seed journal, and a read of the recovered file. Frames or an
//! error, never a panic that escapes, a hang or unbounded memory.
//!
//! Every frame ends in a CRC-32, which random mutations nearly always break; when the first
//! input byte is odd, the target first rewrites the header and frame CRCs to match (the byte
//! itself is not part of the journal), so that the fuzzer also reaches the payload decoding.
//!
//! Init writes the crashed capture's journal, the seed, into `$MMAP_FUZZ_SEED_DIR` when set
//! (`make fuzz` sets it to the target's corpus directory).

#![no_main]

use std::{
    borrow::Cow,
    fs,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use libfuzzer_sys::fuzz_target;
use mmap_format::{
    event::{Event, RowKind, Syscall},
    guard,
    journal::{self, FRAME_HEADER_LEN, FRAME_OVERHEAD, HEADER_LEN},
    metadata::CaptureMetadata,
    reader::CaptureReader,
    recover,
    writer::{CaptureWriter, WriterConfig},
};

/// The crashed capture's bytes (no footer) and where each run puts its capture.
struct Crashed {
    capture: Vec<u8>,
    dir: PathBuf,
}

static CRASHED: OnceLock<Crashed> = OnceLock::new();

fn event(i: i64) -> Event<'static> {
    Event {
        kind: RowKind::Syscall,
        syscall: Some(Syscall::Mmap),
        ts_ns: 1_795_759_273_000_000_000 + i * 1000,
        ts_exit_ns: Some(1_795_759_273_000_000_500 + i * 1000),
        pid: 100,
        tid: 100 + (i % 2) as u32,
        comm: Cow::Borrowed("app"),
        addr: Some(0),
        len: Some(4096),
        prot: Some(3),
        flags: Some(0x22),
        fd: Some(-1),
        off: Some(0),
        ret: Some(0x7f00_0000_0000 + i * 4096),
        ..Default::default()
    }
}

/// A journaled writer that flushed two row groups and died: the capture's bytes and journal.
fn crash(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let path = dir.join("seed.parquet");
    let (file, journal_file) = journal::create(&path).expect("create capture and journal");
    let config = WriterConfig {
        row_group_rows: 1000,
        ..WriterConfig::default()
    };
    let mut writer =
        CaptureWriter::with_journal(file, journal_file, config, &CaptureMetadata::default())
            .expect("journaled writer");
    for group in 0..2 {
        for i in 0..3 {
            writer.push(&event(group * 3 + i)).expect("push");
        }
        writer.flush().expect("flush");
    }
    std::mem::forget(writer);
    let capture = fs::read(&path).expect("read capture");
    let journal = fs::read(journal::journal_path(&path)).expect("read journal");
    (capture, journal)
}

fn dir() -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("mmap-fuzz-journal-{}", std::process::id()))
}

/// `bytes` with the header CRC and the CRC of every whole frame set to match.
fn fix_crcs(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() < HEADER_LEN {
        return bytes;
    }
    let crc = crc32fast::hash(&bytes[..12]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    let mut at = HEADER_LEN;
    while at + FRAME_OVERHEAD <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let Some(end) = (at + FRAME_HEADER_LEN)
            .checked_add(len)
            .filter(|end| end + 4 <= bytes.len())
        else {
            break;
        };
        let crc = crc32fast::hash(&bytes[at..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_le_bytes());
        at = end + 4;
    }
    bytes
}

fuzz_target!(
    init: {
        guard::install_quiet_hook("fuzz journal");
        let dir = dir();
        fs::create_dir_all(&dir).expect("work directory");
        let (capture, journal) = crash(&dir);
        if let Some(seeds) = std::env::var_os("MMAP_FUZZ_SEED_DIR") {
            fs::create_dir_all(&seeds).expect("seed directory");
            let mut seed = vec![0];
            seed.extend_from_slice(&journal);
            fs::write(Path::new(&seeds).join("crashed-capture-journal"), &seed).expect("seed");
            seed[0] = 1;
            fs::write(Path::new(&seeds).join("crashed-capture-journal-fixed-crc"), &seed)
                .expect("seed");
        }
        let _ = CRASHED.set(Crashed { capture, dir });
    },
    |data: &[u8]| {
        let Some((&mode, journal_bytes)) = data.split_first() else {
            return;
        };
        let journal_bytes = if mode & 1 == 1 {
            fix_crcs(journal_bytes.to_vec())
        } else {
            journal_bytes.to_vec()
        };
        let frames = match guard::catch(|| journal::read(&journal_bytes)) {
            Ok(Ok(frames)) => frames,
            _ => return,
        };
        if frames.is_empty() {
            return;
        }
        let crashed = CRASHED.get().expect("init ran");
        let capture = crashed.dir.join("capture.parquet");
        fs::write(&capture, &crashed.capture).expect("write capture");
        fs::write(journal::journal_path(&capture), &journal_bytes).expect("write journal");
        if recover::recover(&capture).is_ok()
            && let Ok(reader) = CaptureReader::open(&capture)
            && let Ok(events) = reader.events()
        {
            for event in events {
                if event.is_err() {
                    break;
                }
            }
        }
        let _ = fs::remove_file(journal::journal_path(&capture));
    }
);
