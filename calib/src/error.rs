//! The crate's one error type.

use std::fmt;
use std::path::PathBuf;

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading models and data, calibrating and writing Q/DQ.
/// Every variant names the file, model, sample, input or node at fault.
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
    /// A file is not a valid ONNX model.
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
    /// A calibration sample is unusable.
    Sample {
        /// Which sample (directory, file or index).
        sample: String,
        /// The input at fault, when there is one.
        input: Option<String>,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The calibration source holds no sample.
    EmptySource {
        /// Description of the source (path or "in-memory").
        source: String,
    },
    /// A declared shape profile is inconsistent with the model or itself.
    Profile {
        /// The input.
        input: String,
        /// What is wrong.
        message: String,
    },
    /// The CPU inference engine (tract) failed.
    Inference {
        /// Which model and step.
        context: String,
        /// tract's message.
        message: String,
    },
    /// An option is invalid (percentile out of range, unknown method…).
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

    pub(crate) fn sample(
        sample: impl Into<String>,
        input: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Error::Sample {
            sample: sample.into(),
            input: input.map(str::to_string),
            message: message.into(),
        }
    }

    pub(crate) fn model(model: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Model {
            model: model.into(),
            message: message.into(),
        }
    }

    pub(crate) fn options(message: impl Into<String>) -> Self {
        Error::Options {
            message: message.into(),
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
            Error::Sample {
                sample,
                input: Some(input),
                message,
            } => {
                write!(f, "calibration sample {sample}, input '{input}': {message}")
            }
            Error::Sample {
                sample,
                input: None,
                message,
            } => write!(f, "calibration sample {sample}: {message}"),
            Error::EmptySource { source } => {
                write!(
                    f,
                    "calibration source {source} holds no sample; at least one is needed"
                )
            }
            Error::Profile { input, message } => write!(f, "profile of input '{input}': {message}"),
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

impl From<trt_cpu::Error> for Error {
    fn from(e: trt_cpu::Error) -> Self {
        match e {
            trt_cpu::Error::Io { path, source } => Error::Io { path, source },
            trt_cpu::Error::Decode { path, message } => Error::Decode { path, message },
            trt_cpu::Error::Model { model, message } => Error::Model { model, message },
            trt_cpu::Error::Input {
                call,
                input,
                message,
            } => Error::Sample {
                sample: call,
                input: Some(input),
                message,
            },
            trt_cpu::Error::Inference { context, message } => Error::Inference { context, message },
            trt_cpu::Error::Options { message } => Error::Options { message },
            other => Error::Inference {
                context: "CPU inference".into(),
                message: other.to_string(),
            },
        }
    }
}
