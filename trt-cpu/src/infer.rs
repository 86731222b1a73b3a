//! CPU inference with `tract`: runs a model (FP32 or Q/DQ-simulated) on samples, optionally
//! exposing intermediate tensors as extra outputs.
//!
//! Real models often defeat tract's *symbolic* shape analysis (an FPN Concat over branches whose
//! heights are `8*((H+31)/32)` and `4*max(…)`, a Flatten over a product of symbols, a Squeeze
//! inside an `If`), and exporters leave stale intermediate shape annotations (`value_info`,
//! output dims) that contradict a concrete input shape. So plans are built for one
//! **concrete** input-shape signature, from a graph whose intermediate and output shape
//! annotations were dropped (element types kept): symbolic analysis is never a precondition.
//! Concrete plans are also about twice as fast as symbolic ones (measured on a 64-channel conv
//! stack), and because the plan depends only on the signature, numerics never depend on call
//! order. Plans are cached per signature, at most [`DEFAULT_CONCRETE_PLANS`] at a time and no
//! more than [`PLAN_WEIGHT_BUDGET`] bytes of weights between them (least
//! recently used evicted), which bounds memory: optimised plans hold packed copies of weights.
//!
//! When [`CpuModel::prepare`] is given more shapes than that cache holds (a transformer's
//! sequence lengths, a text recognizer's widths), **one symbolic plan** serves them all if
//! tract's symbolic analysis gets through the graph ([`CpuModel::shares_one_plan`]): one
//! packed copy of the weights, built once, and tract's graph is moved into it rather than kept
//! next to it (`minilm`, 11 lengths: 394 → 244 MiB and 2.1 → 0.9 s with identical
//! thresholds; BENCHMARKS.md). A shape that contradicts the graph's dimension names (one name,
//! two extents) gets a concrete plan, and a graph symbolic analysis cannot take keeps one plan
//! per shape, as above.
//!
//! A model whose weights were offloaded ([`Model::offload_weights`]) is read by tract straight
//! from the offload file (ONNX external data), so the process never holds tract's copy and the
//! protobuf's at once.
//!
//! When tract cannot run a model even with concrete shapes, [`CpuModel`] moves it to
//! onnxruntime ([`crate::onnxruntime`]) if that library is available, and logs why (once per model).
//! The choice is made from the set of shape signatures a caller declares with
//! [`CpuModel::prepare`], so it does not depend on call order. [`set_engine_choice`] (the
//! CLI's `--engine`) or `TRT_CALIB_ENGINE=tract|onnxruntime|auto` forces one engine, to compare
//! them (`BENCHMARKS.md`) or to rule one out.
//!
//! Intermediate tensors a caller asks for are *streamed* on tract ([`CpuModel::run_observing`],
//! `crate::plan`): each goes to the caller as soon as it is made and is freed when no later
//! node needs it, so observing a hundred activations costs no more memory than inference.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub use crate::choice::{EngineChoice, engine_choice, set_engine_choice};
use crate::contain::contained;
pub use crate::contain::inside_engine;
use crate::graph::{datum_type, parse, without_shape_annotations};
use crate::memory::return_freed_memory;
pub use crate::memory::unmap_large_buffers_on_free;
use crate::plan::{RunFailure, StreamingPlan, plan_error};

use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::model::{Model, TensorInfo};

type Plan = Arc<StreamingPlan>;
type PlanSlot = Arc<OnceLock<std::result::Result<Plan, String>>>;

/// Concrete-shape plans kept at once (least recently used evicted), for small models.
pub const DEFAULT_CONCRETE_PLANS: usize = 8;

/// Bytes of weights the cached plans may hold together: each optimised plan keeps its own
/// packed copy, so big models keep fewer plans (at least two). Calibration reads each sample
/// once, in shape order, so it needs few plans; evaluations over the same held-out samples
/// (Auto, the accuracy target) rebuild more (`dddd_crnn`, 54 MB of weights, 11 widths: 256 MiB
/// → 64 MiB took its peak from 441 to 334 MiB and Auto from 10.8 to 12.7 s).
pub const PLAN_WEIGHT_BUDGET: usize = 64 << 20;

/// Input shapes of one call, in input order.
pub type ShapeSignature = Vec<Vec<usize>>;

/// Which engine runs a model, and why when it is not tract.
#[derive(Debug)]
enum Engine {
    Tract,
    Ort(crate::onnxruntime::OrtModel),
}

