//! Execution contexts.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use super::*;
use crate::error::Result;
use crate::ffi;
use crate::result::StatusExt;

/// An execution context: one in-flight inference at a time.
pub struct Context {
    pub(super) raw: NonNull<ffi::trt_context>,
    pub(super) _engine: Arc<Engine>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

// SAFETY: an `IExecutionContext` may move between threads but must not be used by two at once;
// `Context` is `Send` and not `Sync`, and every mutating method takes `&mut self`.
unsafe impl Send for Context {}

impl Context {
    /// Selects an optimization profile, ordered on `stream` (a `cudaStream_t`/`CUstream`).
    ///
    /// # Safety
    ///
    /// `stream` must be a valid CUDA stream of the engine's device (or null for the default
    /// stream).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] for an unknown profile.
    pub unsafe fn set_profile(&mut self, profile: usize, stream: *mut c_void) -> Result<()> {
        // SAFETY: forwarded to the caller for `stream`; valid context.
        unsafe { ffi::trt_context_set_profile(self.raw.as_ptr(), profile as i32, stream) }.result()
    }

    /// Sets the shape of an input.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if outside the active profile.
    pub fn set_input_shape(&mut self, name: &str, dims: &[i64]) -> Result<()> {
        let cname = cstring("input name", name)?;
        let dims = to_ffi_dims(dims)?;
        // SAFETY: valid context, name and dims.
        unsafe { ffi::trt_context_set_input_shape(self.raw.as_ptr(), cname.as_ptr(), &dims) }
            .result()
    }

    /// Binds a tensor to device memory.
    ///
    /// # Safety
    ///
    /// `address` must point to device memory large enough for the tensor's current shape and
    /// stay valid until the enqueued work that uses it completes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] for an unknown name.
    pub unsafe fn set_tensor_address(&mut self, name: &str, address: *mut c_void) -> Result<()> {
        let cname = cstring("tensor name", name)?;
        // SAFETY: forwarded to the caller for `address`.
        unsafe { ffi::trt_context_set_tensor_address(self.raw.as_ptr(), cname.as_ptr(), address) }
            .result()
    }

    /// Current shape of a tensor (outputs are resolved once every input shape is set).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] for a name with a NUL byte.
    pub fn tensor_shape(&self, name: &str) -> Result<Dims> {
        let cname = cstring("tensor name", name)?;
        let mut d = std::mem::MaybeUninit::<ffi::trt_dims>::zeroed();
        // SAFETY: valid context, name, out-param.
        unsafe {
            ffi::trt_context_tensor_shape(self.raw.as_ptr(), cname.as_ptr(), d.as_mut_ptr())
                .result()?;
            Ok(from_ffi_dims(&d.assume_init()))
        }
    }

    /// Enqueues inference on `stream`.
    ///
    /// # Safety
    ///
    /// Every I/O tensor must be bound with [`Context::set_tensor_address`] to memory that stays
    /// valid until the stream reaches this point; `stream` must be a valid CUDA stream.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] with TensorRT's logged reason.
    pub unsafe fn enqueue(&mut self, stream: *mut c_void) -> Result<()> {
        // SAFETY: forwarded to the caller.
        unsafe { ffi::trt_context_enqueue(self.raw.as_ptr(), stream) }.result()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: created by the shim, destroyed once.
        unsafe { ffi::trt_context_destroy(self.raw.as_ptr()) }
    }
}
