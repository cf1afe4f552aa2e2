//! Keyed pseudonyms: `HMAC-SHA256(key, KIND || 0x00 || VALUE)`, so the same value of the same
//! kind gets the same pseudonym under the same key (joins and counts still work, across
//! captures too) and no one without the key can tell or test what a pseudonym stands for.

use std::{fmt, io::Read as _, os::unix::fs::OpenOptionsExt as _, path::Path};

use anyhow::bail;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The shortest key accepted, bytes: 128 bits.
pub const MIN_KEY_BYTES: usize = 16;
/// The longest key file read, bytes.
pub const MAX_KEY_BYTES: usize = 4096;

/// What [`Key::id`] hashes.
const KEY_ID_INPUT: &[u8] = b"mmap-capture key id";

/// A redaction key. Its bytes are never printed (`Debug` shows only its id).
pub struct Key {
    bytes: Vec<u8>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id {})", self.id())
    }
}

impl Key {
    /// A key of `bytes`; refused when shorter than [`MIN_KEY_BYTES`].
    pub fn new(bytes: Vec<u8>) -> anyhow::Result<Self> {
        if bytes.len() < MIN_KEY_BYTES {
            bail!(
                "the key is {} bytes; a key has at least {MIN_KEY_BYTES} (make one with `head -c \
                 32 /dev/urandom > KEY`)",
                bytes.len()
            );
        }
        Ok(Self { bytes })
    }

    /// Reads the key file at `path`, every byte of it (a final newline too), without blocking
    /// on a FIFO; refuses an empty, short (< 16 bytes) or large (> 4 KiB) file. The error never
    /// shows the key.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let shown = path.display();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|err| anyhow::anyhow!("{shown}: cannot read the key file: {err}"))?;
        let meta = file
            .metadata()
            .map_err(|err| anyhow::anyhow!("{shown}: cannot read the key file: {err}"))?;
        if !meta.is_file() {
            bail!("{shown}: the key file is not a regular file");
        }
        let mut bytes = Vec::new();
        file.by_ref()
            .take(MAX_KEY_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| anyhow::anyhow!("{shown}: cannot read the key file: {err}"))?;
        if bytes.len() > MAX_KEY_BYTES {
            bail!("{shown}: the key file is larger than {MAX_KEY_BYTES} bytes; is it a key?");
        }
        if bytes.is_empty() {
            bail!(
                "{shown}: the key file is empty (make a key with `head -c 32 /dev/urandom > KEY`)"
            );
        }
        Self::new(bytes).map_err(|err| anyhow::anyhow!("{shown}: {err}"))
    }

    /// Identifies the key without revealing it: the first 16 hex digits of
    /// `HMAC-SHA256(key, "mmap-capture key id")`.
    pub fn id(&self) -> String {
        let mut digest = hex::encode(self.mac_raw(KEY_ID_INPUT));
        digest.truncate(16);
        digest
    }

    fn mac_raw(&self, input: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length: new_from_slice cannot fail for it.
        match Hmac::<Sha256>::new_from_slice(&self.bytes) {
            Ok(mut mac) => {
                mac.update(input);
                mac.finalize().into_bytes().into()
            }
            Err(_) => [0; 32],
        }
    }

    /// `HMAC-SHA256(key, kind || 0x00 || value)`.
    pub fn mac(&self, kind: &str, value: &[u8]) -> [u8; 32] {
        match Hmac::<Sha256>::new_from_slice(&self.bytes) {
            Ok(mut mac) => {
                mac.update(kind.as_bytes());
                mac.update(&[0]);
                mac.update(value);
                mac.finalize().into_bytes().into()
            }
            Err(_) => [0; 32],
        }
    }

    /// The first `digits` hex digits of the MAC of `value` as `kind`.
    pub fn hex(&self, kind: &str, value: &[u8], digits: usize) -> String {
        let mut text = hex::encode(self.mac(kind, value));
        text.truncate(digits);
        text
    }

    /// The first 8 bytes of the MAC, as an integer.
    pub fn u64(&self, kind: &str, value: u64) -> u64 {
        let mac = self.mac(kind, &value.to_le_bytes());
        let mut bytes = [0_u8; 8];
        bytes.copy_from_slice(mac.get(..8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::new(vec![byte; 32]).expect("a 32-byte key")
    }

    #[test]
    fn pseudonyms_depend_on_key_kind_and_value_only() {
        let (a, b) = (key(1), key(2));
        assert_eq!(a.hex("comm", b"bash", 12), key(1).hex("comm", b"bash", 12));
        assert_ne!(a.hex("comm", b"bash", 12), b.hex("comm", b"bash", 12));
        assert_ne!(a.hex("comm", b"bash", 12), a.hex("path", b"bash", 12));
        assert_ne!(a.hex("comm", b"bash", 12), a.hex("comm", b"bas", 12));
        // The separator keeps kind and value apart.
        assert_ne!(a.hex("ab", b"c", 16), a.hex("a", b"bc", 16));
        assert_eq!(a.hex("comm", b"bash", 12).len(), 12);
    }

    #[test]
    fn the_key_id_is_the_documented_hmac_and_never_the_key() {
        let k = key(7);
        let mut mac = Hmac::<Sha256>::new_from_slice(&[7; 32]).expect("key");
        mac.update(b"mmap-capture key id");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(k.id(), want[..16]);
        assert!(!format!("{k:?}").contains("0707"), "{k:?}");
    }

    #[test]
    fn short_and_empty_keys_are_refused() {
        assert!(Key::new(vec![1; 15]).is_err());
        assert!(Key::new(Vec::new()).is_err());
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        let err = Key::read(&empty).expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
        let short = dir.path().join("short");
        std::fs::write(&short, b"secret-short").expect("write");
        let err = Key::read(&short).expect_err("short");
        assert!(
            err.to_string().contains("12 bytes") && !err.to_string().contains("secret-short"),
            "{err}"
        );
    }
}