#[derive(Debug, Default)]
struct PlanCache {
    slots: HashMap<ShapeSignature, (PlanSlot, u64)>,
    clock: u64,
}

/// A model prepared for CPU inference.
#[derive(Debug)]
pub struct CpuModel {
    /// tract's graph, dropped when the model moves to onnxruntime or one shared plan serves
    /// every shape (then parsed again from `fallback` if a concrete plan is ever needed).
    template: Mutex<Option<InferenceModel>>,
    /// The model for onnxruntime, kept only until the engine is chosen (it shares the
    /// caller's weights: [`Model`] clones are copy-on-write), or for as long as the shared
    /// plan is used (to parse the template again).
    fallback: Mutex<Option<Model>>,
    engine: OnceLock<Engine>,
    plans: Mutex<PlanCache>,
    /// One symbolic plan for every shape, when [`CpuModel::prepare`] chose it.
    shared: OnceLock<Plan>,
    limit: usize,
    /// Return freed memory to the system after every call (batch work such as calibration).
    trim_after_calls: bool,
    name: String,
    inputs: Vec<TensorInfo>,
    outputs: Vec<String>,
    /// How many of `outputs` are the graph's own (the rest are intermediate tensors).
    graph_outputs: usize,
}

impl CpuModel {
    /// Prepares `model`; its outputs are the graph outputs followed by `extra_outputs`
    /// (intermediate tensors by name). No shape analysis runs here: plans are built per
    /// concrete input shapes on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Inference`] when tract cannot load the graph (an operator it does not know),
    /// naming the model.
    pub fn new(model: &Model, extra_outputs: &[String]) -> Result<CpuModel> {
        let graph = model.outputs()?.into_iter().map(|o| o.name).collect();
        CpuModel::with_outputs(model, graph, extra_outputs)
    }

    /// Prepares `model` to compute only `tensors` (intermediate tensors or graph outputs, by
    /// name, in this order): the graph outputs are not computed unless listed, and the nodes
    /// none of them depends on, with their weights, are not loaded. For observing
    /// activations ([`CpuModel::run_observing`]), as calibration does.
    ///
    /// # Errors
    ///
    /// As [`CpuModel::new`].
    pub fn observing(model: &Model, tensors: &[String]) -> Result<CpuModel> {
        CpuModel::with_outputs(model, Vec::new(), tensors)
    }

    /// `graph` outputs, then each of `more` not among them.
    fn with_outputs(model: &Model, mut outputs: Vec<String>, more: &[String]) -> Result<CpuModel> {
        let graph_outputs = outputs.len();
        for t in more {
            if !outputs.contains(t) {
                outputs.push(t.clone());
            }
        }
        let name = model.name().to_string();
        let inputs = model.inputs()?;
        crate::check::check(model)?;
        // tract's Q/DQ take float32 scales; FP16 models get the equivalent float32 form.
        let widened = crate::widen::widen_qdq_for_tract(model);
        let model = widened.unwrap_or_else(|| model.clone());
        let template = parse(&model, &outputs)?;
        let weights = model.weight_bytes();
        let limit = (PLAN_WEIGHT_BUDGET / weights.max(1)).clamp(2, DEFAULT_CONCRETE_PLANS);
        Ok(CpuModel {
            template: Mutex::new(Some(template)),
            fallback: Mutex::new(Some(model)),
            engine: OnceLock::new(),
            plans: Mutex::default(),
            shared: OnceLock::new(),
            limit,
            trim_after_calls: false,
            name,
            inputs,
            outputs,
            graph_outputs,
        })
    }

    /// Keeps at most `limit` (≥ 1) concrete plans at once.
    pub fn plan_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    /// Returns freed memory to the system after every call (off by default): for batch work
    /// over many samples, where it bounds peak memory at a small cost per call; a serving
    /// runtime leaves it off.
    pub fn release_memory_after_calls(&mut self, on: bool) {
        self.trim_after_calls = on;
    }

    fn concrete_plan(&self, sig: &ShapeSignature) -> TractResult<Plan> {
        let facts = sig
            .iter()
            .zip(&self.inputs)
            .map(|(shape, info)| Ok(InferenceFact::dt_shape(datum_type(info)?, shape.clone())))
            .collect::<TractResult<Vec<_>>>()?;
        self.plan_with_facts(self.template()?, facts, true)
    }

