//! The calibration pipeline: validate, place Q/DQ, stream samples through the FP32 model on
//! every core, pick thresholds, and persist the result with its inputs' fingerprint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{SampleRef, Source};
use crate::error::{Error, Result};
use crate::infer::{CpuModel, ShapeSignature, to_f32};

/// Most worker threads accepted.
pub const MAX_THREADS: usize = 1024;
use crate::model::{Model, TensorInfo, write_atomic};
use crate::observer::{DEFAULT_BINS, Method, TensorStats, scale_for};
use crate::prepared::Prepared;
use crate::profile::{Profile, validate_profiles};
use crate::qdq::{self, Exclusions, Placement};

/// Version of the persisted format and of the algorithm; part of every fingerprint.
pub const FORMAT_VERSION: u32 = 3;

/// Calibration progress, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Samples done (calibration reads every sample once).
    pub done: usize,
    /// Samples in all.
    pub total: usize,
}

type ProgressFn = dyn Fn(Progress) + Send + Sync;

/// Calibration options and entry point (builder style).
pub struct Calibrator {
    prepared: Prepared,
    method: Method,
    bins: usize,
    profiles: Vec<Profile>,
    exclusions: Exclusions,
    threads: Option<usize>,
    progress: Option<Box<ProgressFn>>,
}

impl std::fmt::Debug for Calibrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calibrator")
            .field("model", &self.prepared.original().name())
            .field("method", &self.method)
            .field("bins", &self.bins)
            .field("profiles", &self.profiles)
            .field("exclusions", &self.exclusions)
            .finish_non_exhaustive()
    }
}

/// Result of a calibration: the scale of every activation point, plus everything needed to
/// tell whether it is still valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// [`FORMAT_VERSION`] at the time of writing.
    pub format_version: u32,
    /// SHA-256 over the model, the data and the options.
    pub fingerprint: String,
    /// The observer.
    pub method: Method,
    /// Samples used.
    pub samples: usize,
    /// Threshold (`amax`) of every activation tensor.
    pub amax: BTreeMap<String, f32>,
    /// Scale (`amax / 127`, after scale sharing) of every activation tensor.
    pub scales: BTreeMap<String, f32>,
    /// For [`Method::Auto`]: every candidate method's thresholds, by method name, from the
    /// same statistics (see [`crate::tune`]).
    #[serde(default)]
    pub candidates: BTreeMap<String, BTreeMap<String, f32>>,
    /// Where Q/DQ goes.
    pub placement: Placement,
    /// Warnings (e.g. samples that do not cover the profiles).
    pub warnings: Vec<String>,
}

impl Calibration {
    /// Writes the model with Q/DQ inserted.
    ///
    /// # Errors
    ///
    /// See [`qdq::insert`].
    pub fn apply(&self, prepared: &Prepared) -> Result<Model> {
        qdq::insert(prepared, &self.placement, &self.scales)
    }

    /// Saves as JSON (atomically).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("calibration is always serializable");
        Ok(write_atomic(path.as_ref(), &json)?)
    }

    /// Loads a saved calibration.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::CalibrationFile`] naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Calibration> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::CalibrationFile {
            path: path.into(),
            message: e.to_string(),
        })
    }
}

impl Calibrator {
    /// Calibrates `model` ([`Method::Auto`], no profile: static inputs). The model is prepared
    /// for Q/DQ here; with a [`Prepared`] already made, use [`Calibrator::prepared`].
    pub fn new(model: &Model) -> Self {
        Self::prepared(&Prepared::new(model))
    }

    /// Calibrates a model already prepared for Q/DQ (nothing is copied).
    pub fn prepared(prepared: &Prepared) -> Self {
        Calibrator {
            prepared: prepared.clone(),
            method: Method::Auto,
            bins: DEFAULT_BINS,
            profiles: Vec::new(),
            exclusions: Exclusions::default(),
            threads: None,
            progress: None,
        }
    }

    /// Sets the observer.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Histogram bins (default 2048; [`crate::observer::BINS_RANGE`] is allowed, checked when
    /// calibration runs).
    pub fn bins(mut self, bins: usize) -> Self {
        self.bins = bins;
        self
    }

