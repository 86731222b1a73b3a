//! Where the team's remote cache is and how a build may use it: the URL, the mode, the
//! time-out and credentials, from `Builder` calls or the environment ([`ENV_VARS`]). Parsing
//! needs no storage client, so it is available with or without the `remote` feature.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// Default time-out of one remote operation step (connect, request, each read or write).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a build may do with the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Fetch entries, never upload (developer machines).
    Read,
    /// Fetch entries and upload the ones built here (CI).
    #[default]
    ReadWrite,
    /// Fetch entries; a key the remote does not have is an error, never a build (machines
    /// without TensorRT).
    Require,
}

impl FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Mode, Error> {
        match s {
            "read" | "read-only" => Ok(Mode::Read),
            "read-write" => Ok(Mode::ReadWrite),
            "require" => Ok(Mode::Require),
            other => Err(Error::new(
                ErrorKind::Config,
                format!("remote cache mode `{other}` is not one of read, read-write, require"),
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Read => "read",
            Mode::ReadWrite => "read-write",
            Mode::Require => "require",
        })
    }
}

/// Where the remote is and how to talk to it.
///
/// | URL | backend |
/// |---|---|
/// | `s3://bucket/prefix` (`?endpoint=http://host:port&region=r` for S3-compatible servers) | S3 |
/// | `webdav+http://host:port/path`, `webdav+https://…` | WebDAV |
/// | `redis://[user:password@]host:port[/db]`, `rediss://…` | Redis |
#[derive(Clone, Default)]
pub struct RemoteConfig {
    pub(crate) url: String,
    pub(crate) mode: Mode,
    pub(crate) timeout: Option<Duration>,
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) session_token: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) token: Option<String>,
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &redact(&self.url))
            .field("mode", &self.mode)
            .field("timeout", &self.timeout())
            .finish_non_exhaustive()
    }
}

/// The environment variables [`RemoteConfig::from_env`] reads, with their meaning.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "TRT_BUILD_REMOTE_CACHE",
        "remote cache URL (s3://, webdav+http(s)://, redis(s)://)",
    ),
    (
        "TRT_BUILD_REMOTE_CACHE_MODE",
        "read, read-write (default) or require",
    ),
    (
        "TRT_BUILD_REMOTE_CACHE_TIMEOUT",
        "seconds per remote operation step (default 10)",
    ),
    ("AWS_ACCESS_KEY_ID", "S3 access key"),
    ("AWS_SECRET_ACCESS_KEY", "S3 secret key"),
    ("AWS_SESSION_TOKEN", "S3 session token"),
    (
        "AWS_REGION",
        "S3 region (also AWS_DEFAULT_REGION; default us-east-1)",
    ),
    (
        "AWS_ENDPOINT_URL",
        "S3-compatible endpoint (also AWS_ENDPOINT_URL_S3)",
    ),
    ("TRT_BUILD_WEBDAV_USERNAME", "WebDAV user"),
    ("TRT_BUILD_WEBDAV_PASSWORD", "WebDAV password"),
    ("TRT_BUILD_WEBDAV_TOKEN", "WebDAV bearer token"),
    ("TRT_BUILD_REDIS_PASSWORD", "Redis password (or in the URL)"),
];

impl RemoteConfig {
    /// A remote at `url`, read-write, default time-out.
    pub fn new(url: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            ..Default::default()
        }
    }

    /// The configuration the environment gives ([`ENV_VARS`]), read through `var` (so a build
    /// script can ask Cargo to watch each one); `Ok(None)` when `TRT_BUILD_REMOTE_CACHE` is
    /// unset.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the variable for an invalid URL,
    /// mode, time-out or credentials variable.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, Error> {
        let Some(url) = var("TRT_BUILD_REMOTE_CACHE") else {
            return Ok(None);
        };
        let mut c = RemoteConfig::new(url);
        if let Some(mode) = var("TRT_BUILD_REMOTE_CACHE_MODE") {
            c.mode = mode.parse().map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("TRT_BUILD_REMOTE_CACHE_MODE: {e}"),
                )
            })?;
        }
        if let Some(t) = var("TRT_BUILD_REMOTE_CACHE_TIMEOUT") {
            let secs: f64 = t.parse().ok().filter(|s: &f64| s.is_finite() && *s > 0.0).ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("TRT_BUILD_REMOTE_CACHE_TIMEOUT: `{t}` is not a positive number of seconds"),
                )
            })?;
            c.timeout = Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
        c.access_key_id = var("AWS_ACCESS_KEY_ID");
        c.secret_access_key = var("AWS_SECRET_ACCESS_KEY");
        c.session_token = var("AWS_SESSION_TOKEN");
        c.region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
        c.endpoint = var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"));
        c.username = var("TRT_BUILD_WEBDAV_USERNAME");
        c.password = var("TRT_BUILD_WEBDAV_PASSWORD").or_else(|| var("TRT_BUILD_REDIS_PASSWORD"));
        c.token = var("TRT_BUILD_WEBDAV_TOKEN");
        Ok(Some(c))
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The mode.
    pub fn get_mode(&self) -> Mode {
        self.mode
    }

    /// The time-out of one operation step.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the time-out of one operation step (connect, request, each read or write).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// S3 credentials (else the usual AWS variables, profiles and instance metadata).
    pub fn s3_credentials(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.access_key_id = Some(access_key_id.to_string());
        self.secret_access_key = Some(secret_access_key.to_string());
        self
    }

    /// S3 endpoint (an S3-compatible server) and region.
    pub fn s3_endpoint(mut self, endpoint: &str, region: &str) -> Self {
        self.endpoint = Some(endpoint.to_string());
        self.region = Some(region.to_string());
        self
    }

    /// User and password for WebDAV or Redis.
    pub fn basic_auth(mut self, username: &str, password: &str) -> Self {
        self.username = Some(username.to_string());
        self.password = Some(password.to_string());
        self
    }

    /// The URL without its password, for messages.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }
}

pub(crate) fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        let c = RemoteConfig::new("redis://user:hunter2@127.0.0.1:1/0");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.display_url().contains("hunter2"));
    }

    #[test]
    fn the_environment_is_read_and_checked() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(RemoteConfig::from_env(env(&[])).unwrap().is_none());
        let c = RemoteConfig::from_env(env(&[
            ("TRT_BUILD_REMOTE_CACHE", "s3://b/p"),
            ("TRT_BUILD_REMOTE_CACHE_MODE", "require"),
            ("TRT_BUILD_REMOTE_CACHE_TIMEOUT", "2.5"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.get_mode(), Mode::Require);
        assert_eq!(c.timeout(), Duration::from_millis(2500));
        let e = RemoteConfig::from_env(env(&[
            ("TRT_BUILD_REMOTE_CACHE", "s3://b/p"),
            ("TRT_BUILD_REMOTE_CACHE_MODE", "write"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("TRT_BUILD_REMOTE_CACHE_MODE"), "{e}");
        let e = RemoteConfig::from_env(env(&[
            ("TRT_BUILD_REMOTE_CACHE", "s3://b/p"),
            ("TRT_BUILD_REMOTE_CACHE_TIMEOUT", "-1"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string().contains("TRT_BUILD_REMOTE_CACHE_TIMEOUT"),
            "{e}"
        );
    }
}
