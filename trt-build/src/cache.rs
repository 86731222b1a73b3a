//! Content-addressed engine cache: one directory per key holding the engine, its manifest,
//! the ONNX it was built from and the calibration artifacts, plus `entry.json` with the
//! SHA-256 of every file. Entries are written to a temporary directory and renamed into place,
//! so concurrent builds never see half an entry; a corrupt entry (hash mismatch, missing file)
//! is moved aside and rebuilt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// File names inside an entry.
pub(crate) const ENGINE: &str = "engine.trt";
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const ONNX: &str = "model.onnx";
const ENTRY: &str = "entry.json";

/// SHA-256 as lower-case hex.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[derive(Debug, Serialize, Deserialize)]
struct EntryIndex {
    key: String,
    files: BTreeMap<String, String>,
}

/// A verified cache entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) dir: PathBuf,
}

impl Entry {
    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub(crate) fn read(&self, file: &str) -> Result<Vec<u8>, Error> {
        let p = self.path(file);
        std::fs::read(&p).map_err(|e| Error::io(p.display(), e))
    }
}

/// Why a lookup found nothing usable.
#[derive(Debug)]
pub(crate) enum Miss {
    /// No entry.
    Absent,
    /// An entry exists but failed verification (moved aside).
    Corrupt(String),
}

/// Looks up `key` under `root` and verifies every file's hash.
pub(crate) fn lookup(root: &Path, key: &str, quarantine: bool) -> Result<Entry, Miss> {
    let dir = root.join(key);
    if !dir.is_dir() {
        return Err(Miss::Absent);
    }
    match verify(&dir, key) {
        Ok(()) => Ok(Entry { dir }),
        Err(why) => {
            if quarantine {
                let aside = root.join(format!(".corrupt-{key}-{}", std::process::id()));
                let _ = std::fs::rename(&dir, &aside);
                let _ = std::fs::remove_dir_all(&aside);
            }
            Err(Miss::Corrupt(why))
        }
    }
}

fn verify(dir: &Path, key: &str) -> Result<(), String> {
    let index = std::fs::read(dir.join(ENTRY)).map_err(|e| format!("{ENTRY}: {e}"))?;
    let index: EntryIndex = serde_json::from_slice(&index).map_err(|e| format!("{ENTRY}: {e}"))?;
    if index.key != key {
        return Err(format!("{ENTRY} is for key {} (expected {key})", index.key));
    }
    for required in [ENGINE, MANIFEST] {
        if !index.files.contains_key(required) {
            return Err(format!("{required} is not listed"));
        }
    }
    for (file, expected) in &index.files {
        let bytes = std::fs::read(dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
        let actual = sha256(&bytes);
        if &actual != expected {
            return Err(format!(
                "{file} has SHA-256 {actual}, expected {expected} (truncated or modified)"
            ));
        }
    }
    Ok(())
}

/// Stores files as entry `key` atomically. When another build stored the same key first, its
/// entry is kept (after verification) and ours discarded.
pub(crate) fn store(root: &Path, key: &str, files: &[(&str, &[u8])]) -> Result<Entry, Error> {
    std::fs::create_dir_all(root)
        .map_err(|e| Error::io(format!("creating cache {}", root.display()), e))?;
    let tmp = root.join(format!(".tmp-{key}-{}", unique_suffix()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
    let mut index = EntryIndex {
        key: key.to_string(),
        files: BTreeMap::new(),
    };
    for (name, bytes) in files {
        std::fs::write(tmp.join(name), bytes)
            .map_err(|e| Error::io(tmp.join(name).display(), e))?;
        index.files.insert(name.to_string(), sha256(bytes));
    }
    let json = serde_json::to_vec_pretty(&index).expect("entry index serializes");
    std::fs::write(tmp.join(ENTRY), json).map_err(|e| Error::io(tmp.join(ENTRY).display(), e))?;
    let dir = root.join(key);
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(Entry { dir }),
        Err(rename_error) => {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another build won the race; use its entry if it verifies.
            lookup(root, key, false).map_err(|miss| {
                Error::io(
                    format!("storing cache entry {}", dir.display()),
                    format!("{rename_error}; the existing entry is unusable: {miss:?}"),
                )
            })
        }
    }
}

/// `<pid>-<n>`: unique per process and call, for temporary names that concurrent builds
/// (processes or threads) never share.
fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Writes `bytes` to `path` unless it already holds exactly them (so Cargo sees no change),
/// through a temporary file and a rename.
pub(crate) fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", unique_suffix()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(tmp.display(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path.display(), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_entries_verify_and_corruption_is_detected() {
        let root = tempfile::tempdir().unwrap();
        let files: [(&str, &[u8]); 2] = [(ENGINE, b"engine bytes"), (MANIFEST, b"{}")];
        store(root.path(), "k1", &files).unwrap();
        assert!(lookup(root.path(), "k1", true).is_ok());
        // Truncate the engine: the entry is rejected and moved aside.
        std::fs::write(root.path().join("k1").join(ENGINE), b"engine").unwrap();
        match lookup(root.path(), "k1", true) {
            Err(Miss::Corrupt(why)) => assert!(why.contains("engine.trt"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(lookup(root.path(), "k1", true), Err(Miss::Absent)));
    }

    #[test]
    fn a_second_store_of_the_same_key_keeps_the_first() {
        let root = tempfile::tempdir().unwrap();
        let files: [(&str, &[u8]); 2] = [(ENGINE, b"first"), (MANIFEST, b"{}")];
        store(root.path(), "k", &files).unwrap();
        let files: [(&str, &[u8]); 2] = [(ENGINE, b"second"), (MANIFEST, b"{}")];
        let entry = store(root.path(), "k", &files).unwrap();
        assert_eq!(entry.read(ENGINE).unwrap(), b"first");
        let leftovers: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary directories are cleaned up");
    }
}
