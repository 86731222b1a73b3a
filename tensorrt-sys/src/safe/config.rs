//! Builder configuration and build progress.

use std::any::Any;
use std::ffi::{c_char, c_void};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::sync::Mutex;

use super::*;
use crate::error::Result;
use crate::ffi;
use crate::result::{self, StatusExt};

/// Receives the engine build's progress (`nvinfer1::IProgressMonitor`).
pub trait ProgressMonitor: Send {
    /// A phase starts (`parent` is the enclosing phase).
    fn phase_start(&mut self, phase: &str, parent: Option<&str>, steps: i32);
    /// A step finished; return `false` to cancel the build.
    fn step_complete(&mut self, phase: &str, step: i32) -> bool;
    /// A phase finished.
    fn phase_finish(&mut self, phase: &str);
}

pub(super) struct ProgressState {
    monitor: Mutex<Box<dyn ProgressMonitor>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl ProgressState {
    fn call(&self, f: impl FnOnce(&mut dyn ProgressMonitor) -> bool) -> bool {
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut m = self.monitor.lock().unwrap_or_else(|e| e.into_inner());
            f(m.as_mut())
        }));
        match result {
            Ok(keep_going) => keep_going,
            Err(payload) => {
                self.panic
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(payload);
                false
            }
        }
    }

    pub(super) fn resume_panic(&self) {
        let payload = self.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(payload) = payload {
            resume_unwind(payload);
        }
    }
}

/// # Safety (all three trampolines)
///
/// `user` is the `ProgressState` boxed in the `Config`; strings are valid for the call.
unsafe extern "C" fn progress_start(
    user: *mut c_void,
    phase: *const c_char,
    parent: *const c_char,
    steps: i32,
) {
    // SAFETY: see above.
    let (state, phase, parent) = unsafe {
        (
            &*(user as *const ProgressState),
            owned_str(phase),
            (!parent.is_null()).then(|| owned_str(parent)),
        )
    };
    state.call(|m| {
        m.phase_start(&phase, parent.as_deref(), steps);
        true
    });
}

unsafe extern "C" fn progress_step(user: *mut c_void, phase: *const c_char, step: i32) -> bool {
    // SAFETY: see `progress_start`.
    let (state, phase) = unsafe { (&*(user as *const ProgressState), owned_str(phase)) };
    state.call(|m| m.step_complete(&phase, step))
}

unsafe extern "C" fn progress_finish(user: *mut c_void, phase: *const c_char) {
    // SAFETY: see `progress_start`.
    let (state, phase) = unsafe { (&*(user as *const ProgressState), owned_str(phase)) };
    state.call(|m| {
        m.phase_finish(&phase);
        true
    });
}

/// Builder configuration: profiles, memory limits, optimization level, timing cache, progress.
pub struct Config<'b> {
    pub(super) raw: NonNull<ffi::trt_config>,
    pub(super) _builder: &'b Builder,
    pub(super) progress: Option<Box<ProgressState>>,
}

impl fmt::Debug for Config<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config").finish_non_exhaustive()
    }
}

impl Config<'_> {
    /// Adds an optimization profile and returns its index.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] when the profile is invalid (a dynamic input without
    /// bounds, or min > opt > max).
    pub fn add_profile(&mut self, profile: &OptimizationProfile<'_>) -> Result<usize> {
        let mut index = 0;
        // SAFETY: both handles are alive and come from the same builder.
        unsafe { ffi::trt_config_add_profile(self.raw.as_ptr(), profile.raw.as_ptr(), &mut index) }
            .result()?;
        Ok(index as usize)
    }

    /// Limits the workspace memory pool, in bytes.
    ///
    /// # Errors
    ///
    /// Only on shim failure.
    pub fn set_workspace_limit(&mut self, bytes: usize) -> Result<&mut Self> {
        // SAFETY: valid config.
        unsafe {
            ffi::trt_config_set_memory_pool_limit(
                self.raw.as_ptr(),
                ffi::TRT_POOL_WORKSPACE as i32,
                bytes,
            )
        }
        .result()?;
        Ok(self)
    }

    /// Sets the builder optimization level (0..=5; TensorRT's default is 3).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] outside 0..=5.
    pub fn set_optimization_level(&mut self, level: i32) -> Result<&mut Self> {
        // SAFETY: valid config.
        unsafe { ffi::trt_config_set_optimization_level(self.raw.as_ptr(), level) }.result()?;
        Ok(self)
    }

    /// Enables FP16 kernels (TensorRT 10 only).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] on TensorRT 11 and TensorRT-RTX (always strongly typed).
    pub fn set_fp16(&mut self, enable: bool) -> Result<&mut Self> {
        // SAFETY: valid config.
        unsafe { ffi::trt_config_set_fp16(self.raw.as_ptr(), enable) }.result()?;
        Ok(self)
    }

    /// Uses a timing cache initialised from `blob` (empty for a fresh one).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] when TensorRT rejects the blob.
    pub fn set_timing_cache(&mut self, blob: &[u8]) -> Result<&mut Self> {
        // SAFETY: `blob` is valid for its length during the call; TensorRT copies it.
        unsafe {
            ffi::trt_config_set_timing_cache(
                self.raw.as_ptr(),
                blob.as_ptr() as *const c_void,
                blob.len(),
            )
        }
        .result()?;
        Ok(self)
    }

    /// Serializes the timing cache set with [`Config::set_timing_cache`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] when no cache is set.
    pub fn timing_cache(&self) -> Result<Vec<u8>> {
        // SAFETY: valid config.
        result::host_memory("serializeTimingCache", |out| unsafe {
            ffi::trt_config_serialize_timing_cache(self.raw.as_ptr(), out)
        })
    }

    /// Installs a progress monitor for the build.
    ///
    /// # Errors
    ///
    /// Only on shim failure.
    pub fn set_progress_monitor(
        &mut self,
        monitor: impl ProgressMonitor + 'static,
    ) -> Result<&mut Self> {
        let state = Box::new(ProgressState {
            monitor: Mutex::new(Box::new(monitor)),
            panic: Mutex::new(None),
        });
        let callbacks = ffi::trt_progress_callbacks {
            phase_start: Some(progress_start),
            step_complete: Some(progress_step),
            phase_finish: Some(progress_finish),
        };
        // SAFETY: `state` is kept in `self.progress` until the config (and with it the C++
        // monitor) is destroyed.
        unsafe {
            ffi::trt_config_set_progress(
                self.raw.as_ptr(),
                &callbacks,
                &*state as *const ProgressState as *mut c_void,
            )
        }
        .result()?;
        self.progress = Some(state);
        Ok(self)
    }
}

impl Drop for Config<'_> {
    fn drop(&mut self) {
        // SAFETY: created by the shim, destroyed once, before `progress` is freed.
        unsafe { ffi::trt_config_destroy(self.raw.as_ptr()) }
    }
}
