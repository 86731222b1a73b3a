//! The runtime that deserializes engines.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use super::*;
use crate::error::{Error, ErrorKind, Result, StatusExt};
use crate::ffi;
use crate::loader::Library;

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
        let mut raw = std::ptr::null_mut();
        // SAFETY: entry points and logger stay alive with the runtime (held in `Arc`s).
        let status =
            unsafe { ffi::trt_runtime_create(&library.api, logger.raw.as_ptr(), &mut raw) };
        logger.resume_panic();
        status.result()?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::TensorRt, "createInferRuntime returned null"))?;
        Ok(Arc::new(Runtime {
            raw,
            logger: logger.clone(),
            _library: library.clone(),
        }))
    }

    /// Deserializes an engine.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] with TensorRT's logged reason: no CUDA driver, an unsupported
    /// GPU, or corrupted bytes.
    pub fn deserialize(self: &Arc<Self>, bytes: &[u8]) -> Result<Arc<Engine>> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `bytes` is valid for its length during the call.
        let status = unsafe {
            ffi::trt_runtime_deserialize(
                self.raw.as_ptr(),
                bytes.as_ptr() as *const c_void,
                bytes.len(),
                &mut raw,
            )
        };
        self.logger.resume_panic();
        status.result()?;
        let raw = NonNull::new(raw).ok_or_else(|| {
            Error::new(ErrorKind::TensorRt, "deserializeCudaEngine returned null")
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
