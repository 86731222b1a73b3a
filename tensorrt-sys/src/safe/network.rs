//! A network parsed from ONNX, and optimization profiles.

use std::fmt;
use std::ptr::NonNull;

use super::*;
use crate::error::{ParserError, Result};
use crate::ffi;
use crate::result::StatusExt;

/// A network parsed from ONNX.
pub struct Network<'b> {
    pub(super) raw: NonNull<ffi::trt_network>,
    pub(super) _builder: &'b Builder,
}

impl fmt::Debug for Network<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("inputs", &self.inputs())
            .field("outputs", &self.outputs())
            .finish()
    }
}

impl Network<'_> {
    pub(super) fn parser_errors(&self) -> Vec<ParserError> {
        // SAFETY: valid network.
        let n = unsafe { ffi::trt_network_parser_error_count(self.raw.as_ptr()) };
        let mut out = Vec::new();
        for i in 0..n {
            let mut e = std::mem::MaybeUninit::<ffi::trt_parser_error>::zeroed();
            // SAFETY: index in range; strings in `e` live as long as the network and are copied.
            unsafe {
                if let Err(failure) =
                    ffi::trt_network_parser_error(self.raw.as_ptr(), i, e.as_mut_ptr()).result()
                {
                    // Not skipped: the entry says it could not be read.
                    out.push(ParserError {
                        code: -1,
                        node: None,
                        node_name: String::new(),
                        node_operator: String::new(),
                        description: format!("parser error {i} could not be read: {failure}"),
                    });
                    continue;
                }
                let e = e.assume_init();
                out.push(ParserError {
                    code: e.code,
                    node: usize::try_from(e.node).ok(),
                    node_name: owned_str(e.node_name),
                    node_operator: owned_str(e.node_operator),
                    description: owned_str(e.desc),
                });
            }
        }
        out
    }

    fn tensors(&self, inputs: bool) -> Result<Vec<TensorDesc>> {
        // SAFETY: valid network.
        let n = unsafe {
            if inputs {
                ffi::trt_network_input_count(self.raw.as_ptr())
            } else {
                ffi::trt_network_output_count(self.raw.as_ptr())
            }
        };
        (0..n)
            .map(|i| {
                let mut name = std::ptr::null();
                let mut dims = std::mem::MaybeUninit::<ffi::trt_dims>::zeroed();
                let mut dtype = 0;
                // SAFETY: index in range; out-params valid; name copied before the next call.
                unsafe {
                    ffi::trt_network_tensor(
                        self.raw.as_ptr(),
                        inputs,
                        i,
                        &mut name,
                        dims.as_mut_ptr(),
                        &mut dtype,
                    )
                    .result()?;
                    Ok(TensorDesc {
                        name: owned_str(name),
                        dims: from_ffi_dims(&dims.assume_init()),
                        data_type: DataType(dtype),
                    })
                }
            })
            .collect()
    }

    /// The network's inputs.
    ///
    /// # Errors
    ///
    /// The shim's status when a tensor cannot be described (none is skipped).
    pub fn inputs(&self) -> Result<Vec<TensorDesc>> {
        self.tensors(true)
    }

    /// The network's outputs.
    ///
    /// # Errors
    ///
    /// As [`Network::inputs`].
    pub fn outputs(&self) -> Result<Vec<TensorDesc>> {
        self.tensors(false)
    }
}

impl Drop for Network<'_> {
    fn drop(&mut self) {
        // SAFETY: created by the shim, destroyed once.
        unsafe { ffi::trt_network_destroy(self.raw.as_ptr()) }
    }
}

/// An optimization profile: min/opt/max shapes for every dynamic input.
pub struct OptimizationProfile<'b> {
    pub(super) raw: NonNull<ffi::trt_profile>,
    pub(super) _builder: &'b Builder,
}

impl fmt::Debug for OptimizationProfile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OptimizationProfile")
            .finish_non_exhaustive()
    }
}

impl OptimizationProfile<'_> {
    /// Sets min, opt and max of input `name`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if TensorRT rejects a bound (e.g. negative extents).
    pub fn set(&mut self, name: &str, min: &[i64], opt: &[i64], max: &[i64]) -> Result<&mut Self> {
        let cname = cstring("input name", name)?;
        for (which, dims) in [
            (ffi::TRT_PROFILE_MIN, min),
            (ffi::TRT_PROFILE_OPT, opt),
            (ffi::TRT_PROFILE_MAX, max),
        ] {
            let dims = to_ffi_dims(dims)?;
            // SAFETY: valid profile, NUL-terminated name, valid dims.
            unsafe {
                ffi::trt_profile_set_dims(self.raw.as_ptr(), cname.as_ptr(), which as i32, &dims)
            }
            .result()?;
        }
        Ok(self)
    }
}

impl Drop for OptimizationProfile<'_> {
    fn drop(&mut self) {
        // SAFETY: frees the shim's handle once; the IOptimizationProfile stays with the builder.
        unsafe { ffi::trt_profile_destroy(self.raw.as_ptr()) }
    }
}
