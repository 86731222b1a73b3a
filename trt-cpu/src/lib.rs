//! ONNX models on the CPU: reading, writing and checking them, and running them.
//!
//! This crate is shared by calibration (`calib`, which runs the FP32 and Q/DQ models on
//! samples) and by the runtime's CPU fallback (`trt-runtime`'s `cpu` feature, which runs the
//! embedded Q/DQ ONNX when no supported GPU is present). It holds no tooling: no command
//! line, no data formats, no calibration.
//!
//! - [`model`]: ONNX read/write with `tract-onnx`'s prost types, external data in and out
//!   (confined to the model's folder), inputs/outputs with symbolic dims kept symbolic, and
//!   [`write_atomic`], the workspace's one atomic file write.
//! - [`offload`]: weights moved to a temporary file while a model is worked on without them
//!   ([`Model::offload_weights`]); `codec` (internal) writes a model piece by piece
//!   ([`Model::write_to`]), a model file is decoded as it is read: no step holds two copies of
//!   the weights.
//! - [`files`]: the file-system rules (atomic writes that never replace a link, device or
//!   FIFO; regular files only on reads; external data confined to its folder).
//! - [`check`]: structural checks of a graph before any engine sees it.
//! - [`infer`]: [`CpuModel`], concrete-shape tract plans, or one symbolic plan when there are
//!   many shapes (intermediate tensors streamed to the caller), onnxruntime ([`onnxruntime`]) where tract cannot run a model, and the
//!   engine choice. Before a plan is optimised, batched convolutions whose im2col scratch
//!   would be large run item by item (`batch`, internal: tract's lazy im2col is batch-1 only).
//! - [`widen`]: the float32-scale form of float16 Q/DQ that tract needs.
//!
//! Inputs are tract [`Tensor`]s, so a caller converts its own tensors once (the runtime
//! from its `ndarray` views, calibration from its samples).

mod batch;
pub mod check;
mod choice;
mod codec;
mod contain;
mod error;
pub mod files;
mod graph;
pub mod infer;
mod memory;
pub mod model;
pub mod offload;
pub mod onnxruntime;
mod plan;
pub mod widen;

pub use error::{Error, Result};
pub use infer::{CpuModel, EngineChoice, ShapeSignature, engine_choice, set_engine_choice};
pub use model::{DType, Dim, Model, TensorInfo, WeightStorage, write_atomic};
pub use tract_onnx::pb;
pub use tract_onnx::prelude::{Datum, Tensor};

/// The crate's one reader of environment variables (`TRT_CALIB_ENGINE`, `ORT_DYLIB_PATH`): the
/// value, when set and not empty, logged at debug level.
#[allow(clippy::disallowed_methods)]
pub(crate) fn env(name: &str) -> Option<std::ffi::OsString> {
    let value = std::env::var_os(name).filter(|v| !v.is_empty());
    log::debug!("{name}={value:?}");
    value
}
