//! Accuracy that manages itself: [`Method::Auto`]'s choice of calibration method, and an
//! accuracy target met by keeping the most sensitive quantized nodes in float.
//!
//! # Method choice (`Method::Auto`)
//!
//! Calibration collects one set of statistics (ranges, then histograms) and computes from it
//! the threshold every method would pick, per tensor ([`Calibration::candidates`]): no
//! extra inference pass over the calibration data. With held-out samples, each candidate's
//! Q/DQ model is run on them and the one whose [`Criterion`] is highest wins; candidates are
//! tried in a fixed order (mse, entropy, percentile, minmax, then the mixed ones below) and a
//! later one must be strictly better, so the choice is deterministic. The criterion is a
//! downstream metric, not a proxy: per-tensor quantization error does not predict how errors
//! compound through a network (measured on the corpus: entropy clips hardest and loses most on
//! CNN classifiers, while per-tensor error favours it). The default criterion is the mean SNR
//! over outputs ([`Criterion::MeanSnrDb`]); with a target, the target's metric; a task metric
//! ([`Criterion::Task`]) or the application's own ([`Criterion::Custom`]) can be asked for.
//! Without held-out samples, Auto uses the MSE thresholds, the per-tensor optimum of expected
//! squared quantization error.
//!
//! **Per-tensor mixing.** Clipping thresholds (entropy, MSE, percentile) cut the extremes of
//! every tensor; on softmax probabilities and normalized activations the extremes are the
//! signal (an attention weight near 1, a LayerNorm outlier feature). When the model has such
//! tensors, Auto also tries each clipping method with those tensors at their minmax range
//! (`entropy+minmax-norm`, …), and keeps a mixed candidate only when it measures better than
//! every whole-model one.
//!
//! # Accuracy target
//!
//! The metric is the worst output's cosine similarity (or SNR in dB, or a user function) of the
//! INT8-simulated model against the FP32 model on the held-out samples. When it misses the
//! target, every quantized node is ranked by sensitivity: the metric with **that node alone**
//! quantized and everything else in float (one held-out evaluation per node). The most
//! sensitive nodes are then kept in float one at a time, re-measuring after each, until the
//! target is met; more than `max_float_share` of the quantized nodes in float is a failure that
//! reports the table. Evaluations: candidates + nodes + steps, i.e. O(nodes).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::calibrate::Calibration;
use crate::data::{Sample, Source};
use crate::error::{Error, Result};
use crate::infer::{CpuModel, to_f32};
use crate::metric::{Layout, cosine, per_output, snr_db};
use crate::model::Model;
use crate::observer::Method;
use crate::prepared::Prepared;
use crate::qdq::{self, Exclusions};

mod mixing;
use mixing::range_sensitive;

pub use crate::metric::{Criterion, MetricFn};

/// What the held-out samples must show.
#[derive(Clone)]
pub enum Target {
    /// Every output's cosine similarity to FP32 at least this.
    MinCosine(f64),
    /// Every output's SNR against FP32 at least this many dB.
    MinSnrDb(f64),
    /// A task metric (`name`, higher is better) at least `threshold`.
    Custom {
        /// Name in reports.
        name: String,
        /// Lowest acceptable value.
        threshold: f64,
        /// The metric.
        metric: Arc<MetricFn>,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} >= {}", self.metric_name(), self.threshold())
    }
}

impl Target {
    /// The metric's name.
    pub fn metric_name(&self) -> String {
        match self {
            Target::MinCosine(_) => "min cosine".into(),
            Target::MinSnrDb(_) => "min SNR dB".into(),
            Target::Custom { name, .. } => name.clone(),
        }
    }

    /// The lowest acceptable value.
    pub fn threshold(&self) -> f64 {
        match self {
            Target::MinCosine(t) | Target::MinSnrDb(t) => *t,
            Target::Custom { threshold, .. } => *threshold,
        }
    }

