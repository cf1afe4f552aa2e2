//! `CaptureReader::from_bytes` on arbitrary bytes, then every event read: whatever the bytes, an
//! error or events, never a panic that escapes the reader, a hang or unbounded memory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mmap_format::{guard, reader::CaptureReader};

fuzz_target!(
    init: {
        // As in the binaries: a library panic that the reader catches (`guard::catch`) is an
        // error, not a crash. Any other panic still aborts (libfuzzer-sys checks each run).
        guard::install_quiet_hook("fuzz reader");
    },
    |data: &[u8]| {
        let Ok(reader) = CaptureReader::from_bytes(data.to_vec()) else {
            return;
        };
        let _ = reader.num_rows();
        let _ = reader.created_by();
        let Ok(events) = reader.events() else {
            return;
        };
        for event in events {
            if event.is_err() {
                break;
            }
        }
    }
);
