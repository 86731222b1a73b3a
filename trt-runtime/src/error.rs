//! The crate's one error type.

use std::fmt;

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No TensorRT library could be opened (the message lists every path tried).
    LibraryNotFound,
    /// The TensorRT library's version differs from the headers'.
    VersionMismatch,
    /// No CUDA driver is installed (or it is too old for TensorRT's CUDA runtime).
    NoCudaDriver,
    /// The driver works but there is no CUDA device.
    NoDevice,
    /// The GPU is not supported by the engine's TensorRT flavor (e.g. TensorRT-RTX refuses
    /// compute capability 9.0).
    UnsupportedGpu,
    /// The engine bytes are corrupted or truncated (hash mismatch or refused by TensorRT).
    CorruptEngine,
    /// The engine does not match the manifest generated at build time.
    ManifestMismatch,
    /// An input is missing, unknown, of the wrong element type or outside every profile.
    InvalidInput,
    /// An output was requested with the wrong element type or name.
    InvalidOutput,
    /// Device memory is exhausted.
    OutOfDeviceMemory,
    /// CUDA failed.
    Cuda,
    /// TensorRT failed while running.
    TensorRt,
    /// The requested backend is not available in this build (e.g. `cpu` feature off).
    BackendUnavailable,
    /// The CPU backend failed.
    Cpu,
}

/// Error of this crate: a code to match on and a message naming what failed.
#[derive(Debug, Clone)]
pub struct Error {
    code: ErrorCode,
    message: String,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// Keeps the underlying error (CUDA's, TensorRT's) as [`std::error::Error::source`].
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
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

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<tensorrt_sys::Error> for Error {
    /// By the shim's status code only: TensorRT's refusals that have a reason code
    /// (unsupported GPU, old driver, too little memory) are read from
    /// `Runtime::engine_validity` before deserializing (see `gpu.rs`), never from a message.
    fn from(e: tensorrt_sys::Error) -> Self {
        use tensorrt_sys::ErrorKind as K;
        let code = match e.kind() {
            K::LibraryNotFound | K::MissingSymbol => ErrorCode::LibraryNotFound,
            K::VersionMismatch => ErrorCode::VersionMismatch,
            _ => ErrorCode::TensorRt,
        };
        Error::new(code, e.to_string()).with_source(e)
    }
}
