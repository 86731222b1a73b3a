//! The cache tiers of one build: the local cache, the team's remote cache and the prebuilt
//! directory, looked up in that order; what is built here is published to the remote (when
//! the mode allows) and stored locally. A remote that fails costs one warning and the build
//! goes on locally, except in `require` mode, where a missing entry is the error.

#[cfg(feature = "remote-cache")]
use std::sync::atomic::{AtomicBool, Ordering};

use trt_cache::{Entry, ErrorKind, LocalCache, SigningKey, StoredEntry, TrustPolicy};
#[cfg(feature = "remote-cache")]
use trt_cache::{Mode, Published, Remote};

use crate::cargo::CargoOutput;
use crate::error::Error;
#[cfg(feature = "remote-cache")]
use crate::error::Kind;

/// Where a model's entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The local cache.
    Local,
    /// The remote cache (then stored locally).
    Remote,
    /// The prebuilt directory.
    Prebuilt,
    /// Calibrated and built here.
    Built,
}

/// The remote tier of one build, with its one warning.
#[cfg(feature = "remote-cache")]
#[derive(Debug)]
pub(crate) struct RemoteTier {
    remote: Remote,
    warned: AtomicBool,
}

/// Without the `remote-cache` feature there is no remote tier (this type has no value).
#[cfg(not(feature = "remote-cache"))]
#[derive(Debug)]
pub(crate) enum RemoteTier {}

#[cfg(not(feature = "remote-cache"))]
impl RemoteTier {
    /// A configured remote is ignored with one warning: the cache never fails a build.
    pub(crate) fn open(
        config: Option<trt_cache::RemoteConfig>,
        cargo: &CargoOutput,
    ) -> Result<Option<RemoteTier>, Error> {
        if let Some(c) = config {
            cargo.warning(&format!(
                "trt-build: the remote cache {} is configured but trt-build was compiled without its `remote-cache` feature; building locally",
                c.display_url()
            ));
        }
        Ok(None)
    }

    pub(crate) fn describe(&self) -> String {
        match *self {}
    }
}

#[cfg(feature = "remote-cache")]
impl RemoteTier {
    /// Opens the configured remote (no network traffic yet).
    pub(crate) fn open(
        config: Option<trt_cache::RemoteConfig>,
        _cargo: &CargoOutput,
    ) -> Result<Option<RemoteTier>, Error> {
        config
            .map(|c| {
                Remote::open(c)
                    .map(|remote| RemoteTier {
                        remote,
                        warned: AtomicBool::new(false),
                    })
                    .map_err(|e| Error::new(Kind::Declaration, e.to_string()))
            })
            .transpose()
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{} ({}, {})",
            self.remote.config().display_url(),
            self.remote.backend(),
            self.remote.config().get_mode()
        )
    }

    pub(crate) fn required(&self) -> bool {
        self.remote.config().get_mode() == Mode::Require
    }

    /// The first failure of the build becomes one warning; later ones are only logged.
    fn warn_once(&self, cargo: &CargoOutput, model: &str, e: &trt_cache::Error) {
        if self.warned.swap(true, Ordering::Relaxed) {
            cargo.log(&format!("{model}: remote cache skipped: {e}"));
            return;
        }
        let line = format!(
            "trt-build: {model}: remote cache unavailable, building locally: {e}{}",
            if e.kind() == ErrorKind::Denied {
                " (check the credentials)"
            } else {
                ""
            }
        );
        cargo.warning(&line);
    }
}

/// The tiers of one build.
#[derive(Debug)]
pub(crate) struct Tiers<'a> {
    pub(crate) local: LocalCache,
    pub(crate) remote: Option<&'a RemoteTier>,
    pub(crate) prebuilt: Option<LocalCache>,
    /// Which signatures entries from the remote and the prebuilt directory must carry.
    pub(crate) trust: TrustPolicy,
    /// Signs what is built here (before it is published and stored).
    pub(crate) signer: Option<std::sync::Arc<SigningKey>>,
}

/// The signing key `TRT_BUILD_CACHE_SIGNING_KEY` names: 64 hex digits, or a file holding them.
pub(crate) fn signing_key(value: Option<String>) -> Result<Option<SigningKey>, Error> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = if value.trim().len() == 64 && value.trim().bytes().all(|b| b.is_ascii_hexdigit()) {
        value
    } else {
        std::fs::read_to_string(&value).map_err(|e| {
            Error::new(
                crate::error::Kind::Declaration,
                format!(
                    "TRT_BUILD_CACHE_SIGNING_KEY is neither 64 hex digits nor a readable file: {e}"
                ),
            )
        })?
    };
    SigningKey::from_hex(&text).map(Some).map_err(|e| {
        Error::new(
            crate::error::Kind::Declaration,
            format!("TRT_BUILD_CACHE_SIGNING_KEY: {e}"),
        )
    })
}

/// What a lookup found.
pub(crate) struct Found {
    pub(crate) entry: StoredEntry,
    pub(crate) origin: Origin,
    pub(crate) note: String,
}

