//! The runtime that deserializes engines.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use super::*;
use crate::error::Result;
use crate::ffi;
use crate::loader::Library;
use crate::result::{self, StatusExt};

/// Deserializes engines.
pub struct Runtime {
    pub(super) raw: NonNull<ffi::trt_runtime>,
    pub(super) logger: Arc<Logger>,
    pub(super) _library: Arc<Library>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

// SAFETY: `IRuntime::deserializeCudaEngine` is documented thread-safe; the handle is only
// destroyed in `Drop`.
unsafe impl Send for Runtime {}
// SAFETY: as above.
unsafe impl Sync for Runtime {}

impl Runtime {
    /// Creates a runtime.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if TensorRT refuses.
    pub fn new(library: &Arc<Library>, logger: &Arc<Logger>) -> Result<Arc<Runtime>> {
        let raw = result::create("createInferRuntime", |out| {
            // SAFETY: entry points and logger stay alive with the runtime (held in `Arc`s).
            let status = unsafe { ffi::trt_runtime_create(&library.api, logger.raw.as_ptr(), out) };
            logger.resume_panic();
            status
        })?;
        Ok(Arc::new(Runtime {
            raw,
            logger: logger.clone(),
            _library: library.clone(),
        }))
    }

    /// Reads an engine's header and says whether it can run on this system (TensorRT-RTX's
    /// `IRuntime::getEngineValidity`), so that a refusal is known by its reason code before
    /// deserializing rather than read from a log message.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] with full TensorRT, which has no such check;
    /// [`ErrorKind::InvalidArgument`] for empty bytes.
    pub fn engine_validity(&self, bytes: &[u8]) -> Result<EngineValidity> {
        let (mut validity, mut bits) = (0i32, 0u64);
        // SAFETY: `bytes` is valid for its length during the call; the out-pointers are live
        // locals.
        let status = unsafe {
            ffi::trt_runtime_engine_validity(
                self.raw.as_ptr(),
                bytes.as_ptr() as *const c_void,
                bytes.len(),
                &mut validity,
                &mut bits,
            )
        };
        self.logger.resume_panic();
        status.result()?;
        Ok(match validity as u32 {
            ffi::TRT_ENGINE_VALID => EngineValidity::Valid,
            ffi::TRT_ENGINE_SUBOPTIMAL => EngineValidity::Suboptimal,
            _ => EngineValidity::Invalid(Diagnostics(bits)),
        })
    }

    /// Deserializes an engine.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] with TensorRT's logged reason: no CUDA driver, an unsupported
    /// GPU, or corrupted bytes.
    pub fn deserialize(self: &Arc<Self>, bytes: &[u8]) -> Result<Arc<Engine>> {
        let raw = result::create("deserializeCudaEngine", |out| {
            // SAFETY: `bytes` is valid for its length during the call.
            let status = unsafe {
                ffi::trt_runtime_deserialize(
                    self.raw.as_ptr(),
                    bytes.as_ptr() as *const c_void,
                    bytes.len(),
                    out,
                )
            };
            self.logger.resume_panic();
            status
        })?;
        Ok(Arc::new(Engine {
            raw,
            _runtime: self.clone(),
        }))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // SAFETY: engines hold an `Arc` to the runtime, so none is alive.
        unsafe { ffi::trt_runtime_destroy(self.raw.as_ptr()) }
    }
}

/// Whether a serialized engine can run on this system, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineValidity {
    /// Likely valid.
    Valid,
    /// Likely valid, with reduced performance.
    Suboptimal,
    /// Invalid here, for the reasons given.
    Invalid(Diagnostics),
}

/// Why an engine cannot run on this system (TensorRT-RTX's `EngineInvalidityDiagnostics`
/// bits; several may be set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diagnostics(u64);

impl Diagnostics {
    /// Every reason, with its bit and text.
    const REASONS: [(u32, &'static str); 7] = [
        (
            ffi::TRT_ENGINE_VERSION_MISMATCH,
            "built by another TensorRT-RTX version",
        ),
        (
            ffi::TRT_ENGINE_UNSUPPORTED_CC,
            "the GPU's compute capability is not supported",
        ),
        (
            ffi::TRT_ENGINE_OLD_CUDA_DRIVER,
            "the CUDA driver is older than at build time",
        ),
        (
            ffi::TRT_ENGINE_OLD_CUDA_RUNTIME,
            "the CUDA runtime is older than at build time",
        ),
        (
            ffi::TRT_ENGINE_INSUFFICIENT_GPU_MEMORY,
            "not enough GPU memory for the engine's weights",
        ),
        (
            ffi::TRT_ENGINE_MALFORMED,
            "the bytes are not a well-formed engine",
        ),
        (
            ffi::TRT_ENGINE_CUDA_ERROR,
            "CUDA is not installed correctly",
        ),
    ];

    /// The raw bits.
    pub fn bits(self) -> u64 {
        self.0
    }

    fn has(self, bit: u32) -> bool {
        self.0 & u64::from(bit) != 0
    }

    /// Built by another TensorRT-RTX version.
    pub fn version_mismatch(self) -> bool {
        self.has(ffi::TRT_ENGINE_VERSION_MISMATCH)
    }

    /// The GPU's compute capability is not supported.
    pub fn unsupported_compute_capability(self) -> bool {
        self.has(ffi::TRT_ENGINE_UNSUPPORTED_CC)
    }

    /// The CUDA driver or runtime is older than at build time, or not installed correctly.
    pub fn cuda_too_old_or_broken(self) -> bool {
        self.has(ffi::TRT_ENGINE_OLD_CUDA_DRIVER)
            || self.has(ffi::TRT_ENGINE_OLD_CUDA_RUNTIME)
            || self.has(ffi::TRT_ENGINE_CUDA_ERROR)
    }

    /// Not enough GPU memory for the engine's weights.
    pub fn insufficient_gpu_memory(self) -> bool {
        self.has(ffi::TRT_ENGINE_INSUFFICIENT_GPU_MEMORY)
    }

    /// The bytes are not a well-formed engine.
    pub fn malformed(self) -> bool {
        self.has(ffi::TRT_ENGINE_MALFORMED)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reasons: Vec<&str> = Self::REASONS
            .iter()
            .filter(|(bit, _)| self.has(*bit))
            .map(|(_, text)| *text)
            .collect();
        if reasons.is_empty() {
            write!(f, "no reason given (diagnostics {:#x})", self.0)
        } else {
            f.write_str(&reasons.join("; "))
        }
    }
}