    /// Adds an optimization profile; samples must fit one of them.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profiles.push(profile);
        self
    }

    /// Sets all profiles.
    pub fn profiles(mut self, profiles: Vec<Profile>) -> Self {
        self.profiles = profiles;
        self
    }

    /// Keeps a node (by name) or an operator type in float.
    pub fn exclude(mut self, name_or_op: &str) -> Self {
        self.exclusions.add(self.prepared.original(), name_or_op);
        self
    }

    /// Sets the exclusions.
    pub fn exclusions(mut self, exclusions: Exclusions) -> Self {
        self.exclusions = exclusions;
        self
    }

    /// Number of worker threads (default: every core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Receives progress after every sample.
    pub fn on_progress(mut self, f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// SHA-256 over the model bytes, every data file (name and content) or in-memory sample,
    /// and every option that changes the result.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for unreadable data files.
    pub fn fingerprint(&self, source: &Source) -> Result<String> {
        crate::fingerprint::of(
            self.prepared.original(),
            self.method,
            self.bins,
            &self.profiles,
            &self.exclusions,
            source,
        )
    }

    /// Runs calibration, or returns the calibration saved at `cache` when its fingerprint
    /// matches (then nothing is recomputed). A fresh result is saved there.
    ///
    /// # Errors
    ///
    /// As [`Calibrator::run`].
    pub fn run_cached(
        &self,
        source: &Source,
        cache: impl AsRef<Path>,
    ) -> Result<(Calibration, bool)> {
        let fingerprint = self.fingerprint(source)?;
        self.run_cached_with(source, cache, fingerprint)
    }

    /// [`Calibrator::run_cached`] with a fingerprint the caller already computed with
    /// [`Calibrator::fingerprint`] (hashing reads every data file, so do it once).
    ///
    /// # Errors
    ///
    /// As [`Calibrator::run`].
    pub fn run_cached_with(
        &self,
        source: &Source,
        cache: impl AsRef<Path>,
        fingerprint: String,
    ) -> Result<(Calibration, bool)> {
        let cache = cache.as_ref();
        if let Ok(previous) = Calibration::load(cache)
            && previous.fingerprint == fingerprint
            && previous.format_version == FORMAT_VERSION
        {
            return Ok((previous, true));
        }
        let calibration = self.run_with(source, fingerprint)?;
        calibration.save(cache)?;
        Ok((calibration, false))
    }

    /// Bounds on the options that size memory and time.
    fn check_options(&self) -> Result<()> {
        use crate::observer::BINS_RANGE;
        if self.method.needs_histogram() && !BINS_RANGE.contains(&self.bins) {
            return Err(Error::options(format!(
                "{} histogram bins: the allowed range is {}..={}",
                self.bins,
                BINS_RANGE.start(),
                BINS_RANGE.end()
            )));
        }
        if let Some(t) = self.threads
            && !(1..=MAX_THREADS).contains(&t)
        {
            return Err(Error::options(format!(
                "{t} threads: the allowed range is 1..={MAX_THREADS}"
            )));
        }
        Ok(())
    }

    /// Runs calibration.
    ///
    /// # Errors
    ///
    /// [`Error::Profile`] for profiles that do not match the model, [`Error::EmptySource`],
    /// [`Error::Sample`] for the first bad sample, [`Error::Cpu`] when the CPU engine fails.
    pub fn run(&self, source: &Source) -> Result<Calibration> {
        self.run_with(source, self.fingerprint(source)?)
    }

    pub(crate) fn run_with(&self, source: &Source, fingerprint: String) -> Result<Calibration> {
        self.method.check()?;
        self.check_options()?;
        let inputs = self.prepared.original().inputs()?;
        validate_profiles(&inputs, &self.profiles)?;
        let placement = qdq::place(&self.prepared, &self.exclusions)?;
        // Observe the graph Q/DQ goes into (its opset-13 form where the model is older).
        let refs = source.list()?;
        let tensors = placement.activation_tensors();
        // Only what the observers need is computed: not the graph outputs, nor the layers
        // after the last observed tensor.
        let mut cpu = CpuModel::observing(self.prepared.form(), &tensors)?;
        cpu.release_memory_after_calls(true);
        // Index of each activation tensor among the plan's outputs.
        let index: Vec<usize> = tensors
            .iter()
            .map(|t| {
                cpu.output_names()
                    .iter()
                    .position(|o| o == t)
                    .unwrap_or(usize::MAX)
            })
            .collect();

        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads.unwrap_or(0))
            .build()
            .map_err(|e| Error::options(format!("thread pool: {e}")))?;
        // Samples of one shape signature run one after another, so the bounded cache of
        // concrete plans is not rebuilt over and over; statistics merge commutatively, so the
        // order changes nothing in the result.
        let signatures: Vec<ShapeSignature> = pool.install(|| {
            refs.par_iter()
                .map(|r| {
                    let s = source.load(r, &inputs)?;
                    s.validate(&inputs, &self.profiles)?;
                    Ok(cpu.signature(s.shapes()))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        cpu.prepare(&signatures)?;
        let mut order: Vec<usize> = (0..refs.len()).collect();
        order.sort_by(|&a, &b| signatures[a].cmp(&signatures[b]).then(a.cmp(&b)));
        let refs: Vec<SampleRef> = order.into_iter().map(|i| refs[i].clone()).collect();
        let shapes: Mutex<BTreeMap<String, BTreeSet<Vec<usize>>>> = Mutex::default();
        let fitted: Mutex<BTreeSet<usize>> = Mutex::default();

        let pass = |template: Vec<TensorStats>| -> Result<Vec<TensorStats>> {
            let done = AtomicUsize::new(0);
            let shared = Pass {
                source,
                inputs: &inputs,
                cpu: &cpu,
                index: &index,
                shapes: &shapes,
                fitted: &fitted,
            };
            // Each worker's run of samples observes into one set of statistics (a set is a
            // histogram per tensor: megabytes on a transformer, so not one per sample).
            pool.install(|| {
                refs.par_iter()
                    .try_fold(
                        || template.clone(),
                        |mut stats, r| -> Result<Vec<TensorStats>> {
                            self.observe_sample(&shared, r, &mut stats)?;
                            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                            if let Some(p) = &self.progress {
                                p(Progress {
                                    done: d,
                                    total: refs.len(),
                                });
                            }
                            Ok(stats)
                        },
                    )
                    .try_reduce(
                        || template.clone(),
                        |mut a, b| {
                            for (x, y) in a.iter_mut().zip(&b) {
                                x.merge(y);
                            }
                            Ok(a)
                        },
                    )
            })
        };

        // One pass: the histograms' ranges follow the data (see `observer`).
        let template = if self.method.needs_histogram() {
            TensorStats::with_histogram(self.bins)
        } else {
            TensorStats::new()
        };
        let stats = pass(vec![template; tensors.len()])?;
        // An activation that overflows float32 has no scale; say which, never write 1.0.
        if let Some((t, r)) = tensors.iter().zip(&stats).find(|(_, r)| r.non_finite > 0) {
            return Err(Error::model(
                self.prepared.original().name(),
                format!(
                    "activation '{t}' became non-finite (inf or NaN) in {} of {} values on the calibration data: the model overflows float32 on these inputs, so no INT8 scale exists for it; check the samples' value range, or exclude the node that produces it",
                    r.non_finite,
                    r.count + r.non_finite
                ),
            ));
        }

        let amax: BTreeMap<String, f32> = tensors
            .iter()
            .zip(&stats)
            .map(|(t, s)| (t.clone(), s.threshold(self.method)))
            .collect();
        let candidates: BTreeMap<String, BTreeMap<String, f32>> = if self.method == Method::Auto {
            Method::AUTO_CANDIDATES
                .iter()
                .map(|&m| {
                    let thresholds = tensors
                        .iter()
                        .zip(&stats)
                        .map(|(t, s)| (t.clone(), s.threshold(m)))
                        .collect();
                    (m.name(), thresholds)
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        let (amax, scales) = shared_scales(&placement, amax);
        let warnings = coverage_warnings(
            &inputs,
            &self.profiles,
            &shapes.into_inner().unwrap_or_default(),
            &fitted.into_inner().unwrap_or_default(),
            refs.len(),
        );
        let mut warnings = warnings;
        warnings.extend(placement.per_tensor_weights.clone());
        for w in &warnings {
            log::warn!("{w}");
        }
        Ok(Calibration {
            format_version: FORMAT_VERSION,
            fingerprint,
            method: self.method,
            samples: refs.len(),
            amax,
            scales,
            candidates,
            placement,
            warnings,
        })
    }

    fn observe_sample(
        &self,
        pass: &Pass<'_>,
        r: &SampleRef,
        stats: &mut [TensorStats],
    ) -> Result<()> {
        let Pass {
            source,
            inputs,
            cpu,
            index,
            shapes,
            fitted,
        } = *pass;
        let sample = source.load(r, inputs)?;
        let profile = sample.validate(inputs, &self.profiles)?;
        {
            let mut s = shapes.lock().unwrap_or_else(|e| e.into_inner());
            for (name, t) in sample.tensors() {
                s.entry(name.clone())
                    .or_default()
                    .insert(t.shape().to_vec());
            }
        }
        fitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(profile);
        // Each activation is observed as soon as it is made, then freed: a sample never
        // holds all its activations at once.
        cpu.run_observing(sample.id(), sample.inputs(), &mut |output, t| {
            for (s, _) in stats.iter_mut().zip(index).filter(|(_, i)| **i == output) {
                observe(s, t)?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// What every sample of one calibration pass shares.
#[derive(Clone, Copy)]
struct Pass<'a> {
    source: &'a Source,
    inputs: &'a [TensorInfo],
    cpu: &'a CpuModel,
    /// Position of each observed tensor among the model's outputs.
    index: &'a [usize],
    shapes: &'a Mutex<BTreeMap<String, BTreeSet<Vec<usize>>>>,
    fitted: &'a Mutex<BTreeSet<usize>>,
}

/// Thresholds with every group of tensors that must share a scale (Concat inputs) raised to
/// the group's largest, and the scales they give.
pub(crate) fn shared_scales(
    placement: &Placement,
    mut amax: BTreeMap<String, f32>,
) -> (BTreeMap<String, f32>, BTreeMap<String, f32>) {
    for group in &placement.shared {
        let m = group
            .iter()
            .filter_map(|t| amax.get(t))
            .fold(0f32, |a, &b| a.max(b));
        for t in group {
            amax.insert(t.clone(), m);
        }
    }
    let scales = amax
        .iter()
        .map(|(t, &a)| (t.clone(), scale_for(a)))
        .collect();
    (amax, scales)
}

/// Feeds one tensor to the statistics, reading float32 data in place (no copy).
fn observe(stats: &mut TensorStats, t: &tract_onnx::prelude::Tensor) -> trt_cpu::Result<()> {
    if t.datum_type() == tract_onnx::prelude::DatumType::F32
        && let Ok(view) = t.to_plain_array_view::<f32>()
        && let Some(values) = view.as_slice()
    {
        stats.observe(values);
        return Ok(());
    }
    stats.observe(&to_f32(t)?);
    Ok(())
}

/// Warnings when samples do not cover the profiles: a profile no sample fits, or a dynamic
/// dimension that took a single value while its profile allows a range.
fn coverage_warnings(
    inputs: &[TensorInfo],
    profiles: &[Profile],
    shapes: &BTreeMap<String, BTreeSet<Vec<usize>>>,
    fitted: &BTreeSet<usize>,
    samples: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, _) in profiles.iter().enumerate() {
        if !fitted.contains(&p) {
            out.push(format!(
                "no calibration sample fits profile {p}: its shapes are never calibrated"
            ));
        }
    }
    for input in inputs.iter().filter(|i| i.is_dynamic()) {
        let Some(seen) = shapes.get(&input.name) else {
            continue;
        };
        for (axis, dim) in input.dims.iter().enumerate() {
            if dim.fixed().is_some() {
                continue;
            }
            let values: BTreeSet<usize> =
                seen.iter().filter_map(|s| s.get(axis).copied()).collect();
            let spans = profiles.iter().any(|p| {
                p.inputs
                    .get(&input.name)
                    .is_some_and(|r| r.min.get(axis) != r.max.get(axis))
            });
            if values.len() == 1 && spans {
                out.push(format!(
                    "input '{}' dimension {axis} is {} in all {samples} calibration samples, but the profile allows a range: \
                     calibrating at a single shape is a classic cause of poor INT8 accuracy; add samples of other shapes",
                    input.name,
                    values.iter().next().copied().unwrap_or(0)
                ));
            }
        }
    }
    out
}
