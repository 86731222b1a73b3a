//! The crate's one error type.

use std::fmt;

use crate::ffi;

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, broadly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No TensorRT library could be opened; the message lists every path tried.
    LibraryNotFound,
    /// A library was opened but lacks a required entry point.
    MissingSymbol,
    /// The library's version differs from the headers' version.
    VersionMismatch,
    /// TensorRT returned null or `false`; the message includes what TensorRT logged.
    TensorRt,
    /// An argument was rejected before reaching TensorRT.
    InvalidArgument,
    /// The ONNX parser rejected the model; see [`Error::parser_errors`].
    Parse,
    /// The feature does not exist in this TensorRT flavor or version.
    Unsupported,
    /// A C++ exception was caught in the shim.
    Exception,
}

/// One error reported by TensorRT's ONNX parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParserError {
    /// `nvonnxparser::ErrorCode` value.
    pub code: i32,
    /// Index of the failing node in the graph, if known.
    pub node: Option<usize>,
    /// Name of the failing node (may be empty).
    pub node_name: String,
    /// Operator type of the failing node (may be empty).
    pub node_operator: String,
    /// The parser's description.
    pub description: String,
}

impl fmt::Display for ParserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(i) => write!(
                f,
                "node {i} (name '{}', operator '{}'): {}",
                self.node_name, self.node_operator, self.description
            ),
            None => write!(f, "{}", self.description),
        }
    }
}

/// Error of this crate: a kind, a message that names what failed, and the parser's errors
/// where there are any.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    parser_errors: Vec<ParserError>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            parser_errors: Vec::new(),
        }
    }

    pub(crate) fn with_parser_errors(mut self, errors: Vec<ParserError>) -> Self {
        self.parser_errors = errors;
        self
    }

    /// The broad category.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Errors of the ONNX parser (empty unless [`ErrorKind::Parse`]).
    pub fn parser_errors(&self) -> &[ParserError] {
        &self.parser_errors
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for e in &self.parser_errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// The shim's last error message on this thread.
pub(crate) fn last_error() -> String {
    // SAFETY: the shim returns a pointer to a thread-local, NUL-terminated string that stays
    // valid until the next shim call on this thread; we copy it immediately.
    unsafe { std::ffi::CStr::from_ptr(ffi::trt_last_error()) }
        .to_string_lossy()
        .into_owned()
}
