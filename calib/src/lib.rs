//! Streaming, deterministic INT8 calibration on the CPU, and Q/DQ insertion that TensorRT fuses.
//!
//! (Crate documentation is completed below as modules land.)

pub mod data;
mod error;
pub mod model;
pub mod profile;
pub mod synth;

pub use data::{HostTensor, Sample, Source, TensorData};
pub use error::{Error, Result};
pub use model::{Dim, ElemType, Model, TensorInfo, WeightStorage};
pub use profile::{Profile, ShapeRange};
