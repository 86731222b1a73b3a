//! CPU inference with `tract`: runs a model (FP32 or Q/DQ-simulated) on samples, optionally
//! exposing intermediate tensors as extra outputs.
//!
//! One plan keeps the dynamic dimensions symbolic and serves every shape. Plans specialised to
//! concrete input shapes run about twice as fast (measured on a 64-channel conv stack), so a
//! bounded number of them is cached per shape signature: either the first shapes seen
//! ([`CpuModel::new`], up to [`DEFAULT_CONCRETE_PLANS`]), or exactly a given set
//! ([`CpuModel::specialize`], which makes the choice independent of call order).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tract_onnx::prelude::*;

use crate::data::Sample;
use crate::error::{Error, Result};
use crate::model::{ElemType, Model, TensorInfo};

type Plan = Arc<TypedRunnableModel>;

/// Concrete-shape plans [`CpuModel::new`] caches lazily.
pub const DEFAULT_CONCRETE_PLANS: usize = 16;

/// Input shapes of one call, in input order.
pub type ShapeSignature = Vec<Vec<usize>>;

/// A model prepared for CPU inference.
#[derive(Debug)]
pub struct CpuModel {
    template: InferenceModel,
    symbolic: OnceLock<std::result::Result<Plan, String>>,
    concrete: Mutex<HashMap<ShapeSignature, Plan>>,
    lazy_limit: usize,
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
        // tract's Q/DQ take float32 scales; FP16 models get the equivalent float32 form.
        let widened = crate::fp16::widen_qdq_for_tract(model);
        let proto = widened.as_ref().unwrap_or(model).proto();
        let mut template = tract_onnx::onnx()
            .model_for_proto_model(proto)
            .map_err(|e| Error::inference(ctx("loading into tract"), e))?;
        template
            .select_outputs_by_name(&outputs)
            .map_err(|e| Error::inference(ctx("selecting outputs"), e))?;
        // Type-check now so that a model tract cannot run fails here, naming it.
        template
            .clone()
            .into_typed()
            .map_err(|e| Error::inference(ctx("analysing"), e))?;
        Ok(CpuModel {
            template,
            symbolic: OnceLock::new(),
            concrete: Mutex::default(),
            lazy_limit: DEFAULT_CONCRETE_PLANS,
            name,
            inputs,
            outputs,
        })
    }

    /// Builds concrete plans for exactly these shape signatures and no others, so which plan
    /// serves a call never depends on call order (calibration uses this for determinism).
    /// Shapes tract cannot specialise keep the symbolic plan.
    pub fn specialize(&mut self, signatures: &[ShapeSignature]) {
        self.lazy_limit = 0;
        let mut plans = HashMap::new();
        for sig in signatures {
            if let Ok(plan) = self.concrete_plan(sig) {
                plans.insert(sig.clone(), plan);
            }
        }
        self.concrete = Mutex::new(plans);
    }

    fn concrete_plan(&self, sig: &ShapeSignature) -> TractResult<Plan> {
        let mut m = self.template.clone();
        for (i, (shape, info)) in sig.iter().zip(&self.inputs).enumerate() {
            let dt = match info.elem_type {
                ElemType::F32 => f32::datum_type(),
                ElemType::F16 => f16::datum_type(),
                ElemType::F64 => f64::datum_type(),
                ElemType::I8 => i8::datum_type(),
                ElemType::U8 => u8::datum_type(),
                ElemType::I16 => i16::datum_type(),
                ElemType::U16 => u16::datum_type(),
                ElemType::I32 => i32::datum_type(),
                ElemType::U32 => u32::datum_type(),
                ElemType::I64 => i64::datum_type(),
                ElemType::U64 => u64::datum_type(),
                ElemType::Bool => bool::datum_type(),
                ElemType::Bf16 => {
                    return Err(TractError::msg("bfloat16 inputs keep the symbolic plan"));
                }
            };
            m.set_input_fact(i, InferenceFact::dt_shape(dt, shape.clone()))?;
        }
        m.into_optimized()?.into_runnable()
    }

    fn plan_for(&self, sig: &ShapeSignature) -> Result<Plan> {
        let mut cache = self.concrete.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(sig) {
            return Ok(p.clone());
        }
        if cache.len() < self.lazy_limit
            && let Ok(p) = self.concrete_plan(sig)
        {
            cache.insert(sig.clone(), p.clone());
            return Ok(p);
        }
        drop(cache);
        self.symbolic
            .get_or_init(|| {
                let plan = self
                    .template
                    .clone()
                    .into_optimized()
                    .and_then(|m| m.into_runnable());
                plan.map_err(|e| format!("{e:#}"))
            })
            .clone()
            .map_err(|e| {
                Error::inference(format!("{}: optimising the symbolic plan", self.name), e)
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

    /// The shape signature of a sample (its input shapes in input order).
    pub fn signature(&self, sample: &Sample) -> ShapeSignature {
        self.inputs
            .iter()
            .map(|i| {
                sample
                    .get(&i.name)
                    .map(|t| t.shape().to_vec())
                    .unwrap_or_default()
            })
            .collect()
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
        let plan = self.plan_for(&self.signature(sample))?;
        let out = plan
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
