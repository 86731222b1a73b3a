//! The local tier: one directory per key under a root, written to a temporary directory and
//! renamed into place, so concurrent builds never see half an entry; a corrupt entry (hash
//! mismatch, missing file) is moved aside and rebuilt.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::entry::{self, Entry, EntryIndex, INDEX, MAX_ENTRY_BYTES};
use crate::error::{Error, ErrorKind};

/// A cache directory (`<root>/<key>/…`).
#[derive(Debug, Clone)]
pub struct LocalCache {
    root: PathBuf,
}

/// An entry stored in a [`LocalCache`], verified when it was looked up or stored.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    key: String,
    dir: PathBuf,
}

impl StoredEntry {
    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The entry's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one file.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Reads one file.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) naming the file.
    pub fn read(&self, file: &str) -> Result<Vec<u8>, Error> {
        let p = self.path(file);
        std::fs::read(&p).map_err(|e| Error::io(p.display(), e))
    }

    /// Reads the whole entry into memory (to publish it).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) for an unreadable file,
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) for an index or hash that does not match.
    pub fn load(&self) -> Result<Entry, Error> {
        let index = EntryIndex::parse(&self.key, &self.read(INDEX)?)?;
        let files = index
            .files
            .keys()
            .map(|name| Ok((name.clone(), self.read(name)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        Entry::new(self.key.clone(), files)
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// The key.
    pub key: String,
    /// Size in bytes (the files, or the archive on a remote).
    pub size: u64,
    /// When it was stored, where the storage says.
    pub modified: Option<SystemTime>,
}

impl LocalCache {
    /// The cache under `root` (created on the first store).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalCache { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Looks up `key` and verifies every file's hash. `Ok(None)`: no entry. A corrupt entry
    /// is an error of kind [`ErrorKind::Corrupt`]; with `quarantine` it is also removed so
    /// that the rebuilt one can take its place.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) for an invalid key or an entry that
    /// fails verification, [`ErrorKind::Io`](crate::ErrorKind::Io) for an unreadable directory.
    pub fn lookup(&self, key: &str, quarantine: bool) -> Result<Option<StoredEntry>, Error> {
        entry::check_key(key)?;
        let dir = self.root.join(key);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            // A link (to anywhere outside the cache) or a file where an entry should be is
            // not an entry of this cache.
            Ok(_) => {
                let e = Error::corrupt(
                    key,
                    format!(
                        "{} is not a directory of the cache (a symbolic link or a file); entries are never followed out of the cache",
                        dir.display()
                    ),
                );
                if quarantine {
                    let _ = std::fs::remove_file(&dir);
                }
                return Err(e);
            }
            Err(_) => return Ok(None),
        }
        match verify_dir(&dir, key) {
            Ok(()) => Ok(Some(StoredEntry {
                key: key.to_string(),
                dir,
            })),
            Err(e) => {
                if quarantine {
                    self.remove(key)?;
                }
                Err(e)
            }
        }
    }

    /// Verifies the entry `key` (every file against its index).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) naming the file that fails,
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) for an unreadable one.
    pub fn verify(&self, key: &str) -> Result<(), Error> {
        entry::check_key(key)?;
        verify_dir(&self.root.join(key), key)
    }

    /// Removes the entry `key` (renamed aside first, so a reader never sees half of it).
    /// A missing entry is not an error.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) for an invalid key,
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) when renaming or deleting fails.
    pub fn remove(&self, key: &str) -> Result<(), Error> {
        entry::check_key(key)?;
        let dir = self.root.join(key);
        let aside = self
            .root
            .join(format!(".removed-{key}-{}", unique_suffix()));
        match std::fs::rename(&dir, &aside) {
            Ok(()) => std::fs::remove_dir_all(&aside).map_err(|e| Error::io(aside.display(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing {}", dir.display()), e)),
        }
    }

    /// Stores `entry` atomically. When another build stored the same key first, its entry is
    /// kept (after verification) and ours discarded.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) naming the file or directory that could not be
    /// written or renamed.
    pub fn store(&self, entry: &Entry) -> Result<StoredEntry, Error> {
        let root = &self.root;
        let key = entry.key();
        std::fs::create_dir_all(root)
            .map_err(|e| Error::io(format!("creating cache {}", root.display()), e))?;
        let tmp = root.join(format!(".tmp-{key}-{}", unique_suffix()));
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
        let written = (|| {
            for (name, bytes) in entry.files() {
                std::fs::write(tmp.join(name), bytes)
                    .map_err(|e| Error::io(tmp.join(name).display(), e))?;
            }
            std::fs::write(tmp.join(INDEX), entry.index().to_json())
                .map_err(|e| Error::io(tmp.join(INDEX).display(), e))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let dir = root.join(key);
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(StoredEntry {
                key: key.to_string(),
                dir,
            }),
            Err(rename_error) => {
                let _ = std::fs::remove_dir_all(&tmp);
                // Another build won the race; use its entry if it verifies.
                match self.lookup(key, false) {
                    Ok(Some(found)) => Ok(found),
                    Ok(None) => Err(Error::io(
                        format!("storing cache entry {}", dir.display()),
                        rename_error,
                    )),
                    Err(e) => Err(Error::new(
                        ErrorKind::Io,
                        format!(
                            "storing cache entry {}: {rename_error}; the existing entry is unusable: {e}",
                            dir.display()
                        ),
                    )),
                }
            }
        }
    }

    /// Every entry (directories named by a key), oldest first. Other files (calibration
    /// caches, temporary directories) are not entries.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) for an unreadable cache directory (a missing one
    /// lists nothing).
    pub fn list(&self) -> Result<Vec<EntryInfo>, Error> {
        let read = match std::fs::read_dir(&self.root) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(self.root.display(), e)),
        };
        let mut out = Vec::new();
        for item in read {
            let item = item.map_err(|e| Error::io(self.root.display(), e))?;
            let key = item.file_name().to_string_lossy().into_owned();
            if !entry::is_key(&key) || !item.path().is_dir() {
                continue;
            }
            let mut size = 0;
            let mut modified = None;
            for file in
                std::fs::read_dir(item.path()).map_err(|e| Error::io(item.path().display(), e))?
            {
                let file = file.map_err(|e| Error::io(item.path().display(), e))?;
                let meta = file
                    .metadata()
                    .map_err(|e| Error::io(file.path().display(), e))?;
                size += meta.len();
                if file.file_name() == INDEX {
                    modified = meta.modified().ok();
                }
            }
            out.push(EntryInfo {
                key,
                size,
                modified,
            });
        }
        out.sort_by_key(|e| (e.modified, e.key.clone()));
        Ok(out)
    }
}

fn verify_dir(dir: &Path, key: &str) -> Result<(), Error> {
    let index = read_entry_file(dir, key, INDEX)?;
    let index = EntryIndex::parse(key, &index)?;
    for name in index.files.keys() {
        let bytes = read_entry_file(dir, key, name)?;
        index.check_file(key, name, &bytes)?;
    }
    Ok(())
}

/// Reads one file of an entry when it is a regular file (not a link out of the cache, not a
/// FIFO that would block the build, not a device) of at most [`MAX_ENTRY_BYTES`].
fn read_entry_file(dir: &Path, key: &str, name: &str) -> Result<Vec<u8>, Error> {
    let path = dir.join(name);
    let meta = std::fs::symlink_metadata(&path)
        .map_err(|e| Error::corrupt(key, format!("{name}: {e}")))?;
    if !meta.is_file() {
        return Err(Error::corrupt(
            key,
            format!("{name} is not a regular file (a link, FIFO, device or directory)"),
        ));
    }
    if meta.len() > MAX_ENTRY_BYTES {
        return Err(Error::corrupt(
            key,
            format!(
                "{name} is {} bytes, above the {MAX_ENTRY_BYTES}-byte entry limit",
                meta.len()
            ),
        ));
    }
    std::fs::read(&path).map_err(|e| Error::corrupt(key, format!("{name}: {e}")))
}

/// `<pid>-<n>`: unique per process and call, for temporary names that concurrent builds
/// (processes or threads) never share.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{ENGINE, MANIFEST};

    fn entry(key: char, engine: &[u8]) -> Entry {
        Entry::new(
            std::iter::repeat_n(key, 64).collect::<String>(),
            [
                (ENGINE.to_string(), engine.to_vec()),
                (MANIFEST.to_string(), b"{}".to_vec()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn stored_entries_verify_and_corruption_is_detected() {
        let root = tempfile::tempdir().unwrap();
        let cache = LocalCache::new(root.path());
        let e = entry('1', b"engine bytes");
        cache.store(&e).unwrap();
        let found = cache.lookup(e.key(), true).unwrap().unwrap();
        assert_eq!(found.load().unwrap(), e);
        // Truncate the engine: the entry is rejected and moved aside.
        std::fs::write(root.path().join(e.key()).join(ENGINE), b"engine").unwrap();
        let err = cache.lookup(e.key(), true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.to_string().contains("engine.trt"), "{err}");
        assert!(cache.lookup(e.key(), true).unwrap().is_none());
    }

    #[test]
    fn a_second_store_of_the_same_key_keeps_the_first() {
        let root = tempfile::tempdir().unwrap();
        let cache = LocalCache::new(root.path());
        cache.store(&entry('2', b"first")).unwrap();
        let kept = cache.store(&entry('2', b"second")).unwrap();
        assert_eq!(kept.read(ENGINE).unwrap(), b"first");
        let listing = cache.list().unwrap();
        assert_eq!(listing.len(), 1, "temporary directories are cleaned up");
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            1,
            "nothing but the entry is left"
        );
    }

    #[test]
    fn keys_that_are_paths_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let cache = LocalCache::new(root.path());
        let err = cache.lookup("../x", false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
    }

    #[test]
    fn links_fifos_and_linked_entries_are_never_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let cache = LocalCache::new(root.path());
        // An entry directory that is a link to a valid entry outside the cache.
        let e = entry('2', b"engine");
        LocalCache::new(outside.path()).store(&e).unwrap();
        std::os::unix::fs::symlink(outside.path().join(e.key()), root.path().join(e.key()))
            .unwrap();
        let err = cache.lookup(e.key(), false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.to_string().contains("never followed"), "{err}");
        // A file of an entry replaced by a link, then by a FIFO: refused, without blocking.
        let e = entry('3', b"engine");
        cache.store(&e).unwrap();
        let engine = root.path().join(e.key()).join(ENGINE);
        std::fs::remove_file(&engine).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x"), &engine).unwrap();
        let err = cache.lookup(e.key(), false).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::remove_file(&engine).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(&engine)
            .status()
            .unwrap();
        assert!(status.success());
        let err = cache.verify(e.key()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
