//! The CPU backend (feature `cpu`): runs the embedded ONNX (Q/DQ for INT8 engines, so the
//! numerics are the INT8-simulated ones the calibration report measured) with `trt-cpu`
//! (tract, or onnxruntime where tract cannot run the model). Each input is copied once, from
//! the caller's view into the engine's tensor.

use half::f16;
use trt_cpu::infer::to_f32;
use trt_cpu::{CpuModel, Model, Tensor};
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
        let mut tensors = Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            let tensor = match t {
                TensorRef::F32(a) => engine_tensor(a),
                TensorRef::F16(a) => engine_tensor(a),
                TensorRef::F64(a) => engine_tensor(a),
                TensorRef::I8(a) => engine_tensor(a),
                TensorRef::U8(a) => engine_tensor(a),
                TensorRef::I32(a) => engine_tensor(a),
                TensorRef::I64(a) => engine_tensor(a),
            }
            .map_err(cpu_error)?;
            tensors.push((*name, tensor));
        }
        let values = self.model.run("call", tensors).map_err(cpu_error)?;
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

/// The engine's tensor of a view: one copy (from the view's memory when it is contiguous,
/// else element by element in logical order).
fn engine_tensor<T: trt_cpu::Datum + Copy>(
    a: &ndarray::ArrayViewD<'_, T>,
) -> std::result::Result<Tensor, String> {
    match a.as_slice() {
        Some(values) => Tensor::from_shape(a.shape(), values).map_err(|e| e.to_string()),
        None => {
            let values: Vec<T> = a.iter().copied().collect();
            Tensor::from_shape(a.shape(), &values).map_err(|e| e.to_string())
        }
    }
}
