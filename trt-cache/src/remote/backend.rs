//! The OpenDAL operators of one remote, built from its URL and options (no network traffic):
//! S3 (`s3://bucket/prefix?endpoint=…&region=…`), WebDAV (`webdav+http(s)://…`) and Redis
//! (`redis://`, `rediss://`), each wrapped in the time-out and retry layers.

use std::fmt;
use std::time::Duration;

use opendal::Operator;
use opendal::layers::{RetryLayer, TimeoutLayer};

use crate::config::RemoteConfig;
use crate::error::{Error, ErrorKind};

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
pub(super) fn operator(config: &RemoteConfig) -> Result<Operators, Error> {
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
    let timeouts = TimeoutLayer::new().with_timeout(t).with_io_timeout(t);
    // A temporary failure (a dropped connection, a 5xx) is tried twice more after a short
    // back-off; the time-out bounds each step including those retries (the time-out layer
    // wraps the retry layer), so a hung server costs one time-out per step. Downloads use the
    // operator without the retry layer: its resumed reads restart its count whenever a body
    // makes progress, so a server that truncates every body and ignores `Range` would be
    // asked again and again; [`Remote::fetch`] retries whole downloads itself, a fixed number
    // of times.
    let reads = op.clone().layer(timeouts.clone());
    let retried = op
        .layer(
            RetryLayer::new()
                .with_max_times(2)
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_millis(500))
                .with_jitter(),
        )
        .layer(timeouts);
    Ok(Operators {
        retried,
        reads,
        backend,
    })
}

/// The operators of one remote: `retried` for everything but downloads, `reads` for them.
pub(super) struct Operators {
    pub(super) retried: Operator,
    pub(super) reads: Operator,
    pub(super) backend: String,
}

/// Whole attempts of one download (within its one deadline).
pub(super) const DOWNLOAD_ATTEMPTS: u32 = 3;