    /// One plan for every shape the inputs' dynamic dimensions can take (tract's symbolic
    /// analysis; a dimension named alike on several inputs is one symbol).
    ///
    /// tract's graph is moved into the plan, not copied: the weights it no longer needs once
    /// packed are freed as optimisation goes, so building costs no second copy of them.
    fn shared_plan(&self) -> TractResult<Plan> {
        let taken = self
            .template
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let template = match taken {
            Some(t) => t,
            None => self.template()?,
        };
        let facts = crate::graph::symbolic_facts(&self.inputs, &template.symbols)?;
        self.plan_with_facts(template, facts, false)
    }

    fn plan_with_facts(
        &self,
        mut m: InferenceModel,
        facts: Vec<InferenceFact>,
        concrete: bool,
    ) -> TractResult<Plan> {
        for (i, fact) in facts.into_iter().enumerate() {
            m.set_input_fact(i, fact)?;
        }
        let mut typed = m.into_typed()?.into_decluttered()?;
        if concrete {
            let split = crate::batch::split_batched_convs(&mut typed)?;
            if split > 0 {
                log::debug!("{}: {split} convolution(s) run item by item", self.name);
            }
        }
        typed.optimize()?;
        let plan = StreamingPlan::new(typed, self.graph_outputs).map(Arc::new);
        // Optimising a plan allocates and frees many large temporaries (weights packed and
        // repacked); hand the freed memory back to the system rather than let it count as
        // this process's until exit.
        return_freed_memory();
        plan
    }

    /// A copy of tract's graph (weights shared), parsed again when the shared plan let it go.
    fn template(&self) -> TractResult<InferenceModel> {
        let mut template = self.template.lock().unwrap_or_else(|e| e.into_inner());
        if template.is_none() {
            let source = self.fallback.lock().unwrap_or_else(|e| e.into_inner());
            let model = source
                .as_ref()
                .ok_or_else(|| TractError::msg("the model runs on onnxruntime"))?;
            *template =
                Some(parse(model, &self.outputs).map_err(|e| TractError::msg(e.to_string()))?);
        }
        template
            .clone()
            .ok_or_else(|| TractError::msg("the model runs on onnxruntime"))
    }

    /// The input shapes agree with the dimension names the shared plan was built with (one
    /// name, one extent across inputs): tract's symbolic plan would refuse them otherwise.
    fn fits_shared(&self, sig: &ShapeSignature) -> bool {
        crate::graph::fits_symbols(&self.inputs, sig)
    }

