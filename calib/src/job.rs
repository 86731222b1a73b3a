//! The quantization recipe, in one place: fold the `If` nodes the profiles decide, check the
//! held-out samples, calibrate (or reuse a saved calibration), choose [`Method::Auto`]'s
//! method and meet the accuracy target, insert Q/DQ, convert to FP16 when asked and measure
//! the result. `trt-calib quantize` and `trt-build` both run a [`Job`], so the rules live
//! here once:
//!
//! - **Held-out samples** come from an explicit source ([`Job::held_out`], which must hold at
//!   least one sample) or every N-th sample of the data ([`Job::hold_out_every`], default 5;
//!   fewer than N samples hold out nothing). Every held-out sample is loaded and checked
//!   against the model and the profiles **before** anything is computed.
//! - **Tuning** ([`crate::tune`]) runs when the method is Auto or a target is set, and there
//!   are held-out samples; a target without held-out samples is an error, Auto without them
//!   uses the MSE thresholds.
//! - The **report** compares the float model with the model as it will be built (after FP16)
//!   on the held-out samples; without held-out samples there is none.
//!
//! # Example
//!
//! ```
//! use calib::{HostTensor, Job, Method, Sample, Source};
//!
//! // A small convolutional network `x: [N,3,S,S] -> y` and ten samples of one shape.
//! let model = test_support::synth::conv_stack(7, 8, 2);
//! let samples = (0..10)
//!     .map(|i| {
//!         let values = (0..3 * 16 * 16).map(|v| ((v * (i + 3)) % 23) as f32 / 11.0 - 1.0);
//!         Sample::new(format!("s{i}")).with("x", HostTensor::f32(vec![1, 3, 16, 16], values.collect()))
//!     })
//!     .collect();
//! let quantized = Job::new(&model, Source::Memory(samples))
//!     .method(Method::MinMax)
//!     .hold_out_every(5)
//!     .run()?;
//! let report = quantized.report.expect("2 of 10 samples held out");
//! assert_eq!(report.samples, 2);
//! assert!(report.outputs[0].cosine > 0.99);
//! // `quantized.model` is the Q/DQ ONNX: `.save(path, calib::WeightStorage::Auto)` writes it.
//! # Ok::<(), calib::Error>(())
//! ```

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::calibrate::{Calibration, Calibrator, Progress};
use crate::data::Source;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::observer::{DEFAULT_BINS, Method};
use crate::prepared::Prepared;
use crate::profile::Profile;
use crate::qdq::Exclusions;
use crate::report::{self, Report};
use crate::tune::{self, Criterion, Target, TuneOptions, Tuning};

/// Models with at least this many bytes of weights are calibrated with them offloaded to a
/// temporary file ([`Model::offload_weights`]): below it, the copy costs more than it saves.
pub const OFFLOAD_MIN_BYTES: usize = 16 << 20;

/// Initializers of at least this many bytes are the ones offloaded (the rest, shapes and
/// scales, stay in memory where graph rewrites read them).
pub const OFFLOAD_MIN_TENSOR_BYTES: usize = 64 << 10;

type ProgressFn = dyn Fn(Progress) + Send + Sync;
type StepFn = dyn Fn(&str) + Send + Sync;

/// Where held-out samples come from.
#[derive(Debug, Clone)]
enum HeldOut {
    Every(usize),
    Source(Source),
}

