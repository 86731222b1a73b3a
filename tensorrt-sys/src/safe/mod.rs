//! Owning, safe handles over the shim, by role. Every handle is `NonNull`, destroyed in `Drop`,
//! and keeps its parent alive through an `Arc` (a network needs its builder, an engine its
//! runtime).

use std::ffi::{CStr, CString, c_char};

use crate::error::{Error, ErrorKind, Result};
use crate::ffi;

mod builder;
mod config;
mod context;
mod engine;
mod logger;
mod network;
mod runtime;
mod tensor;

pub use builder::Builder;
pub use config::{Config, ProgressMonitor};
pub use context::Context;
pub use engine::{Engine, IoMode, IoTensor};
pub use logger::{Logger, Severity};
pub use network::{Network, OptimizationProfile};
pub use runtime::{Diagnostics, EngineValidity, Runtime};
pub use tensor::{DataType, TensorDesc};

/// A shape; `-1` marks a dynamic dimension.
pub type Dims = Vec<i64>;

fn to_ffi_dims(dims: &[i64]) -> Result<ffi::trt_dims> {
    let max = ffi::TRT_MAX_DIMS as usize;
    if dims.len() > max {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("rank {} exceeds TensorRT's maximum of {max}", dims.len()),
        ));
    }
    let mut out = ffi::trt_dims {
        nb_dims: dims.len() as i32,
        d: [0; ffi::TRT_MAX_DIMS as usize],
    };
    out.d[..dims.len()].copy_from_slice(dims);
    Ok(out)
}

fn from_ffi_dims(dims: &ffi::trt_dims) -> Dims {
    let n = dims.nb_dims.clamp(0, ffi::TRT_MAX_DIMS as i32) as usize;
    dims.d[..n].to_vec()
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} '{s}' contains a NUL byte"),
        )
    })
}

/// # Safety
///
/// `p` must be null or a NUL-terminated string valid for the call.
unsafe fn owned_str(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}
