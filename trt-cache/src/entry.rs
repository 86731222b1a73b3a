//! One cache entry: the files of one engine build under one key, and `entry.json` with the
//! SHA-256 of each. Locally an entry is a directory; on a remote it is one tar archive, so a
//! single object write publishes it whole or not at all.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};

/// The engine file of an entry (required).
pub const ENGINE: &str = "engine.trt";
/// The manifest of an entry (required).
pub const MANIFEST: &str = "manifest.json";
/// The ONNX the engine was built from.
pub const ONNX: &str = "model.onnx";
/// The index: key and SHA-256 of every other file.
pub const INDEX: &str = "entry.json";

/// Largest entry accepted from a remote archive (4 GiB): a hostile or broken object never
/// makes us allocate more than this.
pub const MAX_ENTRY_BYTES: u64 = 4 << 30;

/// SHA-256 as lower-case hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `key` is a cache key: 64 lower-case hex digits (a SHA-256). Keys name directories
/// and objects, so nothing else is accepted.
pub fn is_key(key: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) fn check_key(key: &str) -> Result<(), Error> {
    if is_key(key) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Config,
            format!("`{key}` is not a cache key (expected 64 lower-case hex digits)"),
        ))
    }
}

/// A file name inside an entry: one plain path component, not hidden.
fn check_file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name != INDEX;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid entry file name",
            name.escape_debug()
        ))
    }
}

/// `entry.json`: the key and the SHA-256 of every file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryIndex {
    /// The key the entry was stored under.
    pub key: String,
    /// File name → SHA-256 (hex).
    pub files: BTreeMap<String, String>,
}

impl EntryIndex {
    /// Checks the index against the key it was found under and the files it must list.
    pub(crate) fn check(&self, key: &str) -> Result<(), Error> {
        if self.key != key {
            return Err(Error::corrupt(
                key,
                format!("{INDEX} is for key {}", self.key),
            ));
        }
        for required in [ENGINE, MANIFEST] {
            if !self.files.contains_key(required) {
                return Err(Error::corrupt(key, format!("{required} is not listed")));
            }
        }
        for name in self.files.keys() {
            check_file_name(name).map_err(|why| Error::corrupt(key, why))?;
        }
        Ok(())
    }

    /// Checks one file's bytes against the index.
    pub(crate) fn check_file(&self, key: &str, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let expected = self
            .files
            .get(name)
            .ok_or_else(|| Error::corrupt(key, format!("{name} is not listed in {INDEX}")))?;
        let actual = sha256(bytes);
        if &actual == expected {
            Ok(())
        } else {
            Err(Error::corrupt(
                key,
                format!("{name} has SHA-256 {actual}, expected {expected} (truncated or modified)"),
            ))
        }
    }

    pub(crate) fn parse(key: &str, bytes: &[u8]) -> Result<EntryIndex, Error> {
        let index: EntryIndex = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(key, format!("{INDEX}: {e}")))?;
        index.check(key)?;
        Ok(index)
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("an index serializes")
    }
}

