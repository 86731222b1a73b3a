//! The CPU backend (feature `cpu`): runs the embedded ONNX (Q/DQ for INT8 engines, so the
//! numerics are the INT8-simulated ones the calibration report measured) with tract.

use calib::infer::to_f32;
use calib::{CpuModel, HostTensor, Model, Sample, TensorData};
use half::f16;
use trt_manifest::DType;

use crate::error::{Error, ErrorCode, Result};
use crate::tensor::{Outputs, OwnedTensor, TensorRef};

/// A tract plan of the embedded ONNX.
#[derive(Debug)]
pub(crate) struct CpuBackend {
    model: CpuModel,
    outputs: Vec<(String, DType)>,
}

fn cpu_error(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::Cpu, e.to_string())
}

impl CpuBackend {
    /// Prepares the ONNX; `outputs` are `(name, dtype)` from the manifest.
    pub(crate) fn new(
        name: &str,
        onnx: &[u8],
        outputs: Vec<(String, DType)>,
    ) -> Result<CpuBackend> {
        let model = Model::from_bytes(onnx, name).map_err(cpu_error)?;
        let model = CpuModel::new(&model, &[]).map_err(cpu_error)?;
        Ok(CpuBackend { model, outputs })
    }

    pub(crate) fn run(&self, inputs: &[(&str, TensorRef<'_>)]) -> Result<Outputs> {
        let mut sample = Sample::new("call");
        for (name, t) in inputs {
            let shape = t.shape().to_vec();
            let data = match t {
                TensorRef::F32(a) => TensorData::F32(a.iter().copied().collect()),
                TensorRef::F16(a) => TensorData::F16(a.iter().copied().collect()),
                TensorRef::F64(a) => TensorData::F64(a.iter().copied().collect()),
                TensorRef::I8(a) => TensorData::I8(a.iter().copied().collect()),
                TensorRef::U8(a) => TensorData::U8(a.iter().copied().collect()),
                TensorRef::I32(a) => TensorData::I32(a.iter().copied().collect()),
                TensorRef::I64(a) => TensorData::I64(a.iter().copied().collect()),
            };
            sample = sample.with(*name, HostTensor::new(shape, data));
        }
        let values = self.model.run(&sample).map_err(cpu_error)?;
        let mut out = Vec::new();
        for ((name, dtype), value) in self.outputs.iter().zip(values) {
            let shape = value.shape().to_vec();
            let f = to_f32(&value).map_err(cpu_error)?;
            let tensor = match dtype {
                DType::F32 => {
                    OwnedTensor::F32(ndarray::ArrayD::from_shape_vec(shape, f).map_err(cpu_error)?)
                }
                DType::F16 => OwnedTensor::F16(
                    ndarray::ArrayD::from_shape_vec(
                        shape,
                        f.into_iter().map(f16::from_f32).collect(),
                    )
                    .map_err(cpu_error)?,
                ),
                other => {
                    return Err(Error::new(
                        ErrorCode::Cpu,
                        format!("the CPU backend returns float outputs only, '{name}' is {other}"),
                    ));
                }
            };
            out.push((name.clone(), tensor));
        }
        Ok(Outputs::new(out))
    }
}