    fn measure(&self, reference: &[Vec<f32>], candidate: &[Vec<f32>]) -> f64 {
        match self {
            Target::MinCosine(_) => per_output(reference, candidate, cosine),
            Target::MinSnrDb(_) => per_output(reference, candidate, snr_db),
            Target::Custom { metric, .. } => metric(reference, candidate),
        }
    }

    /// The target's metric as Auto's criterion (a target's metric is what the user cares
    /// about, so Auto chooses by it unless told otherwise).
    pub fn criterion(&self) -> Criterion {
        match self {
            Target::MinCosine(_) => Criterion::MinCosine,
            Target::MinSnrDb(_) => Criterion::Custom {
                name: "min SNR dB".into(),
                metric: Arc::new(|a: &[Vec<f32>], b: &[Vec<f32>]| per_output(a, b, snr_db)),
            },
            Target::Custom { name, metric, .. } => Criterion::Custom {
                name: name.clone(),
                metric: metric.clone(),
            },
        }
    }
}

/// One step of the search: a node kept in float and the metric after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// ONNX node name.
    pub node: String,
    /// Operator type.
    pub op_type: String,
    /// The metric with this node alone quantized (its sensitivity; lower = more sensitive).
    pub alone: f64,
    /// The metric of the whole model after keeping this node (and the ones before) in float.
    pub after: f64,
}

/// What tuning chose and measured (recorded in the manifest and printed by the CLI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// The target's metric (`min cosine`, `min SNR dB` or a custom name); without a target,
    /// Auto's criterion.
    pub metric: String,
    /// What Auto ranked the candidate methods by (see [`Criterion`]).
    #[serde(default)]
    pub criterion: String,
    /// Every candidate method's metric (Auto only), in the order tried.
    pub candidates: Vec<(String, f64)>,
    /// The method whose scales are used.
    pub chosen: String,
    /// The target, if any.
    pub target: Option<f64>,
    /// The metric before any node was kept in float.
    pub initial: f64,
    /// Nodes kept in float to meet the target, in order.
    pub steps: Vec<Step>,
    /// The metric achieved.
    pub achieved: f64,
    /// Quantized nodes (before the search).
    pub quantized_nodes: usize,
    /// Held-out evaluations run.
    pub evaluations: usize,
    /// Seconds spent.
    pub seconds: f64,
}

impl Tuning {
    /// Whether the target (if any) was met.
    pub fn met(&self) -> bool {
        self.target.is_none_or(|t| self.achieved >= t)
    }

    /// A table for people.
    pub fn table(&self) -> String {
        let mut s = String::new();
        if !self.candidates.is_empty() {
            let _ = writeln!(s, "method choice ({} on held-out samples):", self.criterion);
            for (m, v) in &self.candidates {
                let mark = if *m == self.chosen { "  <- chosen" } else { "" };
                let _ = writeln!(s, "  {m:<18} {v:>10.5}{mark}");
            }
        }
        match self.target {
            Some(t) if self.steps.is_empty() => {
                let _ = writeln!(
                    s,
                    "target {} >= {t}: met with every node quantized ({:.5})",
                    self.metric, self.achieved
                );
            }
            Some(t) => {
                let _ = writeln!(
                    s,
                    "target {} >= {t}: {:.5} with all {} nodes quantized; kept in float, most sensitive first:",
                    self.metric, self.initial, self.quantized_nodes
                );
                let _ = writeln!(
                    s,
                    "  {:<4} {:<40} {:<14} {:>12} {:>12}",
                    "step", "node", "op", "alone", "after"
                );
                for (i, st) in self.steps.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "  {:<4} {:<40} {:<14} {:>12.5} {:>12.5}",
                        i + 1,
                        st.node,
                        st.op_type,
                        st.alone,
                        st.after
                    );
                }
            }
            None => {}
        }
        let _ = write!(
            s,
            "{} evaluations in {:.1} s; {} = {:.5}",
            self.evaluations, self.seconds, self.metric, self.achieved
        );
        s
    }
}