impl Tiers<'_> {
    /// Local → remote → prebuilt. `Ok(None)`: build it. In `require` mode a remote miss or
    /// failure is an error naming the key, the remote and the cause.
    #[cfg_attr(not(feature = "remote-cache"), allow(unused_variables))]
    pub(crate) fn lookup(
        &self,
        model: &str,
        key: &str,
        cargo: &CargoOutput,
    ) -> Result<Option<Found>, Error> {
        match self.local.lookup(key, true) {
            Ok(Some(entry)) => {
                return Ok(Some(Found {
                    entry,
                    origin: Origin::Local,
                    note: "local hit".into(),
                }));
            }
            Ok(None) => {}
            Err(e) if e.kind() == ErrorKind::Corrupt => cargo.warning(&format!(
                "trt-build: {model}: local cache entry is corrupt and is replaced: {e}"
            )),
            Err(e) => return Err(Error::io(format!("model `{model}`: local cache"), e)),
        }
        #[cfg(feature = "remote-cache")]
        if let Some(tier) = self.remote {
            match tier.remote.fetch(key).and_then(|found| match found {
                // Engines run native code: a remote entry must carry the signatures asked for.
                Some((entry, transfer)) => self
                    .trust
                    .check_entry(&entry)
                    .map(|_| Some((entry, transfer))),
                None => Ok(None),
            }) {
                Ok(Some((entry, transfer))) => {
                    let entry = self.store(model, &entry)?;
                    return Ok(Some(Found {
                        entry,
                        origin: Origin::Remote,
                        note: format!("remote hit ({}, {transfer})", tier.remote.backend()),
                    }));
                }
                Ok(None) if tier.required() => {
                    return Err(Error::new(
                        Kind::Missing,
                        format!(
                            "model `{model}`: the remote cache {} has no entry {key}, and require mode does not build; \
                             build it on a machine with TensorRT and read-write access to the remote (the same key comes from the same model, data and options)",
                            tier.describe()
                        ),
                    ));
                }
                Ok(None) => cargo.log(&format!("{model}: remote miss for {key}")),
                Err(e) if tier.required() => {
                    return Err(Error::new(
                        Kind::Missing,
                        format!(
                            "model `{model}`: entry {key} could not be fetched from the remote cache {} (require mode does not build): {e}",
                            tier.describe()
                        ),
                    ));
                }
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Untrusted) => {
                    cargo.warning(&format!(
                        "trt-build: {model}: remote cache entry failed verification and is rebuilt: {e}"
                    ))
                }
                Err(e) => tier.warn_once(cargo, model, &e),
            }
        }
        if let Some(prebuilt) = &self.prebuilt
            && let Ok(Some(entry)) = prebuilt.lookup(key, false)
        {
            if let Err(e) = entry.load().and_then(|e| self.trust.check_entry(&e)) {
                return Err(Error::new(
                    crate::error::Kind::Missing,
                    format!("model `{model}`: the prebuilt entry {key} is refused: {e}"),
                ));
            }
            return Ok(Some(Found {
                entry,
                origin: Origin::Prebuilt,
                note: "prebuilt".into(),
            }));
        }
        Ok(None)
    }

    /// Publishes what was built here (or adopts the entry another machine published first,
    /// so every machine embeds the same bytes) and stores it locally.
    #[cfg_attr(not(feature = "remote-cache"), allow(unused_variables))]
    pub(crate) fn publish_and_store(
        &self,
        model: &str,
        built: Entry,
        cargo: &CargoOutput,
    ) -> Result<Found, Error> {
        let built = match &self.signer {
            Some(signer) => signer
                .sign(&built)
                .map_err(|e| Error::io(format!("model `{model}`: signing the entry"), e))?,
            None => built,
        };
        #[cfg(not(feature = "remote-cache"))]
        let (entry, note) = (built, "built".to_string());
        #[cfg(feature = "remote-cache")]
        let (entry, note) = match self.remote {
            None => (built, "built".to_string()),
            Some(tier) => match tier.remote.publish(&built) {
                Ok(Published::Uploaded(t)) => (
                    built,
                    format!("built and uploaded ({}, {t})", tier.remote.backend()),
                ),
                Ok(Published::Existing(winner, t)) => match self.trust.check_entry(&winner) {
                    Ok(_) => (
                        *winner,
                        format!(
                            "built, but another machine published this key first: using its entry ({}, {t})",
                            tier.remote.backend()
                        ),
                    ),
                    Err(e) => {
                        cargo.warning(&format!(
                            "trt-build: {model}: the entry another machine published is refused, using the one built here: {e}"
                        ));
                        (built, "built (the remote's entry is untrusted)".into())
                    }
                },
                Ok(Published::ReadOnly) => (built, "built (remote cache is read-only)".into()),
                Err(e) => {
                    tier.warn_once(cargo, model, &e);
                    (built, "built (not uploaded)".into())
                }
            },
        };
        Ok(Found {
            entry: self.store(model, &entry)?,
            origin: Origin::Built,
            note,
        })
    }

    fn store(&self, model: &str, entry: &Entry) -> Result<StoredEntry, Error> {
        self.local
            .store(entry)
            .map_err(|e| Error::io(format!("model `{model}`: local cache"), e))
    }
}