    fn plan_for(&self, sig: &ShapeSignature) -> Result<Plan> {
        if let Some(plan) = self.shared.get()
            && self.fits_shared(sig)
        {
            return Ok(plan.clone());
        }
        let slot = {
            let mut cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
            cache.clock += 1;
            let now = cache.clock;
            if let Some((slot, used)) = cache.slots.get_mut(sig) {
                *used = now;
                slot.clone()
            } else {
                while cache.slots.len() >= self.limit {
                    let oldest = cache
                        .slots
                        .iter()
                        .min_by_key(|(_, (_, used))| *used)
                        .map(|(k, _)| k.clone());
                    match oldest {
                        Some(k) => cache.slots.remove(&k),
                        None => break,
                    };
                }
                let slot = PlanSlot::default();
                cache.slots.insert(sig.clone(), (slot.clone(), now));
                slot
            }
        };
        // Built outside the lock; threads asking for the same shapes wait for one build.
        slot.get_or_init(|| match contained(|| self.concrete_plan(sig)) {
            Ok(Ok(plan)) => Ok(plan),
            Ok(Err(e)) => Err(e
                .chain()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")),
            Err(panic) => Err(format!("tract panicked while planning: {panic}")),
        })
        .clone()
        .map_err(|e| plan_error(&self.name, &self.inputs, sig, &e))
    }

    /// Names of the outputs, in the order [`CpuModel::run`] returns them.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// The model's inputs.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// The shape signature of a call's named inputs (their shapes in model-input order; an
    /// input not given has an empty shape).
    pub fn signature<'a>(
        &self,
        inputs: impl IntoIterator<Item = (&'a str, &'a [usize])> + Clone,
    ) -> ShapeSignature {
        self.inputs
            .iter()
            .map(|i| {
                inputs
                    .clone()
                    .into_iter()
                    .find(|(n, _)| *n == i.name)
                    .map(|(_, s)| s.to_vec())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Chooses the engine for calls of these shape signatures: tract when it can build a plan
    /// for every one of them, else onnxruntime (when available), with the reason logged. Does
    /// nothing once the engine is chosen (the first [`CpuModel::run`] chooses it for its own
    /// shapes otherwise).
    ///
    /// # Errors
    ///
    /// [`Error::Inference`] naming the node tract cannot run, when onnxruntime is not
    /// available either (the message says why) or cannot load the model.
    pub fn prepare(&self, signatures: &[ShapeSignature]) -> Result<()> {
        if self.engine.get().is_some() {
            return Ok(());
        }
        let choice = engine_choice()?;
        if choice == EngineChoice::OnnxRuntime {
            return self.use_onnxruntime("onnxruntime was requested");
        }
        let mut sorted: Vec<&ShapeSignature> = signatures.iter().collect();
        sorted.sort();
        sorted.dedup();
        // More shapes than cached plans: one plan for all of them (one packed copy of the
        // weights, built once), when tract's symbolic analysis gets through the graph.
        if sorted.len() > self.limit
            && sorted.iter().all(|s| self.fits_shared(s))
            && self.shared.get().is_none()
        {
            match contained(|| self.shared_plan()) {
                Ok(Ok(plan)) => {
                    let _ = self.shared.set(plan);
                    let _ = self.engine.set(Engine::Tract);
                    self.plans
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .slots
                        .clear();
                    return_freed_memory();
                    log::debug!("{}: one plan for {} input shapes", self.name, sorted.len());
                    return Ok(());
                }
                Ok(Err(e)) => log::debug!(
                    "{}: one plan per input shape (symbolic analysis: {e})",
                    self.name
                ),
                Err(p) => log::debug!(
                    "{}: one plan per input shape (symbolic analysis panicked: {p})",
                    self.name
                ),
            }
        }
        let mut failure = None;
        for sig in sorted {
            if let Err(e) = self.plan_for(sig) {
                failure = Some(e);
                break;
            }
        }
        let Some(failure) = failure else {
            let _ = self.engine.set(Engine::Tract);
            self.fallback
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            return Ok(());
        };
        if choice == EngineChoice::Tract || crate::onnxruntime::available().is_err() {
            return Err(failure);
        }
        self.use_onnxruntime(&failure.to_string())
    }

    /// Moves the model to onnxruntime before any run (so that two models compared with each
    /// other run on the same engine), logging `reason`.
    ///
    /// # Errors
    ///
    /// [`Error::Inference`] when onnxruntime is not available or cannot load the model, or
    /// when the engine was already chosen as tract.
    pub fn use_onnxruntime(&self, reason: &str) -> Result<()> {
        if let Some(Engine::Ort(_)) = self.engine.get() {
            return Ok(());
        }
        let context = || format!("{}: onnxruntime ({reason})", self.name);
        crate::onnxruntime::available().map_err(|e| Error::inference(context(), e))?;
        let model = self
            .fallback
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Error::inference(context(), "the engine was already chosen"))?;
        // Few copies of the weights at a time: tract's graph goes before onnxruntime loads.
        self.template
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // onnxruntime takes the model as bytes: offloaded weights come back first.
        let model = model
            .with_weights()
            .map_err(|e| Error::inference(context(), e))?;
        let proto = without_shape_annotations(model.proto());
        drop(model);
        let ort = crate::onnxruntime::OrtModel::new(proto, &self.outputs)
            .map_err(|e| Error::inference(context(), e))?;
        log::warn!("{}: running on onnxruntime because {reason}", self.name);
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slots
            .clear();
        let _ = self.engine.set(Engine::Ort(ort));
        Ok(())
    }

    /// Whether tract can build a plan for these input shapes (the plan is kept); chooses no
    /// engine.
    pub fn tract_runs(&self, signature: &ShapeSignature) -> Result<()> {
        self.plan_for(signature).map(|_| ())
    }

    /// Whether one (symbolic) plan serves every input shape [`CpuModel::prepare`] was given:
    /// chosen when there are more shapes than cached concrete plans and tract's symbolic
    /// analysis gets through the graph.
    pub fn shares_one_plan(&self) -> bool {
        self.shared.get().is_some()
    }

    /// The engine that runs this model: `"tract"`, `"onnxruntime"`, or `None` before
    /// [`CpuModel::prepare`] or the first run chose one.
    pub fn engine_name(&self) -> Option<&'static str> {
        self.engine.get().map(|e| match e {
            Engine::Tract => "tract",
            Engine::Ort(_) => "onnxruntime",
        })
    }

    /// Runs one call: `inputs` by name (any order; extra names are ignored), converted by
    /// the caller once into tract tensors and moved here. Returns every output, in
    /// [`CpuModel::output_names`] order. `call` names the call in errors (a sample's id).
    ///
    /// Intermediate outputs are kept until the call ends; to look at many large ones, use
    /// [`CpuModel::run_observing`], which hands each over as it is made.
    ///
    /// # Errors
    ///
    /// [`Error::Input`] for a missing input, [`Error::Inference`] when the engine fails.
    pub fn run(&self, call: &str, inputs: Vec<(&str, Tensor)>) -> Result<Vec<Tensor>> {
        let mut out: Vec<Option<Tensor>> = vec![None; self.outputs.len()];
        let kept = self.execute(call, inputs, &mut |i, t| {
            out[i] = Some(t.clone());
            Ok(())
        })?;
        for (served, t) in kept {
            if let Some((&last, rest)) = served.split_last() {
                for &i in rest {
                    out[i] = Some(t.clone());
                }
                out[last] = Some(t);
            }
        }
        self.all_made(call, out.iter().map(Option::is_some))?;
        Ok(out.into_iter().flatten().collect())
    }

    /// Runs one call like [`CpuModel::run`], but hands every output to `observe` (with its
    /// index in [`CpuModel::output_names`]) instead of returning them: with tract, each
    /// intermediate tensor as soon as the node that makes it finishes, after which it is
    /// freed when no later node needs it, so a call holds no more memory than plain
    /// inference. Every output is observed exactly once.
    ///
    /// # Errors
    ///
    /// As [`CpuModel::run`], and the first error `observe` returns (the call stops there).
    pub fn run_observing(
        &self,
        call: &str,
        inputs: Vec<(&str, Tensor)>,
        observe: &mut dyn FnMut(usize, &Tensor) -> Result<()>,
    ) -> Result<()> {
        let mut seen = vec![false; self.outputs.len()];
        let kept = self.execute(call, inputs, &mut |i, t| {
            seen[i] = true;
            observe(i, t)
        })?;
        for (served, t) in kept {
            for i in served {
                seen[i] = true;
                observe(i, &t)?;
            }
        }
        self.all_made(call, seen.into_iter())
    }

    /// An error naming the first output a call did not make (never expected: a guard
    /// against a plan that skipped a tensor).
    fn all_made(&self, call: &str, made: impl Iterator<Item = bool>) -> Result<()> {
        match made.zip(&self.outputs).find(|(m, _)| !m) {
            None => Ok(()),
            Some((_, name)) => Err(Error::inference(
                format!("{}: {call}", self.name),
                format!("tensor '{name}' was not computed"),
            )),
        }
    }

    /// Runs one call on the chosen engine: streamed outputs go to `observe`, the others are
    /// returned with the output indices each serves.
    fn execute(
        &self,
        call: &str,
        inputs: Vec<(&str, Tensor)>,
        observe: &mut dyn FnMut(usize, &Tensor) -> Result<()>,
    ) -> Result<Vec<(Vec<usize>, Tensor)>> {
        let mut inputs = inputs;
        let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            let at = inputs
                .iter()
                .position(|(n, _)| *n == input.name)
                .ok_or_else(|| Error::Input {
                    call: call.to_string(),
                    input: input.name.clone(),
                    message: "missing".into(),
                })?;
            tensors.push((input.name.clone(), inputs.swap_remove(at).1));
        }
        let sig: ShapeSignature = tensors.iter().map(|(_, t)| t.shape().to_vec()).collect();
        self.prepare(std::slice::from_ref(&sig))?;
        let fail = |e: String| Error::inference(format!("{}: {call}", self.name), e);
        let out = match self.engine.get() {
            Some(Engine::Ort(ort)) => ort
                .run(tensors)
                .map_err(fail)?
                .into_iter()
                .enumerate()
                .map(|(i, t)| (vec![i], t))
                .collect(),
            _ => {
                let plan = self.plan_for(&sig)?;
                let values: TVec<TValue> =
                    tensors.into_iter().map(|(_, t)| t.into_tvalue()).collect();
                match contained(|| plan.run(values, observe))
                    .map_err(|p| fail(format!("tract panicked while running: {p}")))?
                {
                    Ok(kept) => kept,
                    Err(RunFailure::Observer(e)) => return Err(e),
                    Err(RunFailure::Engine(e)) => return Err(fail(format!("{e:#}"))),
                }
            }
        };
        // A call frees every intermediate activation it made (each thread's arena keeps
        // them otherwise).
        if self.trim_after_calls {
            return_freed_memory();
        }
        Ok(out)
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