/// One quantization: a float model, its data and every option (builder style, like
/// `prost_build::Config`); [`Job::run`] does the whole recipe.
pub struct Job {
    model: Model,
    data: Source,
    held_out: HeldOut,
    method: Method,
    bins: usize,
    profiles: Vec<Profile>,
    exclude: Vec<String>,
    threads: Option<usize>,
    target: Option<Target>,
    criterion: Option<Criterion>,
    max_float_share: f64,
    best_effort: bool,
    fp16: bool,
    calibration_cache: Option<PathBuf>,
    progress: Option<Arc<ProgressFn>>,
    step: Option<Arc<StepFn>>,
    fingerprints: OnceLock<Fingerprints>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("model", &self.model.name())
            .field("data", &self.data.describe())
            .field("held_out", &self.held_out)
            .field("method", &self.method)
            .field("target", &self.target)
            .field("criterion", &self.criterion)
            .field("fp16", &self.fp16)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Fingerprints {
    calibration: String,
    job: String,
}

/// What a [`Job`] made.
#[derive(Debug)]
pub struct Quantized {
    /// The Q/DQ model (FP16 where asked), ready for TensorRT: placeholder dim names cleared.
    pub model: Model,
    /// The calibration applied (after tuning: the chosen method's scales and the nodes kept in
    /// float).
    pub calibration: Calibration,
    /// Whether the calibration was reused from [`Job::calibration_cache`].
    pub reused: bool,
    /// What tuning did, when it ran.
    pub tuning: Option<Tuning>,
    /// FP32 vs the built model on the held-out samples, when there are any.
    pub report: Option<Report>,
    /// What folding replaced (`If` nodes decided by the profiles).
    pub notes: Vec<String>,
    /// Wall time of the whole job.
    pub seconds: f64,
}

impl Quantized {
    /// The method as reports name it: `auto: <chosen>` when Auto chose one.
    pub fn method_name(&self) -> String {
        match &self.tuning {
            Some(t) if self.calibration.method == Method::Auto => format!("auto: {}", t.chosen),
            _ => self.calibration.method.name(),
        }
    }
}

/// `model` with its weights offloaded when it is large enough (see [`OFFLOAD_MIN_BYTES`]);
/// the in-memory copy goes with `model` (moved here, not shadowed and kept).
fn offloaded(model: Model) -> Model {
    if model.weight_bytes() < OFFLOAD_MIN_BYTES {
        return model;
    }
    match model.offload_weights(OFFLOAD_MIN_TENSOR_BYTES) {
        Ok(light) => light,
        Err(e) => {
            log::warn!(
                "{}: the weights stay in memory while calibrating ({e})",
                model.name()
            );
            model
        }
    }
}

impl Job {
    /// A job over `model` (cloning shares its weights) calibrated on `data`, with the defaults:
    /// [`Method::Auto`], every 5th sample held out, no target, no profile (static inputs).
    pub fn new(model: &Model, data: Source) -> Job {
        Job {
            model: model.clone(),
            data,
            held_out: HeldOut::Every(5),
            method: Method::Auto,
            bins: DEFAULT_BINS,
            profiles: Vec::new(),
            exclude: Vec::new(),
            threads: None,
            target: None,
            criterion: None,
            max_float_share: 0.25,
            best_effort: false,
            fp16: false,
            calibration_cache: None,
            progress: None,
            step: None,
            fingerprints: OnceLock::new(),
        }
    }

    /// Sets the observer.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self.fingerprints = OnceLock::new();
        self
    }

    /// Histogram bins (see [`Calibrator::bins`]).
    pub fn bins(mut self, bins: usize) -> Self {
        self.bins = bins;
        self.fingerprints = OnceLock::new();
        self
    }

    /// Sets the optimization profiles; samples must fit one of them.
    pub fn profiles(mut self, profiles: Vec<Profile>) -> Self {
        self.profiles = profiles;
        self.fingerprints = OnceLock::new();
        self
    }

    /// Keeps a node (by name) or an operator type in float.
    pub fn exclude(mut self, name_or_op: &str) -> Self {
        self.exclude.push(name_or_op.to_string());
        self.fingerprints = OnceLock::new();
        self
    }

    /// Worker threads (default: every core). Does not change the result.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Holds out every `n`-th sample of the data for tuning and the report (0: none).
    pub fn hold_out_every(mut self, n: usize) -> Self {
        self.held_out = HeldOut::Every(n);
        self.fingerprints = OnceLock::new();
        self
    }

    /// Held-out samples from their own source (all of the data then calibrates); it must hold
    /// at least one sample.
    pub fn held_out(mut self, source: Source) -> Self {
        self.held_out = HeldOut::Source(source);
        self.fingerprints = OnceLock::new();
        self
    }

    /// An accuracy target on the held-out samples (see [`crate::tune`]).
    pub fn target(mut self, target: Option<Target>) -> Self {
        self.target = target;
        self.fingerprints = OnceLock::new();
        self
    }

    /// What [`Method::Auto`] ranks candidate methods by (default: the target's metric when
    /// there is a target, else the mean SNR over outputs; see [`Criterion`]).
    pub fn criterion(mut self, criterion: Option<Criterion>) -> Self {
        self.criterion = criterion;
        self
    }

