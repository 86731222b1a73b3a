//! The result layer between the raw declarations ([`crate::ffi`]) and the safe owners: a
//! shim status becomes a [`Result`] carrying the shim's message, an out-pointer becomes a
//! `NonNull` or an error, and shim-owned host memory becomes a `Vec<u8>`. Each of these
//! sequences is written here once; the safe owners only choose the call.

use std::ptr::NonNull;

use crate::error::{Error, ErrorKind, Result, last_error};
use crate::ffi;

/// A shim status as a `Result`, with the thread's last shim message on failure.
///
/// # Errors
///
/// The [`ErrorKind`] of the status code.
pub(crate) fn status(status: ffi::trt_status) -> Result<()> {
    if status == ffi::TRT_OK as ffi::trt_status {
        return Ok(());
    }
    let kind = match status as u32 {
        ffi::TRT_ERR_INVALID_ARGUMENT => ErrorKind::InvalidArgument,
        ffi::TRT_ERR_PARSE => ErrorKind::Parse,
        ffi::TRT_ERR_UNSUPPORTED => ErrorKind::Unsupported,
        ffi::TRT_ERR_EXCEPTION => ErrorKind::Exception,
        _ => ErrorKind::TensorRt,
    };
    Err(Error::new(kind, last_error()))
}

/// Runs a shim call that creates an object through its last (out-pointer) argument and
/// returns the object: its status checked first, then the pointer.
///
/// # Errors
///
/// The call's status, or [`ErrorKind::TensorRt`] naming `what` when it succeeded without an
/// object.
pub(crate) fn create<T>(
    what: &str,
    call: impl FnOnce(&mut *mut T) -> ffi::trt_status,
) -> Result<NonNull<T>> {
    let mut raw = std::ptr::null_mut();
    status(call(&mut raw))?;
    NonNull::new(raw)
        .ok_or_else(|| Error::new(ErrorKind::TensorRt, format!("{what} returned no object")))
}

/// Runs a shim call that returns host memory (a serialized engine, a timing cache, JSON)
/// and copies it out, destroying the shim's object.
///
/// # Errors
///
/// As [`create`].
pub(crate) fn host_memory(
    what: &str,
    call: impl FnOnce(&mut *mut ffi::trt_host_memory) -> ffi::trt_status,
) -> Result<Vec<u8>> {
    let raw = create(what, call)?.as_ptr();
    // SAFETY: `raw` is a live host memory object fresh from the shim, read then destroyed
    // exactly once here.
    unsafe {
        let data = ffi::trt_host_memory_data(raw) as *const u8;
        let size = ffi::trt_host_memory_size(raw);
        let bytes = if data.is_null() || size == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(data, size).to_vec()
        };
        ffi::trt_host_memory_destroy(raw);
        Ok(bytes)
    }
}

/// [`status`] as a method, for calls whose only output is their status.
pub(crate) trait StatusExt {
    /// The status as a `Result`.
    fn result(self) -> Result<()>;
}

impl StatusExt for ffi::trt_status {
    fn result(self) -> Result<()> {
        status(self)
    }
}