/// Options of [`tune`].
#[derive(Debug, Clone)]
pub struct TuneOptions {
    /// The target, if any (otherwise only the method choice of Auto runs).
    pub target: Option<Target>,
    /// What Auto ranks candidate methods by (default: the target's metric when there is a
    /// target, else [`Criterion::MeanSnrDb`]).
    pub criterion: Option<Criterion>,
    /// Largest share of the quantized nodes that may be kept in float (default 0.25).
    pub max_float_share: f64,
    /// Keep the best result found when the target cannot be met instead of failing (the
    /// [`Tuning`] then says the target was missed).
    pub best_effort: bool,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            target: None,
            criterion: None,
            max_float_share: 0.25,
            best_effort: false,
        }
    }
}

impl TuneOptions {
    /// Checks the values: a cosine target in `-1..=1`, a finite SNR or custom threshold, a
    /// float share in `0..=1`. A target no model can reach (cosine above 1) or a NaN (which
    /// every comparison would call met) is refused here, before anything runs.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] naming the value and the allowed range.
    pub fn check(&self) -> Result<()> {
        if !(self.max_float_share.is_finite() && (0.0..=1.0).contains(&self.max_float_share)) {
            return Err(Error::options(format!(
                "max float share {}: the allowed range is 0..=1 (a share of the quantized nodes)",
                self.max_float_share
            )));
        }
        match &self.target {
            Some(Target::MinCosine(c)) if !(c.is_finite() && (-1.0..=1.0).contains(c)) => {
                Err(Error::options(format!(
                    "min cosine {c}: a cosine similarity lies in -1..=1 (1 means identical to FP32)"
                )))
            }
            Some(Target::MinSnrDb(t)) if !t.is_finite() => Err(Error::options(format!(
                "min SNR {t} dB: the target must be a finite number of dB"
            ))),
            Some(Target::Custom {
                name, threshold, ..
            }) if !threshold.is_finite() => Err(Error::options(format!(
                "target {name} >= {threshold}: the threshold must be a finite number"
            ))),
            _ => Ok(()),
        }
    }
}

struct Evaluator<'a> {
    model: &'a Prepared,
    samples: Vec<Sample>,
    reference: Vec<Vec<f32>>,
    layout: Layout,
    metric: Target,
    evaluations: usize,
}

impl Evaluator<'_> {
    /// Every output's values over `samples`, concatenated, and their layout.
    fn outputs(model: &Model, samples: &[Sample]) -> Result<(Vec<Vec<f32>>, Layout)> {
        let mut cpu = CpuModel::new(model, &[])?;
        cpu.release_memory_after_calls(true);
        let n = cpu.output_names().len();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); n];
        let mut layout = Layout {
            shapes: vec![Vec::new(); n],
            integer: vec![false; n],
        };
        for s in samples {
            for (o, t) in cpu.run(s.id(), s.inputs())?.iter().enumerate() {
                layout.shapes[o].push(t.shape().to_vec());
                layout.integer[o] = t.datum_type().is_integer();
                out[o].extend(to_f32(t)?);
            }
        }
        Ok((out, layout))
    }

    /// The outputs of the Q/DQ model of `calibration` with `exclusions` kept in float.
    fn candidate(
        &mut self,
        calibration: &Calibration,
        exclusions: &Exclusions,
    ) -> Result<Vec<Vec<f32>>> {
        self.evaluations += 1;
        let placement = qdq::place(self.model, exclusions)?;
        let qdq = qdq::insert(self.model, &placement, &calibration.scales)?;
        Ok(Self::outputs(&qdq, &self.samples)?.0)
    }

    fn measure(&mut self, calibration: &Calibration, exclusions: &Exclusions) -> Result<f64> {
        let candidate = self.candidate(calibration, exclusions)?;
        Ok(self.metric.measure(&self.reference, &candidate))
    }
}