    /// Largest share of the quantized nodes the target may keep in float (default 0.25).
    pub fn max_float_share(mut self, share: f64) -> Self {
        self.max_float_share = share;
        self.fingerprints = OnceLock::new();
        self
    }

    /// Keeps the closest result when the target cannot be met instead of failing (default:
    /// an unmet target is an error).
    pub fn best_effort(mut self, best_effort: bool) -> Self {
        self.best_effort = best_effort;
        self.fingerprints = OnceLock::new();
        self
    }

    /// Also converts the remaining float graph to FP16; the report then measures that model.
    pub fn fp16(mut self, fp16: bool) -> Self {
        self.fp16 = fp16;
        self.fingerprints = OnceLock::new();
        self
    }

    /// Reuses (or writes) the calibration at `path` when model, data and options match.
    pub fn calibration_cache(mut self, path: impl Into<PathBuf>) -> Self {
        self.calibration_cache = Some(path.into());
        self
    }

    /// Receives calibration progress after every sample.
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Receives every tuning step (candidate measured, node ranked or kept in float).
    pub fn on_tuning_step(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.step = Some(Arc::new(f));
        self
    }

    /// The model the job quantizes.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Calibration data and held-out samples after the hold-out rule.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] for an explicit held-out source without samples or a hold-out of 1;
    /// the data source's errors.
    pub fn sources(&self) -> Result<(Source, Option<Source>)> {
        match &self.held_out {
            HeldOut::Source(held) => match held.list() {
                Ok(_) => Ok((self.data.clone(), Some(held.clone()))),
                Err(Error::EmptySource { source }) => Err(Error::options(format!(
                    "the held-out source {source} holds no sample: give samples there, or hold out part of the calibration data instead"
                ))),
                Err(e) => Err(e),
            },
            HeldOut::Every(0) => Ok((self.data.clone(), None)),
            HeldOut::Every(n) => {
                let (calibration, held) = self.data.split(*n)?;
                let some = held.list().is_ok_and(|l| !l.is_empty());
                Ok((calibration, some.then_some(held)))
            }
        }
    }

    /// SHA-256 over everything that decides the job's result — model, calibration and
    /// held-out data, method, profiles, exclusions, target, float share, FP16 — as delimited
    /// fields. Reads every data file once; later calls (and [`Job::run`]) reuse it.
    ///
    /// # Errors
    ///
    /// As [`Job::sources`]; [`Error::Io`] for unreadable data files.
    pub fn fingerprint(&self) -> Result<String> {
        Ok(self.fingerprints()?.job.clone())
    }

    /// The part of [`Job::fingerprint`] that decides the calibration statistics alone (model,
    /// calibration data, method, bins, profiles, exclusions): a cache of calibrations can be
    /// keyed by it, so a changed target or held-out set does not calibrate again.
    ///
    /// # Errors
    ///
    /// As [`Job::fingerprint`].
    pub fn calibration_fingerprint(&self) -> Result<String> {
        Ok(self.fingerprints()?.calibration.clone())
    }

