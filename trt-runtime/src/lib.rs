//! Load TensorRT engines embedded by `trt-build`, prove they match the bindings generated for
//! them, and run them with every call's shapes validated against the optimization profiles.
//!
//! # Usage
//!
//! ```ignore
//! // src/main.rs of an application whose build.rs declares `seed_decoder` with trt-build.
//! trt_runtime::include_engine!("seed_decoder");
//!
//! fn main() -> trt_runtime::Result<()> {
//!     let model = seed_decoder::load()?;             // TensorRT, or the CPU fallback
//!     println!("backend: {}", model.session().backend());
//!     let out = model.run(&seed_decoder::Inputs { y_hat: y.view(), q: q.view(), dummy_input: d.view() })?;
//!     println!("x_hat: {:?}", out.x_hat.shape());
//!     Ok(())
//! }
//! ```
//!
//! # Loading
//!
//! [`Session::new`] checks the embedded bytes against the manifest's SHA-256, opens TensorRT
//! through `tensorrt-sys`, opens CUDA device 0 ([`Device`], through `cudarc`), asks
//! TensorRT-RTX's engine check whether the engine can run there (an unsupported GPU, an old
//! driver or too little memory is an [`ErrorCode`] from its reason code, before anything is
//! deserialized), deserializes the engine and compares its I/O tensors (names, modes, element types, dims) and every profile's
//! min/opt/max with the manifest; any difference is an [`ErrorCode::ManifestMismatch`] that
//! lists each one.
//!
//! # Backends
//!
//! [`Backend::Auto`] uses TensorRT where a supported GPU and TensorRT exist and otherwise (with
//! the `cpu` feature) runs the embedded Q/DQ ONNX on the CPU with tract (`trt-cpu`): same API,
//! same validation (the workspace's one validator, `trt_manifest::check_inputs`), INT8-simulated numerics. The choice is logged once and queryable with
//! [`Session::backend`] and [`Session::backend_reason`]; [`Backend::TensorRt`] and
//! [`Backend::Cpu`] force one.
//!
//! # Device memory and asynchronous calls
//!
//! [`Session::enqueue`] returns a [`Pending`] call that [`Pending::wait`] synchronises;
//! [`Session::run`] is both in one. [`Session::run_device`] takes [`DeviceTensor`] inputs
//! already in GPU memory (no copy) and leaves the outputs there; [`Session::upload`] and
//! [`Session::download`] move tensors across. These paths need the TensorRT backend.
//! [`Device`] does the same without an engine (allocation, uploads, downloads, copies on a
//! pool of streams); `examples/02-gpu-checks.rs` exercises every such path on a real GPU
//! (results in the README).
//!
//! # Threads
//!
//! [`Session`] is `Send + Sync`. On TensorRT every call takes an execution context and its own
//! CUDA stream from a pool (creating one when all are busy), so concurrent calls run on
//! separate streams; [`Session::run`] enqueues and then synchronises its stream.
//!
//! # Feature flags
//!
//! - `cpu` (default): the CPU fallback backend (tract through `trt-cpu`; one copy of each input).
//! - `cpu-onnxruntime`: the CPU fallback also runs models tract cannot, on onnxruntime
//!   (`ORT_DYLIB_PATH`).
//! - `gpu-tests`: compiles the GPU test suite (`tests/gpu.rs`).
//!
//! # Running the GPU tests
//!
//! On a machine with a GPU the engine's TensorRT flavor supports (TensorRT-RTX: compute
//! capability 8.0, 8.6, 8.9 or 12.x) and TensorRT installed:
//! `cargo test -p trt-runtime --features gpu-tests -- --nocapture`. Elsewhere every GPU test
//! prints why it skipped.

#[cfg(feature = "cpu")]
mod cpu;
mod device;
mod error;
mod gpu;
mod session;
mod tensor;
mod validate;

pub use device::{Device, DeviceTensor};
pub use error::{Error, ErrorCode, Result};
pub use session::{Backend, BackendKind, Pending, Session};
pub use tensor::{Element, Outputs, OwnedTensor, TensorRef};
pub use trt_manifest::DType;
pub use trt_manifest::{Interface, Manifest};
pub use validate::{TensorMeta, check_profile, select_profile};

/// Checks an engine's reported interface against a manifest (what [`Session::new`] does after
/// deserializing), for tools and tests.
///
/// # Errors
///
/// [`ErrorCode::ManifestMismatch`] listing every difference.
pub fn check_interface(manifest: &Manifest, actual: &Interface) -> Result<()> {
    gpu::check_interface(manifest, actual)
}

/// Items generated code refers to (not a stable API for hand-written code).
#[doc(hidden)]
pub mod codegen {
    pub use crate::{Backend, Outputs, Result, Session, TensorRef};
    pub use half::f16;
    pub use ndarray::{ArrayD, ArrayViewD};
}

/// Includes the module `trt-build` generated for model `name` (like `tonic::include_proto!`).
#[macro_export]
macro_rules! include_engine {
    ($name:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $name, ".rs"));
    };
}
