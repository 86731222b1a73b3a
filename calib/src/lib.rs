//! Streaming, deterministic INT8 calibration on the CPU, and Q/DQ insertion that TensorRT fuses.
//!
//! TensorRT 11 and TensorRT-RTX support INT8 only as explicit quantization (QuantizeLinear /
//! DequantizeLinear in the network) and TensorRT 10 accepts it too. This crate computes the
//! scales itself, per input by name, and writes the Q/DQ into the ONNX, so nobody writes a
//! TensorRT calibrator again.
//!
//! # Example
//!
//! [`Job`] runs the whole recipe (fold, calibrate, choose and tune, insert Q/DQ, report), as
//! `trt-calib quantize` and `trt-build` do; its documentation has an example that runs. The
//! pieces it is made of can be used alone:
//!
//! ```no_run
//! use calib::{Calibrator, Method, Model, Prepared, Profile, ShapeRange, Source, report};
//!
//! let model = Model::load("decoder.onnx")?;
//! // The form Q/DQ goes into (opset 13), made once and used by every step.
//! let prepared = Prepared::new(&model);
//! let profile = Profile::new().input("x", ShapeRange::new([1, 3, 64, 64], [4, 3, 128, 128], [8, 3, 256, 256]));
//! let (data, held_out) = Source::Path("samples/".into()).split(5)?;
//! let calibration = Calibrator::prepared(&prepared).method(Method::Entropy).profile(profile).exclude("head").run(&data)?;
//! let int8 = calibration.apply(&prepared)?;
//! int8.save("decoder.int8.onnx", calib::WeightStorage::Auto)?;
//! println!("{}", report::compare(&model, &int8, &held_out)?.table());
//! # Ok::<(), calib::Error>(())
//! ```

//! # Pieces
//!
//! - [`model`], [`check`], [`infer`]: re-exported from `trt-cpu` (ONNX read/write and checks,
//!   CPU inference), which the runtime's CPU fallback shares.
//! - [`opset`]: opset 11/12 raised to 13 for per-channel Q/DQ; [`fold`]: `If` nodes decided by
//!   the declared shapes (or by constant inputs) replaced by their branch.
//! - [`job`]: the recipe; [`prepared`]: the model form Q/DQ goes into.
//! - [`tune`]: [`Method::Auto`]'s choice and accuracy targets (sensitive nodes kept in float).
//! - [`data`]: samples (one tensor per input) from `<sample>/<input>.npy` directories, `.npz`
//!   files or code; every sample is checked (names, element types, ranks, fixed dims, profile
//!   ranges, NaN/Inf) before use, with errors naming sample, input, dimension and range.
//! - [`observer`]: minmax, percentile, entropy (TensorRT's KL method) and MSE on streaming
//!   statistics whose memory is bounded by tensors × bins, never by the number of samples.
//! - [`calibrate`]: runs the FP32 model with tract on every core, one pass over the samples
//!   (each activation observed as it is made, histograms whose power-of-two range widens
//!   exactly), so samples of **any shape** — all declared profiles, not just one OPT shape —
//!   feed the same statistics, and the result does not depend on sample order or thread
//!   count. Results persist as JSON with a fingerprint of
//!   model, data and options. A warning flags data that does not cover the profiles.
//! - [`qdq`]: Q/DQ placement following TensorRT's rules (documented there) and the rewrite.
//! - [`report`]: FP32 vs Q/DQ (INT8 simulated in tract) per output: max/mean absolute error,
//!   cosine, SNR, PSNR, top-1 agreement for class scores.
//!
//! The `trt-calib` crate is the command line (`inspect`, `quantize`) over this library.
//!
//! # Determinism
//!
//! Statistics merge with `max` and integer histogram sums, so the same model, data and options
//! give byte-identical scales and a byte-identical Q/DQ ONNX on every run and thread count.
//!
//! # FP16
//!
//! Strongly typed TensorRT (11, RTX) runs every float op in the precision the ONNX says;
//! [`fp16::convert`] turns the remaining float graph into FP16 while keeping the model's
//! input and output types (ModelOpt's default). Compare the converted model in the report to
//! measure the model as it will be built.

pub mod calibrate;
pub use trt_cpu::check;
pub mod data;
mod error;
mod fingerprint;
pub mod fold;
pub mod fp16;
pub mod job;
pub mod metric;
pub use trt_cpu::infer;
pub use trt_cpu::model;
mod npy;
pub use npy::MAX_ARRAY_BYTES;
pub mod observer;
pub mod opset;
pub mod prepared;
pub mod profile;
pub mod qdq;
pub mod report;
pub mod tune;

pub use calibrate::{Calibration, Calibrator, Progress};
pub use data::{HostTensor, Sample, Source, TensorData};
pub use error::{Error, Result};
pub use job::{Job, Quantized};
pub use observer::Method;
pub use prepared::Prepared;
pub use profile::{Profile, ShapeRange};
pub use qdq::{Exclusions, Placement};
pub use report::Report;
pub use trt_cpu::CpuModel;
pub use trt_cpu::{DType, Dim, Model, TensorInfo, WeightStorage};