/// A complete entry in memory, verified: every file is listed in its index with its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    key: String,
    files: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    /// An entry of `files` under `key`. The engine and the manifest are required; names are
    /// plain file names.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) for an invalid key, a missing engine or
    /// manifest, or a file name that is not a plain name.
    pub fn new(
        key: impl Into<String>,
        files: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Entry, Error> {
        let key = key.into();
        check_key(&key)?;
        let files: BTreeMap<String, Vec<u8>> = files.into_iter().collect();
        for name in files.keys() {
            check_file_name(name).map_err(|why| Error::new(ErrorKind::Config, why))?;
        }
        let entry = Entry { key, files };
        entry.index().check(&entry.key)?;
        Ok(entry)
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// One file's bytes.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// File names and bytes, in name order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(n, b)| (n.as_str(), b.as_slice()))
    }

    /// Total size of the files in bytes.
    pub fn size(&self) -> u64 {
        self.files.values().map(|b| b.len() as u64).sum()
    }

    /// The index of this entry.
    pub fn index(&self) -> EntryIndex {
        EntryIndex {
            key: self.key.clone(),
            files: self
                .files
                .iter()
                .map(|(n, b)| (n.clone(), sha256(b)))
                .collect(),
        }
    }

    /// The entry as one tar archive: `entry.json` first, then the files in name order, with
    /// fixed metadata, so the same entry always gives the same bytes.
    pub fn to_archive(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let index = self.index().to_json();
        let all = std::iter::once((INDEX, index.as_slice())).chain(self.files());
        for (name, bytes) in all {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, name, bytes)
                .expect("writing a tar archive to memory cannot fail");
        }
        builder
            .into_inner()
            .expect("writing a tar archive to memory cannot fail")
    }

    /// Reads an archive made by [`Entry::to_archive`] and verifies it against `key`: the
    /// index names this key, lists the engine and the manifest, and every file is present
    /// exactly once with its hash; links, directories, paths and unlisted files are refused.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) naming the key and what failed.
    pub fn from_archive(key: &str, archive: &[u8]) -> Result<Entry, Error> {
        Entry::read_archive(key, archive, archive.len() as u64)
    }

    /// [`Entry::from_archive`] reading the archive from `reader` (a downloaded file, say),
    /// whose length is `len` bytes: no member may claim more than the bytes left, so a
    /// hostile header never makes us allocate more than the archive holds.
    ///
    /// # Errors
    ///
    /// As [`Entry::from_archive`]; a read failure is reported as corrupt, with its cause.
    pub fn read_archive(key: &str, reader: impl Read, len: u64) -> Result<Entry, Error> {
        let archive_len = len;
        check_key(key)?;
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut index_bytes = None;
        let mut reader = tar::Archive::new(reader);
        let entries = reader
            .entries()
            .map_err(|e| Error::corrupt(key, format!("not a tar archive: {e}")))?;
        let mut total = 0u64;
        for item in entries {
            let mut item = item.map_err(|e| Error::corrupt(key, format!("archive: {e}")))?;
            if item.header().entry_type() != tar::EntryType::Regular {
                return Err(Error::corrupt(
                    key,
                    format!(
                        "archive member of type {:?} (only regular files are allowed)",
                        item.header().entry_type()
                    ),
                ));
            }
            let name = item
                .path()
                .map_err(|e| Error::corrupt(key, format!("archive member name: {e}")))?
                .to_string_lossy()
                .into_owned();
            if name != INDEX {
                check_file_name(&name).map_err(|why| Error::corrupt(key, why))?;
            }
            let size = item.header().size().unwrap_or(u64::MAX);
            total = total.saturating_add(size);
            if size > archive_len || total > archive_len || total > MAX_ENTRY_BYTES {
                return Err(Error::corrupt(
                    key,
                    format!("archive member {name} claims {size} bytes"),
                ));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            item.read_to_end(&mut bytes)
                .map_err(|e| Error::corrupt(key, format!("archive member {name}: {e}")))?;
            let duplicate = if name == INDEX {
                index_bytes.replace(bytes).is_some()
            } else {
                files.insert(name.clone(), bytes).is_some()
            };
            if duplicate {
                return Err(Error::corrupt(key, format!("{name} appears twice")));
            }
        }
        let index_bytes =
            index_bytes.ok_or_else(|| Error::corrupt(key, format!("{INDEX} is missing")))?;
        let index = EntryIndex::parse(key, &index_bytes)?;
        for listed in index.files.keys() {
            if !files.contains_key(listed) {
                return Err(Error::corrupt(key, format!("{listed} is missing")));
            }
        }
        for (name, bytes) in &files {
            index.check_file(key, name, bytes)?;
        }
        Ok(Entry {
            key: key.to_string(),
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn key(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn entry() -> Entry {
        Entry::new(
            key('a'),
            [
                (ENGINE.to_string(), b"engine bytes".to_vec()),
                (MANIFEST.to_string(), b"{}".to_vec()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn archives_round_trip_and_are_deterministic() {
        let e = entry();
        let a = e.to_archive();
        assert_eq!(a, entry().to_archive());
        assert_eq!(Entry::from_archive(e.key(), &a).unwrap(), e);
    }

    #[test]
    fn archives_are_checked_against_the_key_and_the_hashes() {
        let e = entry();
        let a = e.to_archive();
        let err = Entry::from_archive(&key('b'), &a).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.to_string().contains("is for key"), "{err}");
        // Flip one byte of the engine's data inside the archive.
        let at = a.windows(12).position(|w| w == b"engine bytes").unwrap();
        let mut bad = a.clone();
        bad[at] ^= 1;
        let err = Entry::from_archive(e.key(), &bad).unwrap_err();
        assert!(err.to_string().contains("engine.trt has SHA-256"), "{err}");
        // Truncated.
        let err = Entry::from_archive(e.key(), &a[..a.len() / 3]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        // Not an archive at all.
        let err = Entry::from_archive(e.key(), b"<html>503</html>").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
    }

    #[test]
    fn hostile_archives_are_refused() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "../escape", &b"x"[..]).unwrap_or(());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "engine.trt", "/etc/passwd").unwrap();
        let a = b.into_inner().unwrap();
        let err = Entry::from_archive(&key('a'), &a).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    }

    #[test]
    fn keys_and_names_are_checked() {
        assert!(is_key(&key('0')));
        assert!(!is_key("../../etc"));
        assert!(!is_key(&key('A')));
        let err = Entry::new("nope", []).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let err = Entry::new(key('a'), [("../x".to_string(), vec![])]).unwrap_err();
        assert!(
            err.to_string().contains("not a valid entry file name"),
            "{err}"
        );
        let err = Entry::new(key('a'), [(ENGINE.to_string(), vec![])]).unwrap_err();
        assert!(
            err.to_string().contains("manifest.json is not listed"),
            "{err}"
        );
    }
}
