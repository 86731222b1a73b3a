//! Streaming, deterministic INT8 calibration on the CPU, and Q/DQ insertion that TensorRT fuses.

pub mod calibrate;
pub mod data;
mod error;
pub mod infer;
pub mod model;
pub mod observer;
pub mod profile;
pub mod qdq;
pub mod report;
pub mod synth;

pub use calibrate::{Calibration, Calibrator, Progress};
pub use data::{HostTensor, Sample, Source, TensorData};
pub use error::{Error, Result};
pub use infer::CpuModel;
pub use model::{Dim, ElemType, Model, TensorInfo, WeightStorage};
pub use observer::Method;
pub use profile::{Profile, ShapeRange};
pub use qdq::{Exclusions, Placement};
pub use report::Report;
