//! The remote tier: entries shared by a team on S3-compatible storage, WebDAV or Redis,
//! through Apache OpenDAL. One entry is one object, `<key>.tar` (see [`Entry::to_archive`]),
//! so a reader sees a whole entry or none; it is published with a create-only write where the
//! backend has one (S3's `If-None-Match: *`), else after checking that the key is absent, and
//! never replaced unless it fails verification. Every operation is bounded by a time-out, and
//! after the first failure the remote is marked down for the rest of the process's builds, so
//! a stopped server costs one warning.

use std::fmt;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use opendal::Operator;

use crate::config::{Mode, RemoteConfig};
use crate::entry::{self, Entry};
use crate::error::{Error, ErrorKind};
use crate::local::EntryInfo;

mod backend;

use backend::{DOWNLOAD_ATTEMPTS, Operators, operator};

/// An OpenDAL error as an error chain shows it: its kind and its text with every secret of
/// the configuration removed (the raw error may quote credentials).
#[derive(Debug)]
struct BackendError {
    kind: opendal::ErrorKind,
    text: String,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for BackendError {}

/// How much moved and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    /// Bytes of the archive.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl fmt::Display for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.1} KiB in {:.2} s",
            self.bytes as f64 / 1024.0,
            self.elapsed.as_secs_f64()
        )
    }
}

/// What [`Remote::publish`] did.
#[derive(Debug)]
pub enum Published {
    /// Our entry is now the remote's.
    Uploaded(Transfer),
    /// Another machine published this key first: its entry (verified) is the one to use, so
    /// that every machine embeds the same bytes.
    Existing(Box<Entry>, Transfer),
    /// The mode does not write.
    ReadOnly,
}

/// A remote cache, ready to use. Operations block the calling thread (on an internal
/// single-thread runtime).
#[derive(Debug)]
pub struct Remote {
    config: RemoteConfig,
    backend: String,
    op: Operator,
    reads: Operator,
    runtime: tokio::runtime::Runtime,
    down: Mutex<Option<String>>,
}

fn classify(e: &opendal::Error) -> ErrorKind {
    match e.kind() {
        opendal::ErrorKind::PermissionDenied => ErrorKind::Denied,
        opendal::ErrorKind::ConfigInvalid => ErrorKind::Config,
        opendal::ErrorKind::Unsupported => ErrorKind::Unsupported,
        _ => ErrorKind::Unavailable,
    }
}

