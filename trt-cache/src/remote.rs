//! The remote tier: entries shared by a team on S3-compatible storage, WebDAV or Redis,
//! through Apache OpenDAL. One entry is one object, `<key>.tar` (see [`Entry::to_archive`]),
//! so a reader sees a whole entry or none; it is published with a create-only write where the
//! backend has one (S3's `If-None-Match: *`), else after checking that the key is absent, and
//! never replaced unless it fails verification. Every operation is bounded by a time-out, and
//! after the first failure the remote is marked down for the rest of the process's builds, so
//! a stopped server costs one warning.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use opendal::Operator;
use opendal::layers::{RetryLayer, TimeoutLayer};

use crate::config::{Mode, RemoteConfig};
use crate::entry::{self, Entry};
use crate::error::{Error, ErrorKind};
use crate::local::EntryInfo;

fn config_error(config: &RemoteConfig, why: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::Config,
        format!(
            "remote cache {}: {}",
            config.display_url(),
            config.scrub(&why.to_string())
        ),
    )
}

/// Key prefix on a Redis server.
const REDIS_ROOT: &str = "/trt-cache/";

fn query(u: &url::Url, name: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn nonempty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

/// Builds the OpenDAL operator for `config` (no network traffic).
fn operator(config: &RemoteConfig) -> Result<(Operator, String), Error> {
    let u = url::Url::parse(&config.url)
        .map_err(|e| config_error(config, format!("not a URL ({e})")))?;
    let path = u.path().trim_matches('/').to_string();
    let host = || {
        u.host_str()
            .ok_or_else(|| config_error(config, "the URL names no host"))
    };
    let authority = || -> Result<String, Error> {
        Ok(match u.port() {
            Some(p) => format!("{}:{p}", host()?),
            None => host()?.to_string(),
        })
    };
    let built = match u.scheme() {
        "s3" => {
            let mut b = opendal::services::S3::default()
                .bucket(host()?)
                .root(&format!("/{path}"));
            let endpoint = query(&u, "endpoint").or_else(|| config.endpoint.clone());
            if let Some(ep) = &endpoint {
                b = b.endpoint(ep);
            }
            let region = query(&u, "region")
                .or_else(|| config.region.clone())
                .unwrap_or_else(|| "us-east-1".to_string());
            b = b.region(&region);
            if let Some(k) = &config.access_key_id {
                b = b.access_key_id(k);
            }
            if let Some(s) = &config.secret_access_key {
                b = b.secret_access_key(s);
            }
            if let Some(t) = &config.session_token {
                b = b.session_token(t);
            }
            Operator::new(b).map(|op| (op, "s3".to_string()))
        }
        "webdav+http" | "webdav+https" => {
            let scheme = &u.scheme()["webdav+".len()..];
            let mut b = opendal::services::Webdav::default()
                .endpoint(&format!("{scheme}://{}", authority()?))
                .root(&format!("/{path}"));
            let user = nonempty(u.username())
                .map(str::to_string)
                .or(config.username.clone());
            let password = u.password().map(str::to_string).or(config.password.clone());
            if let Some(user) = &user {
                b = b.username(user);
            }
            if let Some(p) = &password {
                b = b.password(p);
            }
            if let Some(t) = &config.token {
                b = b.token(t);
            }
            Operator::new(b).map(|op| (op, "webdav".to_string()))
        }
        "redis" | "rediss" => {
            let db: i64 = if path.is_empty() {
                0
            } else {
                path.parse().map_err(|_| {
                    config_error(config, format!("`{path}` is not a Redis database number"))
                })?
            };
            let mut b = opendal::services::Redis::default()
                .endpoint(&format!("{}://{}", u.scheme(), authority()?))
                .db(db)
                .root(REDIS_ROOT);
            if let Some(user) = nonempty(u.username()) {
                b = b.username(user);
            }
            if let Some(p) = u.password().map(str::to_string).or(config.password.clone()) {
                b = b.password(&p);
            }
            Operator::new(b).map(|op| (op, "redis".to_string()))
        }
        other => {
            return Err(config_error(
                config,
                format!(
                    "scheme `{other}` is not supported (s3, webdav+http, webdav+https, redis, rediss)"
                ),
            ));
        }
    };
    let (op, backend) = built.map_err(|e| config_error(config, &e))?;
    let t = config.timeout();
    // A temporary failure (a dropped connection, a 5xx) is tried twice more after a short
    // back-off; the time-out bounds each step including those retries (the time-out layer
    // wraps the retry layer), so a hung server costs one time-out per step.
    Ok((
        op.layer(
            RetryLayer::new()
                .with_max_times(2)
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_millis(500))
                .with_jitter(),
        )
        .layer(TimeoutLayer::new().with_timeout(t).with_io_timeout(t)),
        backend,
    ))
}

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
        let (op, backend) = operator(&config)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the remote cache's I/O runtime", e))?;
        Ok(Remote {
            config,
            backend,
            op,
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
        // One deadline for the whole download (announcement, every chunk, every retry and
        // resumed read): a server that trickles bytes or truncates bodies cannot hold the
        // build longer than the time-out.
        let download = async {
            let meta = self.op.stat(&path).await?;
            if meta.content_length() > limit {
                return Ok(Err(meta.content_length()));
            }
            let reader = self.op.reader(&path).await?;
            let mut stream = reader.into_bytes_stream(..).await?;
            let mut bytes: Vec<u8> = Vec::new();
            while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
                let chunk = chunk.map_err(|e| {
                    opendal::Error::new(opendal::ErrorKind::Unexpected, "reading the entry")
                        .set_source(e)
                })?;
                // A running limit: a server that sends more than it announced is cut off.
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Ok(Err((bytes.len() + chunk.len()) as u64));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(Ok(bytes))
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
        let bytes = match self.call("download", Some(key), bounded) {
            Ok(Ok(b)) => b,
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
            bytes: bytes.len() as u64,
            elapsed: start.elapsed(),
        };
        let entry = Entry::from_archive(key, &bytes).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                format!("remote cache {}: {e}", self.config.display_url()),
            )
        })?;
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
