//! The crate's one error type.

use std::fmt;

/// What went wrong, for callers that react differently (a remote that is down is a warning,
/// a corrupt entry is rebuilt, a bad configuration is an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The remote URL, mode, time-out or credentials variable is invalid.
    Config,
    /// The remote could not be reached, timed out or failed; the build goes on without it.
    Unavailable,
    /// The remote refused the credentials (or has none for this operation).
    Denied,
    /// An entry failed verification: a missing or extra file, a hash or key mismatch, an
    /// archive that is not one.
    Corrupt,
    /// The backend cannot do this (e.g. list keys on a key-value store).
    Unsupported,
    /// A local file could not be read or written.
    Io,
    /// An entry's signature is missing (where required), invalid, or by a key not trusted.
    Untrusted,
}

/// A cache failure: what is at fault (entry key, directory or remote) and why.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn io(what: impl fmt::Display, e: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("{what}: {e}")).with_source(e)
    }

    pub(crate) fn corrupt(key: &str, why: impl fmt::Display) -> Self {
        Error::new(ErrorKind::Corrupt, format!("entry {key}: {why}"))
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