/// Chooses Auto's method and meets the target, returning the calibration to apply (scales and
/// exclusions) and what was done.
///
/// # Errors
///
/// [`Error::Options`] without held-out samples; [`Error::Model`] naming the table when the
/// target cannot be met within `max_float_share`; errors of inference and Q/DQ insertion.
pub fn tune(
    model: &Prepared,
    calibration: &Calibration,
    exclusions: &Exclusions,
    held_out: &Source,
    options: &TuneOptions,
    progress: &dyn Fn(&str),
) -> Result<(Calibration, Tuning)> {
    let start = Instant::now();
    options.check()?;
    let inputs = model.original().inputs()?;
    let refs = match held_out.list() {
        Err(Error::EmptySource { .. }) => Vec::new(),
        other => other?,
    };
    let samples: Vec<Sample> = refs
        .iter()
        .map(|r| held_out.load(r, &inputs))
        .collect::<Result<_>>()?;
    if samples.is_empty() {
        return Err(Error::options(
            "choosing a method or meeting an accuracy target needs held-out samples",
        ));
    }
    let metric = options.target.clone().unwrap_or(Target::MinCosine(0.0));
    let criterion = options
        .criterion
        .clone()
        .or_else(|| options.target.as_ref().map(Target::criterion))
        .unwrap_or_default();
    let (reference, layout) = Evaluator::outputs(model.original(), &samples)?;
    criterion.check(reference.len())?;
    let mut ev = Evaluator {
        model,
        reference,
        layout,
        samples,
        metric,
        evaluations: 0,
    };

    // 1. Method choice.
    let mut chosen = calibration.clone();
    let mut candidates = Vec::new();
    let mut chosen_name = calibration.method.name();
    let mut initial = None;
    if calibration.method == Method::Auto && !calibration.candidates.is_empty() {
        // The best so far: criterion value, name, calibration and the value of what follows
        // (the target's metric, or the criterion); outputs are dropped once measured.
        let mut best: Option<(f64, String, Calibration, f64)> = None;
        let follow = |v: f64, outputs: &[Vec<f32>], ev: &Evaluator| match options.target {
            Some(_) => ev.metric.measure(&ev.reference, outputs),
            None => v,
        };
        for method in Method::AUTO_CANDIDATES {
            let Some(amax) = calibration.candidates.get(&method.name()) else {
                continue;
            };
            progress(&format!("auto: measuring {}", method.name()));
            let c = with_thresholds(calibration, amax);
            let outputs = ev.candidate(&c, exclusions)?;
            let v = criterion.measure(&ev.reference, &outputs, &ev.layout);
            candidates.push((method.name(), v));
            // A later candidate must be strictly better: the order breaks ties.
            if best.as_ref().is_none_or(|(b, _, _, _)| v > *b) {
                best = Some((v, method.name(), c, follow(v, &outputs, &ev)));
            }
        }
        // Per-tensor mixing: each clipping method with the unclipped (minmax) range on the
        // tensors whose extremes carry the signal (softmax probabilities, normalized
        // activations); kept when it measures better than every whole-model method.
        let sensitive = range_sensitive(model);
        let minmax = calibration.candidates.get(&Method::MinMax.name());
        for method in Method::AUTO_CANDIDATES {
            let (Some(minmax), Some(amax)) = (minmax, calibration.candidates.get(&method.name()))
            else {
                continue;
            };
            if method == Method::MinMax || sensitive.is_empty() {
                continue;
            }
            let name = format!("{}+minmax-norm", method.name());
            progress(&format!("auto: measuring {name}"));
            let mut mixed = amax.clone();
            for t in &sensitive {
                if let (Some(v), Some(&m)) = (mixed.get_mut(t), minmax.get(t)) {
                    *v = m;
                }
            }
            let c = with_thresholds(calibration, &mixed);
            let outputs = ev.candidate(&c, exclusions)?;
            let v = criterion.measure(&ev.reference, &outputs, &ev.layout);
            candidates.push((name.clone(), v));
            if best.as_ref().is_none_or(|(b, _, _, _)| v > *b) {
                best = Some((v, name, c, follow(v, &outputs, &ev)));
            }
        }
        if let Some((_, name, c, value)) = best {
            chosen = c;
            chosen_name = name;
            // With a target, what follows is measured by the target's metric; without one,
            // the criterion's value is the result.
            initial = Some(value);
        }
    }
    let initial = match initial {
        Some(v) => v,
        None if options.target.is_none() => {
            let outputs = ev.candidate(&chosen, exclusions)?;
            criterion.measure(&ev.reference, &outputs, &ev.layout)
        }
        None => ev.measure(&chosen, exclusions)?,
    };

    // 2. The target.
    let mut steps = Vec::new();
    let mut achieved = initial;
    let mut exclusions = exclusions.clone();
    let nodes = quantized_nodes(model, &chosen);
    let mut allowed = 0;
    if let Some(target) = &options.target
        && initial < target.threshold()
    {
        let threshold = target.threshold();
        let mut ranked = Vec::new();
        for (i, (name, op)) in nodes.iter().enumerate() {
            progress(&format!("sensitivity {}/{}: {name}", i + 1, nodes.len()));
            let mut alone = exclusions.clone();
            for (other, _) in &nodes {
                if other != name {
                    alone.nodes.insert(other.clone());
                }
            }
            ranked.push((ev.measure(&chosen, &alone)?, name.clone(), op.clone()));
        }
        // Most sensitive first; names break ties so the order is deterministic.
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        allowed = (options.max_float_share * nodes.len() as f64).floor() as usize;
        for (alone, name, op) in ranked {
            if achieved >= threshold || steps.len() >= allowed {
                break;
            }
            progress(&format!("keeping {name} in float"));
            exclusions.nodes.insert(name.clone());
            achieved = ev.measure(&chosen, &exclusions)?;
            steps.push(Step {
                node: name,
                op_type: op,
                alone,
                after: achieved,
            });
        }
    }
    let tuning = Tuning {
        metric: match &options.target {
            Some(t) => t.metric_name(),
            None => criterion.name(),
        },
        criterion: criterion.name(),
        candidates,
        chosen: chosen_name,
        target: options.target.as_ref().map(Target::threshold),
        initial,
        steps,
        achieved,
        quantized_nodes: nodes.len(),
        evaluations: ev.evaluations,
        seconds: start.elapsed().as_secs_f64(),
    };
    // Every way of missing the target (the float share spent, or every node tried) is an
    // error unless the caller asked for the closest result.
    if let Some(threshold) = tuning.target
        && !tuning.met()
        && !options.best_effort
    {
        return Err(Error::model(
            model.original().name(),
            format!(
                "the accuracy target {} >= {threshold} is not met: {:.5} with {} of {} quantized nodes in float (at most {allowed}, {:.0}%, allowed); lower the target, allow a larger float share, or ask for best effort to keep the closest result:\n{}",
                tuning.metric,
                tuning.achieved,
                tuning.steps.len(),
                nodes.len(),
                options.max_float_share * 100.0,
                tuning.table()
            ),
        ));
    }
    chosen.placement = qdq::place(model, &exclusions)?;
    Ok((chosen, tuning))
}

/// The calibration with another method's thresholds (scales shared as calibration shares them).
fn with_thresholds(calibration: &Calibration, amax: &BTreeMap<String, f32>) -> Calibration {
    let mut c = calibration.clone();
    (c.amax, c.scales) = crate::calibrate::shared_scales(&c.placement, amax.clone());
    c
}

/// Named nodes that Q/DQ feeds (the points the search can keep in float), with their types.
fn quantized_nodes(model: &Prepared, calibration: &Calibration) -> Vec<(String, String)> {
    let g = model.original().graph();
    let nodes = &model.form().graph().node;
    let mut out: Vec<(String, String)> = calibration
        .placement
        .activations
        .iter()
        .flat_map(|a| a.consumers.iter().map(|&(n, _)| n))
        .chain(
            calibration
                .placement
                .weights
                .iter()
                .flat_map(|w| w.consumers.iter().map(|&(n, _)| n)),
        )
        .filter_map(|n| nodes.get(n))
        .filter(|n| !n.name.is_empty() && g.node.iter().any(|m| m.name == n.name))
        .map(|n| (n.name.clone(), n.op_type.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}
