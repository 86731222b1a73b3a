//! Deserialized engines: I/O tensors, profiles, inspection.

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use super::*;
use crate::error::Result;
use crate::ffi;
use crate::result::{self, StatusExt};

/// Direction of an engine I/O tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoMode {
    /// Input.
    Input,
    /// Output.
    Output,
}

/// One engine I/O tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoTensor {
    /// Name.
    pub name: String,
    /// Direction.
    pub mode: IoMode,
    /// Element type.
    pub data_type: DataType,
    /// Shape with `-1` for dynamic dimensions.
    pub dims: Dims,
}

/// A deserialized engine.
pub struct Engine {
    pub(super) raw: NonNull<ffi::trt_engine>,
    pub(super) _runtime: Arc<Runtime>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("io_tensors", &self.io_tensors())
            .finish()
    }
}

// SAFETY: `ICudaEngine`'s query methods and `createExecutionContext` are thread-safe; the
// handle is destroyed only in `Drop`.
unsafe impl Send for Engine {}
// SAFETY: as above.
unsafe impl Sync for Engine {}

impl Engine {
    /// Every I/O tensor in engine order.
    ///
    /// # Errors
    ///
    /// The shim's status when a tensor cannot be described (none is skipped).
    pub fn io_tensors(&self) -> Result<Vec<IoTensor>> {
        // SAFETY: valid engine.
        let n = unsafe { ffi::trt_engine_io_count(self.raw.as_ptr()) };
        (0..n)
            .map(|i| {
                let mut name = std::ptr::null();
                // SAFETY: index in range, out-params valid, name copied at once.
                unsafe {
                    ffi::trt_engine_io_name(self.raw.as_ptr(), i, &mut name).result()?;
                    let name = owned_str(name);
                    let (mut mode, mut dtype) = (0, 0);
                    let mut dims = std::mem::MaybeUninit::<ffi::trt_dims>::zeroed();
                    let cname = cstring("engine tensor", &name)?;
                    ffi::trt_engine_tensor(
                        self.raw.as_ptr(),
                        cname.as_ptr(),
                        &mut mode,
                        &mut dtype,
                        dims.as_mut_ptr(),
                    )
                    .result()?;
                    Ok(IoTensor {
                        name,
                        mode: if mode == ffi::TRT_IO_INPUT as i32 {
                            IoMode::Input
                        } else {
                            IoMode::Output
                        },
                        data_type: DataType(dtype),
                        dims: from_ffi_dims(&dims.assume_init()),
                    })
                }
            })
            .collect()
    }

    /// Number of optimization profiles.
    pub fn profile_count(&self) -> usize {
        // SAFETY: valid engine.
        unsafe { ffi::trt_engine_profile_count(self.raw.as_ptr()) }.max(0) as usize
    }

    /// `[min, opt, max]` of input `name` in `profile` (TensorRT's `getProfileShape` for each
    /// selector; callers put them in their own range type, `trt_manifest::ShapeRange`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] for an unknown profile.
    pub fn profile_dims(&self, name: &str, profile: usize) -> Result<[Dims; 3]> {
        let cname = cstring("tensor name", name)?;
        let get = |which: u32| -> Result<Dims> {
            let mut d = std::mem::MaybeUninit::<ffi::trt_dims>::zeroed();
            // SAFETY: valid engine and name; out-param valid.
            unsafe {
                ffi::trt_engine_profile_dims(
                    self.raw.as_ptr(),
                    cname.as_ptr(),
                    profile as i32,
                    which as i32,
                    d.as_mut_ptr(),
                )
                .result()?;
                Ok(from_ffi_dims(&d.assume_init()))
            }
        };
        Ok([
            get(ffi::TRT_PROFILE_MIN)?,
            get(ffi::TRT_PROFILE_OPT)?,
            get(ffi::TRT_PROFILE_MAX)?,
        ])
    }

    /// Device memory the engine needs for activations.
    pub fn device_memory_size(&self) -> i64 {
        // SAFETY: valid engine.
        unsafe { ffi::trt_engine_device_memory_size(self.raw.as_ptr()) }
    }

    /// The engine inspector's JSON.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if the inspector fails.
    pub fn inspector_json(&self) -> Result<String> {
        // SAFETY: valid engine.
        let json = result::host_memory("IEngineInspector", |out| unsafe {
            ffi::trt_engine_inspector_json(self.raw.as_ptr(), out)
        })?;
        Ok(String::from_utf8_lossy(&json).into_owned())
    }

    /// Creates an execution context.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] (e.g. out of device memory).
    pub fn context(self: &Arc<Self>) -> Result<Context> {
        // SAFETY: valid engine; the context keeps it alive.
        let raw = result::create("createExecutionContext", |out| unsafe {
            ffi::trt_context_create(self.raw.as_ptr(), out)
        })?;
        Ok(Context {
            raw,
            _engine: self.clone(),
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: contexts hold an `Arc` to the engine, so none is alive.
        unsafe { ffi::trt_engine_destroy(self.raw.as_ptr()) }
    }
}
