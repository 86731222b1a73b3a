//! Where the team's remote cache is and how a build may use it: the URL, the mode, the
//! time-out and credentials, from `Builder` calls or the environment ([`ENV_VARS`]). Parsing
//! needs no storage client, so it is available with or without the `remote` feature.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// Default time one remote operation may take (connect, request, the whole transfer).
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
    pub(crate) max_entry_bytes: Option<u64>,
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
        "seconds one remote operation may take, retries and the whole transfer included (default 10)",
    ),
    (
        "TRT_BUILD_REMOTE_CACHE_MAX_ENTRY",
        "largest entry a download accepts, e.g. 512M (default 4G)",
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
        if let Some(m) = var("TRT_BUILD_REMOTE_CACHE_MAX_ENTRY") {
            let bytes = crate::prune::parse_size(&m)
                .ok()
                .filter(|&b| b > 0)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Config,
                        format!(
                            "TRT_BUILD_REMOTE_CACHE_MAX_ENTRY: `{}` is not a size above 0 (e.g. 512M)",
                            escape_controls(&m)
                        ),
                    )
                })?;
            c.max_entry_bytes = Some(bytes);
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

    /// The time one operation may take (a download or upload whole, retries included).
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// The largest entry a download accepts (default [`crate::MAX_ENTRY_BYTES`]).
    pub fn entry_limit(&self) -> u64 {
        self.max_entry_bytes.unwrap_or(crate::MAX_ENTRY_BYTES)
    }

    /// Sets the largest entry a download accepts: a larger object is refused as soon as the
    /// server announces or sends more, never held in memory.
    pub fn max_entry_bytes(mut self, bytes: u64) -> Self {
        self.max_entry_bytes = Some(bytes);
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the time one operation may take (connect, request and the whole transfer, retries
    /// included).
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

/// The URL for messages: every credential removed — a password in the URL, user
/// information in a URL that does not parse (a bad port, a space in the host), and user
/// information inside query values (`?endpoint=http://key:secret@host`) — and control
/// characters escaped.
pub(crate) fn redact(raw: &str) -> String {
    let text = match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), redact_userinfo(&v)))
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        // Unparsable: the part before the query as above, and every query value decoded and
        // stripped of user information, as for a parsed URL.
        Err(_) => match raw.split_once('?') {
            Some((base, query)) => {
                let (query, fragment) = query.split_once('#').unwrap_or((query, ""));
                let pairs = url::form_urlencoded::parse(query.as_bytes())
                    .map(|(k, v)| (k.into_owned(), redact_userinfo(&v)));
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish();
                let fragment = if fragment.is_empty() {
                    String::new()
                } else {
                    format!("#{}", redact_userinfo(fragment))
                };
                format!("{}?{query}{fragment}", redact_userinfo(base))
            }
            None => redact_userinfo(raw),
        },
    };
    escape_controls(&text)
}

/// `scheme://user:secret@host…` → `scheme://***@host…` (everything before the last `@`
/// ahead of the query or fragment, so a password with `/` in it goes too).
fn redact_userinfo(s: &str) -> String {
    let Some(start) = s.find("://").map(|i| i + 3) else {
        return s.to_string();
    };
    let rest = &s[start..];
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}***{}", &s[..start], &rest[at..]),
        None => s.to_string(),
    }
}

/// Every `scheme://user:secret@host` inside free text (an error message that quotes a URL)
/// with its user information removed.
fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The token around `://`: back to the previous separator, on to the next one.
        let start = rest[..i]
            .rfind(|c: char| c.is_whitespace() || "\"'<>()[]{},`".contains(c))
            .map_or(0, |j| j + 1);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || "\"'<>()[]{},`".contains(c))
            .map_or(rest.len(), |j| i + j);
        out.push_str(&rest[..start]);
        out.push_str(&redact_userinfo(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Control characters (a newline that would forge a log line, an escape sequence) as `\u{…}`.
pub(crate) fn escape_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl RemoteConfig {
    /// `text` with every secret this configuration holds (password, secret key, session
    /// token, bearer token, and the URL's password) replaced by `***`, and control characters
    /// escaped: what any message about this remote goes through.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        let from_url = url::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.password().map(str::to_string));
        for secret in [
            &self.password,
            &self.secret_access_key,
            &self.session_token,
            &self.token,
            &from_url,
        ]
        .into_iter()
        .flatten()
        .filter(|s| s.len() >= 3)
        {
            out = out.replace(secret.as_str(), "***");
        }
        escape_controls(&redact_urls_in(&out))
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

    #[test]
    fn credentials_never_reach_messages_even_from_urls_that_do_not_parse() {
        for (url, secret) in [
            ("redis://user:hunter2@127.0.0.1:99999/0", "hunter2"),
            ("webdav+http://user:hunter2@bad host/x", "hunter2"),
            ("redis://user:hun/ter2@host:1", "hun/ter2"),
            (
                "s3://bucket/p?endpoint=http://AKIA:s3cr3tKey@127.0.0.1:9000",
                "s3cr3tKey",
            ),
            (
                "s3://bucket/p?endpoint=http%3A%2F%2FAKIA%3As3cr3tKey%40127.0.0.1%3A9000",
                "s3cr3tKey",
            ),
            // Found by the url-secrets fuzz target: a URL that does not parse (a bad port)
            // with a credential inside a query value.
            (
                "webdav+https://cache.e:99999999xample/b?endpoint=http://k:S3CR3Tz9@h:9000&r=x",
                "S3CR3Tz9",
            ),
            (
                "s3://h:99999999/p?endpoint=http%3A%2F%2Fk%3AS3CR3Tz9%40h#http://a:S3CR3Tz9@e",
                "S3CR3Tz9",
            ),
        ] {
            let c = RemoteConfig::new(url);
            for text in [c.display_url(), format!("{c:?}")] {
                assert!(!text.contains(secret), "{url} -> {text}");
            }
        }
        let shown = RemoteConfig::new("s3://b/p\n\x1b[31mforged").display_url();
        assert!(!shown.contains('\n') && !shown.contains('\x1b'), "{shown}");
        let c = RemoteConfig::new("s3://b/p").s3_credentials("AKIA", "verysecret");
        assert_eq!(
            c.scrub("signing with verysecret failed"),
            "signing with *** failed"
        );
        assert_eq!(
            c.scrub("bad endpoint `http://AKIA:other@host:1/x`: refused"),
            "bad endpoint `http://***@host:1/x`: refused"
        );
    }
}
