//! CPU inference with `tract`: runs a model (FP32 or Q/DQ-simulated) on samples, optionally
//! exposing intermediate tensors as extra outputs. Dynamic dimensions stay symbolic, so one
//! plan serves samples of every shape.

use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::data::Sample;
use crate::error::{Error, Result};
use crate::model::{Model, TensorInfo};

type Plan = Arc<TypedRunnableModel>;

/// A model prepared for CPU inference.
#[derive(Debug, Clone)]
pub struct CpuModel {
    plan: Plan,
    name: String,
    inputs: Vec<TensorInfo>,
    outputs: Vec<String>,
}

impl CpuModel {
    /// Prepares `model`; its outputs are the graph outputs followed by `extra_outputs`
    /// (intermediate tensors by name).
    ///
    /// # Errors
    ///
    /// [`Error::Inference`] when tract cannot load or optimise the model, naming the model.
    pub fn new(model: &Model, extra_outputs: &[String]) -> Result<CpuModel> {
        let name = model.name().to_string();
        let inputs = model.inputs()?;
        let mut outputs: Vec<String> = model.outputs()?.into_iter().map(|o| o.name).collect();
        outputs.extend(
            extra_outputs
                .iter()
                .filter(|e| !outputs.contains(e))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let ctx = |step: &str| format!("{name}: {step}");
        let mut inference = tract_onnx::onnx()
            .model_for_proto_model(model.proto())
            .map_err(|e| Error::inference(ctx("loading into tract"), e))?;
        inference
            .select_outputs_by_name(&outputs)
            .map_err(|e| Error::inference(ctx("selecting outputs"), e))?;
        let plan = inference
            .into_optimized()
            .map_err(|e| Error::inference(ctx("optimising"), e))?
            .into_runnable()
            .map_err(|e| Error::inference(ctx("planning"), e))?;
        Ok(CpuModel {
            plan,
            name,
            inputs,
            outputs,
        })
    }

    /// Names of the outputs, in the order [`CpuModel::run`] returns them.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// The model's inputs.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// Runs one sample (inputs by name) and returns every output.
    ///
    /// # Errors
    ///
    /// [`Error::Sample`] for a missing input, [`Error::Inference`] when tract fails.
    pub fn run(&self, sample: &Sample) -> Result<Vec<Tensor>> {
        let mut values = TVec::new();
        for input in &self.inputs {
            let t = sample
                .get(&input.name)
                .ok_or_else(|| Error::sample(sample.id(), Some(&input.name), "missing"))?;
            values.push(t.to_tract().into_tvalue());
        }
        let out = self
            .plan
            .run(values)
            .map_err(|e| Error::inference(format!("{}: sample {}", self.name, sample.id()), e))?;
        Ok(out.into_iter().map(|v| v.into_tensor()).collect())
    }
}

/// Values of a tensor as `f32` (any float or integer type is converted).
///
/// # Errors
///
/// [`Error::Inference`] for types that do not convert.
pub fn to_f32(t: &Tensor) -> Result<Vec<f32>> {
    let t = t
        .cast_to::<f32>()
        .map_err(|e| Error::inference("converting an output to f32", e))?;
    let view = t
        .to_plain_array_view::<f32>()
        .map_err(|e| Error::inference("reading an output", e))?;
    Ok(view.iter().copied().collect())
}
