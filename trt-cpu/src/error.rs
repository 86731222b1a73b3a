//! The crate's one error type.

use std::fmt;
use std::path::PathBuf;

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, checking and running a model. Every variant
/// names the file, model, call, input or node at fault.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Bytes are not a valid ONNX model.
    Decode {
        /// The file (or a description of the bytes).
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// The model cannot be used as asked (missing graph, unsupported element type…).
    Model {
        /// Model name or path.
        model: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// An input of a call is missing.
    Input {
        /// Which call (a calibration sample's id, `call` for runtime calls).
        call: String,
        /// The input.
        input: String,
        /// What is wrong.
        message: String,
    },
    /// The CPU inference engine (tract or onnxruntime) failed.
    Inference {
        /// Which model and step.
        context: String,
        /// The engine's message.
        message: String,
    },
    /// An engine choice names no engine.
    Options {
        /// What is wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn model(model: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Model {
            model: model.into(),
            message: message.into(),
        }
    }

    pub(crate) fn inference(context: impl Into<String>, err: impl fmt::Display) -> Self {
        Error::Inference {
            context: context.into(),
            message: format!("{err:#}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Decode { path, message } => {
                write!(f, "{} is not a valid ONNX model: {message}", path.display())
            }
            Error::Model { model, message } => write!(f, "model {model}: {message}"),
            Error::Input {
                call,
                input,
                message,
            } => write!(f, "{call}, input '{input}': {message}"),
            Error::Inference { context, message } => {
                write!(f, "CPU inference ({context}) failed: {message}")
            }
            Error::Options { message } => write!(f, "invalid option: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