impl Remote {
    /// Checks the configuration and prepares the client (no network traffic yet).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a URL, scheme or option the backend
    /// does not accept.
    pub fn open(config: RemoteConfig) -> Result<Remote, Error> {
        // The HTTP client for S3 and WebDAV (first installation wins; idempotent).
        opendal::install_default();
        let Operators {
            retried: op,
            reads,
            backend,
        } = operator(&config)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the remote cache's I/O runtime", e))?;
        Ok(Remote {
            config,
            backend,
            op,
            reads,
            runtime,
            down: Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// `s3`, `webdav` or `redis`.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// Why the remote was marked down, if it was.
    pub fn down(&self) -> Option<String> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn object(key: &str) -> String {
        format!("{key}.tar")
    }

    /// Runs one operation; a failure (other than not-found / condition) marks the remote down.
    fn call<T>(
        &self,
        what: &str,
        key: Option<&str>,
        fut: impl IntoFuture<Output = opendal::Result<T>>,
    ) -> Result<T, Error> {
        if let Some(why) = self.down() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("remote cache {} is down ({why})", self.config.display_url()),
            ));
        }
        // A hostile answer that makes the client library panic (a malformed listing) is a
        // failure of this operation, never of the build.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.runtime.block_on(fut.into_future())
        }))
        .unwrap_or_else(|_| {
            Err(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                "the remote's answer could not be read (the client library failed on it)",
            ))
        });
        outcome.map_err(|e| {
            let kind = classify(&e);
            let message = format!(
                "remote cache {} ({}): {what}{} failed: {}",
                self.config.display_url(),
                self.backend,
                key.map(|k| format!(" of entry {k}")).unwrap_or_default(),
                self.config.scrub(&e.to_string()),
            );
            if !matches!(
                e.kind(),
                opendal::ErrorKind::NotFound | opendal::ErrorKind::ConditionNotMatch
            ) {
                *self.down.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("{what}: {}", self.config.scrub(&e.to_string())));
            }
            Error::new(kind, message).with_source(BackendError {
                kind: e.kind(),
                text: self.config.scrub(&e.to_string()),
            })
        })
    }

    fn is(e: &Error, kind: opendal::ErrorKind) -> bool {
        std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<BackendError>())
            .is_some_and(|o| o.kind == kind)
    }

    /// One attempt at downloading `path` into `spool` (emptied first): `Ok(Ok(size))`, or
    /// `Ok(Err(size))` once the announced or received size passes `limit`.
    async fn download_into(
        &self,
        path: &str,
        limit: u64,
        spool: &mut std::fs::File,
    ) -> opendal::Result<Result<u64, u64>> {
        let local = |what: &str, e: std::io::Error| {
            opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                format!("{what} the download's temporary file: {e}"),
            )
        };
        spool
            .set_len(0)
            .and_then(|()| spool.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| local("emptying", e))?;
        let meta = self.reads.stat(path).await?;
        if meta.content_length() > limit {
            return Ok(Err(meta.content_length()));
        }
        let reader = self.reads.reader(path).await?;
        let mut stream = reader.into_bytes_stream(..).await?;
        let mut written = 0u64;
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| {
                opendal::Error::new(opendal::ErrorKind::Unexpected, "reading the entry")
                    .set_source(e)
                    .set_temporary()
            })?;
            // A running limit: a server that sends more than it announced is cut off.
            written += chunk.len() as u64;
            if written > limit {
                return Ok(Err(written));
            }
            spool
                .write_all(&chunk)
                .map_err(|e| local("writing to", e))?;
        }
        Ok(Ok(written))
    }

    /// Fetches and verifies entry `key`. `Ok(None)`: the remote does not have it. A corrupt
    /// object is an error of kind [`ErrorKind::Corrupt`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] as above; [`ErrorKind::Unavailable`] when the remote cannot be
    /// reached, times out or fails; [`ErrorKind::Denied`] when it refuses the credentials.
    pub fn fetch(&self, key: &str) -> Result<Option<(Entry, Transfer)>, Error> {
        entry::check_key(key)?;
        let start = Instant::now();
        let path = Self::object(key);
        let limit = self.config.entry_limit();
        let timeout = self.config.timeout();
        // The archive goes to an anonymous temporary file (gone when closed, whatever
        // happens), never to memory: only the verified files of an entry below the limit are
        // ever held.
        let mut spool = tempfile::tempfile().map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "remote cache {}: no temporary file for the download of entry {key} ({e}); set TMPDIR to a writable folder",
                    self.config.display_url()
                ),
            )
        })?;
        // One deadline for the whole download (announcement, every chunk, every attempt), and
        // at most DOWNLOAD_ATTEMPTS whole attempts: a server that trickles bytes or truncates
        // bodies cannot hold the build longer than the time-out, nor be asked without end.
        let download = async {
            let mut attempt = 1;
            loop {
                match self.download_into(&path, limit, &mut spool).await {
                    Err(e) if e.is_temporary() && attempt < DOWNLOAD_ATTEMPTS => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    outcome => return outcome,
                }
            }
        };
        let bounded = async {
            match tokio::time::timeout(timeout, download).await {
                Ok(r) => r,
                Err(_) => Err(opendal::Error::new(
                    opendal::ErrorKind::Unexpected,
                    format!(
                        "no complete entry within the {:.1} s time-out (TRT_BUILD_REMOTE_CACHE_TIMEOUT)",
                        timeout.as_secs_f64()
                    ),
                )),
            }
        };
        let size = match self.call("download", Some(key), bounded) {
            Ok(Ok(size)) => size,
            Ok(Err(size)) => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "remote cache {}: entry {key} is {size} bytes or more, above the {limit}-byte limit (TRT_BUILD_REMOTE_CACHE_MAX_ENTRY); not downloaded further",
                        self.config.display_url()
                    ),
                ));
            }
            Err(e) if Self::is(&e, opendal::ErrorKind::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let transfer = Transfer {
            bytes: size,
            elapsed: start.elapsed(),
        };
        let corrupt = |e: &dyn fmt::Display| {
            Error::new(
                ErrorKind::Corrupt,
                format!("remote cache {}: {e}", self.config.display_url()),
            )
        };
        spool
            .seek(SeekFrom::Start(0))
            .map_err(|e| corrupt(&format!("entry {key}: rereading the download: {e}")))?;
        let entry = Entry::read_archive(key, std::io::BufReader::new(spool), size)
            .map_err(|e| corrupt(&e))?;
        Ok(Some((entry, transfer)))
    }

    /// Publishes `entry` unless the mode is read-only. The object appears whole or not at
    /// all; an existing valid entry is never replaced (the caller gets it instead), a corrupt
    /// one is.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] or [`ErrorKind::Denied`] when the upload fails;
    /// [`ErrorKind::Corrupt`] is never returned for our own entry (a corrupt remote one is
    /// replaced).
    pub fn publish(&self, entry: &Entry) -> Result<Published, Error> {
        if self.config.mode != Mode::ReadWrite {
            return Ok(Published::ReadOnly);
        }
        let key = entry.key();
        let path = Self::object(key);
        let archive = entry.to_archive();
        let start = Instant::now();
        let conditional = self.op.info().capability().write_with_if_not_exists;
        for attempt in 0..2 {
            let written = if conditional {
                self.call(
                    "upload",
                    Some(key),
                    self.op
                        .write_with(&path, archive.clone())
                        .if_not_exists(true),
                )
            } else {
                match self.call("look-up", Some(key), self.op.stat(&path)) {
                    Ok(_) => Err(Error::new(ErrorKind::Unavailable, "exists")),
                    Err(e) if Self::is(&e, opendal::ErrorKind::NotFound) => {
                        self.call("upload", Some(key), self.op.write(&path, archive.clone()))
                    }
                    Err(e) => return Err(e),
                }
            };
            match written {
                Ok(_) => {
                    return Ok(Published::Uploaded(Transfer {
                        bytes: archive.len() as u64,
                        elapsed: start.elapsed(),
                    }));
                }
                Err(e) if conditional && !Self::is(&e, opendal::ErrorKind::ConditionNotMatch) => {
                    return Err(e);
                }
                Err(_) => {}
            }
            // Another machine published first: use its entry, unless it is corrupt.
            match self.fetch(key) {
                Ok(Some((winner, transfer))) => {
                    return Ok(Published::Existing(Box::new(winner), transfer));
                }
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::Corrupt && attempt == 0 => {
                    // A server whose writes are not atomic may show another machine's upload
                    // in flight: look again before replacing it.
                    std::thread::sleep(Duration::from_millis(500));
                    if let Ok(Some((winner, transfer))) = self.fetch(key) {
                        return Ok(Published::Existing(Box::new(winner), transfer));
                    }
                    self.remove(key)?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "remote cache {}: entry {key} could not be published (it kept changing)",
                self.config.display_url()
            ),
        ))
    }

    /// Removes entry `key`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] for an invalid key; [`ErrorKind::Unavailable`] or
    /// [`ErrorKind::Denied`] when the remote fails or refuses.
    pub fn remove(&self, key: &str) -> Result<(), Error> {
        entry::check_key(key)?;
        self.call("delete", Some(key), self.op.delete(&Self::object(key)))
    }

    /// Every entry on the remote (oldest first, where the backend tells the time).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] for a backend that cannot list keys (Redis);
    /// [`ErrorKind::Unavailable`] or [`ErrorKind::Denied`] when the remote fails or refuses.
    pub fn list(&self) -> Result<Vec<EntryInfo>, Error> {
        if !self.op.info().capability().list {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "remote cache {}: the {} backend cannot list its keys; give keys explicitly or let the server expire them (e.g. Redis maxmemory-policy allkeys-lru)",
                    self.config.display_url(),
                    self.backend
                ),
            ));
        }
        let items = self.call("listing", None, self.op.list("/"))?;
        let mut out = Vec::new();
        for item in items {
            let Some(key) = item.name().strip_suffix(".tar") else {
                continue;
            };
            if !entry::is_key(key) {
                continue;
            }
            let mut meta = item.metadata().clone();
            if meta.last_modified().is_none() {
                meta = self.call("look-up", Some(key), self.op.stat(item.path()))?;
            }
            out.push(EntryInfo {
                key: key.to_string(),
                size: meta.content_length(),
                modified: meta.last_modified().map(SystemTime::from),
            });
        }
        out.sort_by_key(|e| (e.modified, e.key.clone()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_bad_ones_are_named() {
        for ok in [
            "s3://bucket/some/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1",
            "s3://bucket",
            "webdav+http://127.0.0.1:8080/cache",
            "webdav+https://user:pw@example.com/cache",
            "redis://127.0.0.1:6379/2",
            "redis://:secret@127.0.0.1",
        ] {
            Remote::open(RemoteConfig::new(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("ftp://host/x", "scheme `ftp` is not supported"),
            ("not a url", "not a URL"),
            ("redis://127.0.0.1/zero", "not a Redis database number"),
        ] {
            let e = Remote::open(RemoteConfig::new(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn an_unreachable_remote_fails_once_then_is_down() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = Remote::open(
            RemoteConfig::new(format!("webdav+http://127.0.0.1:{port}/c"))
                .with_timeout(Duration::from_secs(2)),
        )
        .unwrap();
        let key: String = std::iter::repeat_n('c', 64).collect();
        let e = r.fetch(&key).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(r.down().is_some());
        let e = r.fetch(&key).unwrap_err();
        assert!(e.to_string().contains("is down"), "{e}");
    }
}
