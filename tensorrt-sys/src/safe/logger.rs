//! The logger: TensorRT's messages to a Rust callback, panics kept from unwinding into C++.

use std::any::Any;
use std::ffi::{CStr, c_char, c_void};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::ffi;
use crate::result::{self};

/// Severity of a TensorRT log message (`nvinfer1::ILogger::Severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Severity(pub i32);

impl Severity {
    /// Internal error: TensorRT is in an unrecoverable state.
    pub const INTERNAL_ERROR: Severity = Severity(0);
    /// Error.
    pub const ERROR: Severity = Severity(1);
    /// Warning.
    pub const WARNING: Severity = Severity(2);
    /// Information.
    pub const INFO: Severity = Severity(3);
    /// Verbose.
    pub const VERBOSE: Severity = Severity(4);
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            0 => "internal error",
            1 => "error",
            2 => "warning",
            3 => "info",
            4 => "verbose",
            _ => "unknown",
        })
    }
}

type LogFn = dyn Fn(Severity, &str) + Send + Sync;

struct LoggerState {
    callback: Box<LogFn>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// Receives TensorRT's log messages. A panic in the callback is caught at the C boundary and
/// resumed when the TensorRT call that logged returns (git2's `panic::wrap`).
pub struct Logger {
    pub(super) raw: NonNull<ffi::trt_logger>,
    // Boxed so that its address, handed to C, is stable.
    state: Box<LoggerState>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger").finish_non_exhaustive()
    }
}

// SAFETY: the C++ logger only forwards to `state.callback`, which is `Send + Sync`; the panic
// slot is behind a mutex. TensorRT may log from several threads at once.
unsafe impl Send for Logger {}
// SAFETY: as above.
unsafe impl Sync for Logger {}

unsafe extern "C" fn log_trampoline(user: *mut c_void, severity: i32, message: *const c_char) {
    // SAFETY: `user` is the `LoggerState` boxed in `Logger`, alive as long as the C++ logger.
    let state = unsafe { &*(user as *const LoggerState) };
    // SAFETY: the shim passes a NUL-terminated string valid for this call.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
        (state.callback)(Severity(severity), &text)
    })) {
        let mut slot = state.panic.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(payload);
    }
}

impl Logger {
    /// Creates a logger that passes every message at `max_severity` or more severe to `callback`.
    ///
    /// # Errors
    ///
    /// Only if the shim cannot allocate.
    pub fn new(
        max_severity: Severity,
        callback: impl Fn(Severity, &str) + Send + Sync + 'static,
    ) -> Result<Arc<Logger>> {
        let state = Box::new(LoggerState {
            callback: Box::new(callback),
            panic: Mutex::new(None),
        });
        // SAFETY: the trampoline matches `trt_log_fn`; `state` outlives the C++ logger because
        // both are owned by the returned `Logger`, which destroys the C++ side first.
        let raw = result::create("trt_logger_create", |out| unsafe {
            ffi::trt_logger_create(
                Some(log_trampoline),
                &*state as *const LoggerState as *mut c_void,
                max_severity.0,
                out,
            )
        })?;
        Ok(Arc::new(Logger { raw, state }))
    }

    /// Resumes a panic the callback raised during the last TensorRT call, if any.
    pub(super) fn resume_panic(&self) {
        let payload = self
            .state
            .panic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(payload) = payload {
            resume_unwind(payload);
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `trt_logger_create`; every object using it holds an `Arc` to
        // this logger, so none is alive any more.
        unsafe { ffi::trt_logger_destroy(self.raw.as_ptr()) }
    }
}