    fn fingerprints(&self) -> Result<&Fingerprints> {
        if let Some(f) = self.fingerprints.get() {
            return Ok(f);
        }
        let (data, held) = self.sources()?;
        let mut exclusions = Exclusions::default();
        for e in &self.exclude {
            exclusions.add(&self.model, e);
        }
        let of = |source: &Source| {
            crate::fingerprint::of(
                &self.model,
                self.method,
                self.bins,
                &self.profiles,
                &exclusions,
                source,
            )
        };
        let calibration = of(&data)?;
        let mut h = Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            for part in [name.as_bytes(), value] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
        };
        field("calibration", calibration.as_bytes());
        let held = match &held {
            Some(s) => of(s)?,
            None => String::new(),
        };
        field("held-out", held.as_bytes());
        match &self.target {
            Some(t) => {
                field("target-metric", t.metric_name().as_bytes());
                field("target-threshold", &t.threshold().to_le_bytes());
            }
            None => field("target-metric", b""),
        }
        let criterion = self
            .criterion
            .as_ref()
            .map(Criterion::name)
            .unwrap_or_default();
        field("auto-criterion", criterion.as_bytes());
        field("max-float-share", &self.max_float_share.to_le_bytes());
        field("best-effort", &[u8::from(self.best_effort)]);
        field("fp16", &[u8::from(self.fp16)]);
        let f = Fingerprints {
            calibration,
            job: hex::encode(h.finalize()),
        };
        Ok(self.fingerprints.get_or_init(|| f))
    }

    fn calibrator(&self, prepared: &Prepared) -> Calibrator {
        let mut c = Calibrator::prepared(prepared)
            .method(self.method)
            .bins(self.bins)
            .profiles(self.profiles.clone());
        for e in &self.exclude {
            c = c.exclude(e);
        }
        if let Some(t) = self.threads {
            c = c.threads(t);
        }
        if let Some(p) = &self.progress {
            let p = p.clone();
            c = c.on_progress(move |x| p(x));
        }
        c
    }

    /// Runs the recipe (see the module documentation).
    ///
    /// # Errors
    ///
    /// [`Error::Options`] for a target without held-out samples or an empty held-out source;
    /// [`Error::Sample`] for the first bad held-out or calibration sample (held-out samples
    /// are all checked first); calibration's, tuning's (a target that cannot be met) and Q/DQ
    /// insertion's errors.
    pub fn run(mut self) -> Result<Quantized> {
        let start = Instant::now();
        let options = TuneOptions {
            target: self.target.clone(),
            criterion: self.criterion.clone(),
            max_float_share: self.max_float_share,
            best_effort: self.best_effort,
        };
        options.check()?;
        let (data, held) = self.sources()?;
        if self.target.is_some() && held.is_none() {
            return Err(Error::options(
                "an accuracy target needs held-out samples: hold out every N-th sample (N ≥ 2) or give held-out samples",
            ));
        }
        // `If` nodes decided by the profiles' shapes are replaced by their branch (TensorRT and
        // tract cannot take some of them).
        let (model, notes) = match crate::fold::fold_shape_ifs(&self.model, &self.profiles)? {
            Some((folded, notes)) => (folded, notes),
            None => (self.model.clone(), Vec::new()),
        };
        // Every held-out sample is checked before anything is computed.
        let inputs = model.inputs()?;
        if let Some(held) = &held {
            for r in held.list()? {
                held.load(&r, &inputs)?.validate(&inputs, &self.profiles)?;
            }
        }
        let fingerprint = self.fingerprints()?.calibration.clone();
        // The float weights go to a temporary file until the quantized model is complete:
        // tract reads them from there, Q/DQ insertion reads each weight it quantizes, and
        // the process holds one copy of the weights at a time, not two (tract's and the
        // protobuf's). Where no temporary file can be written, they stay in memory.
        let model = offloaded(model);
        // The job's own copy (the model as given) goes too; its fingerprints are computed.
        self.model = model.clone();
        let prepared = Prepared::new(&model);
        let calibrator = self.calibrator(&prepared);
        let (calibration, reused) = match &self.calibration_cache {
            Some(path) => calibrator.run_cached_with(&data, path, fingerprint)?,
            None => (calibrator.run_with(&data, fingerprint)?, false),
        };
        let (calibration, tuning) = match &held {
            Some(held) if calibration.method == Method::Auto || self.target.is_some() => {
                let mut exclusions = Exclusions::default();
                for e in &self.exclude {
                    exclusions.add(&model, e);
                }
                let step = self.step.clone();
                let (c, t) =
                    tune::tune(&prepared, &calibration, &exclusions, held, &options, &|s| {
                        if let Some(f) = &step {
                            f(s);
                        }
                    })?;
                (c, Some(t))
            }
            _ => (calibration, None),
        };
        let qdq = calibration.apply(&prepared)?;
        // The float form is not needed any more: its weights go before the report runs.
        drop(prepared);
        let mut qdq = qdq.with_weights()?;
        if self.fp16 {
            qdq = crate::fp16::convert(&qdq);
        }
        let report = match &held {
            Some(held) => Some(report::compare(&model, &qdq, held)?),
            None => None,
        };
        // What TensorRT parses: no placeholder dim names (`?`) it would read as one symbol.
        qdq.clear_placeholder_dims();
        Ok(Quantized {
            model: qdq,
            calibration,
            reused,
            tuning,
            report,
            notes,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}
