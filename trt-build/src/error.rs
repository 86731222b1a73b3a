//! The crate's one error type.

use std::fmt;

/// A `trt-build` failure: one message that names the model and the cause, and says how to fix
/// it where that is known.
#[derive(Debug, Clone)]
pub struct Error {
    kind: Kind,
    message: String,
}

/// What kind of step failed (private: match on the message, not the kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A declaration in `build.rs` is invalid.
    Declaration,
    /// Reading the model, calibration or writing Q/DQ failed.
    Calibration,
    /// TensorRT failed to build the engine.
    Engine,
    /// No engine in the cache or prebuilt directory, and TensorRT cannot build one.
    Missing,
    /// Files could not be read or written.
    Io,
}

impl Error {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn declaration(model: &str, message: impl fmt::Display) -> Self {
        Self::new(Kind::Declaration, format!("model `{model}`: {message}"))
    }

    pub(crate) fn calibration(model: &str, e: impl fmt::Display) -> Self {
        Self::new(Kind::Calibration, format!("model `{model}`: {e}"))
    }

    pub(crate) fn io(what: impl fmt::Display, e: impl fmt::Display) -> Self {
        Self::new(Kind::Io, format!("{what}: {e}"))
    }

    /// Whether a cache or prebuilt engine was missing and TensorRT could not build one.
    pub fn is_missing_engine(&self) -> bool {
        self.kind == Kind::Missing
    }

    /// Whether a declaration in `build.rs` was rejected (before any heavy work).
    pub fn is_declaration(&self) -> bool {
        self.kind == Kind::Declaration
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<trt_cache::Error> for Error {
    fn from(e: trt_cache::Error) -> Self {
        Self::new(Kind::Io, e.to_string())
    }
}
