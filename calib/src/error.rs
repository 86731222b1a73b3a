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
    /// A saved calibration file cannot be read back.
    CalibrationFile {
        /// The file.
        path: PathBuf,
        /// What the JSON decoder said.
        message: String,
    },
    /// Reading, checking or running the model on the CPU failed (`trt-cpu`: invalid ONNX,
    /// external data, an operator no CPU engine can run…).
    Cpu(trt_cpu::Error),
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
            Error::CalibrationFile { path, message } => {
                write!(
                    f,
                    "{} is not a saved calibration: {message}",
                    path.display()
                )
            }
            Error::Cpu(e) => e.fmt(f),
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
            Error::Options { message } => write!(f, "invalid option: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Cpu(e) => std::error::Error::source(e),
            _ => None,
        }
    }
}

impl From<trt_cpu::Error> for Error {
    fn from(e: trt_cpu::Error) -> Self {
        match e {
            // A missing input of a run is a sample's fault: say which sample.
            trt_cpu::Error::Input {
                call,
                input,
                message,
            } => Error::Sample {
                sample: call,
                input: Some(input),
                message,
            },
            other => Error::Cpu(other),
        }
    }
}
