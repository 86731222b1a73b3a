//! Which CPU engine runs models: tract, onnxruntime, or tract with onnxruntime where tract
//! cannot run a model (the default). Process-wide, from [`set_engine_choice`] (the CLI's
//! `--engine`) or `TRT_CALIB_ENGINE`.

use crate::error::{Error, Result};

/// Which CPU engine runs models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// tract where it can run the model, else onnxruntime (the default).
    #[default]
    Auto,
    /// tract only: a model tract cannot run is an error.
    Tract,
    /// onnxruntime only (its library must be available, `ORT_DYLIB_PATH`).
    OnnxRuntime,
}

impl std::str::FromStr for EngineChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<EngineChoice> {
        match s {
            "auto" => Ok(EngineChoice::Auto),
            "tract" => Ok(EngineChoice::Tract),
            "onnxruntime" | "ort" => Ok(EngineChoice::OnnxRuntime),
            other => Err(Error::Options {
                message: format!("engine `{other}` is not one of auto, tract, onnxruntime"),
            }),
        }
    }
}

/// 0: not set (read `TRT_CALIB_ENGINE`), else `EngineChoice as u8 + 1`.
static ENGINE_CHOICE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Forces the engine of every [`crate::CpuModel`] prepared after this call in this process.
pub fn set_engine_choice(choice: EngineChoice) {
    ENGINE_CHOICE.store(choice as u8 + 1, std::sync::atomic::Ordering::Relaxed);
}

/// The engine choice: [`set_engine_choice`]'s, else `TRT_CALIB_ENGINE`'s, else
/// [`EngineChoice::Auto`].
///
/// # Errors
///
/// [`Error::Options`] when `TRT_CALIB_ENGINE` names no engine.
pub fn engine_choice() -> Result<EngineChoice> {
    match ENGINE_CHOICE.load(std::sync::atomic::Ordering::Relaxed) {
        1 => Ok(EngineChoice::Auto),
        2 => Ok(EngineChoice::Tract),
        3 => Ok(EngineChoice::OnnxRuntime),
        _ => match crate::env("TRT_CALIB_ENGINE") {
            Some(v) => v.to_string_lossy().parse().map_err(|e| Error::Options {
                message: format!("TRT_CALIB_ENGINE: {e}"),
            }),
            None => Ok(EngineChoice::Auto),
        },
    }
}
