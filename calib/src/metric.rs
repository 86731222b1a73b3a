//! How INT8 outputs are compared with FP32 ones on held-out samples: the accuracy target's
//! metrics and [`Criterion`], the one [`Method::Auto`](crate::Method::Auto) ranks candidate
//! calibrations by. Every metric is "higher is better".
//!
//! Each output is compared as all its values over the held-out samples, concatenated; task
//! metrics that need rows (top-1, CTC) cut them by the output's last dimension.

use std::sync::Arc;

use crate::error::{Error, Result};

/// A metric over (FP32 outputs, INT8 outputs), each output's values concatenated over the
/// held-out samples; higher is better.
pub type MetricFn = dyn Fn(&[Vec<f32>], &[Vec<f32>]) -> f64 + Send + Sync;

/// A cap on SNR (dB): identical outputs (an argmax index, a bound constant) would otherwise
/// make a mean infinite and every candidate tie.
pub const SNR_CAP_DB: f64 = 120.0;

/// What Auto maximises when it chooses among candidate calibrations.
#[derive(Clone, Default)]
pub enum Criterion {
    /// The mean over outputs of each output's SNR in dB (capped at [`SNR_CAP_DB`]): every
    /// output counts, and a small error on a near-constant output does not decide alone.
    /// The default.
    #[default]
    MeanSnrDb,
    /// The worst output's cosine similarity (the default before 2026-12).
    MinCosine,
    /// A task metric built in: agreement of the FP32 and INT8 decisions on one output.
    Task {
        /// Which decision.
        task: Task,
        /// Output index (graph order).
        output: usize,
    },
    /// A user metric, e.g. the application's own task metric.
    Custom {
        /// Name in reports.
        name: String,
        /// The metric.
        metric: Arc<MetricFn>,
    },
}

/// A built-in task metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Task {
    /// Share of rows (cut by the last dimension) whose arg-max agrees.
    Top1,
    /// Intersection over union of the masks `value > threshold`.
    Iou(f32),
    /// Share of rows whose greedy CTC decoding (arg-max per step over the last dimension,
    /// repeats merged, blank 0 dropped) is identical.
    Ctc,
    /// Share of values on the same side of `threshold`.
    Decision(f32),
}

impl std::fmt::Debug for Criterion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Criterion {
    /// The name in reports and fingerprints, e.g. `mean SNR dB`, `top1 of output 0`.
    pub fn name(&self) -> String {
        match self {
            Criterion::MeanSnrDb => "mean SNR dB".into(),
            Criterion::MinCosine => "min cosine".into(),
            Criterion::Task { task, output } => {
                let t = match task {
                    Task::Top1 => "top1".to_string(),
                    Task::Iou(t) => format!("iou>{t}"),
                    Task::Ctc => "ctc".to_string(),
                    Task::Decision(t) => format!("decision>{t}"),
                };
                format!("{t} of output {output}")
            }
            Criterion::Custom { name, .. } => name.clone(),
        }
    }

    /// Parses `snr`, `cosine`, or a task `top1|ctc|iou|decision[:OUTPUT[:THRESHOLD]]` (output 0,
    /// thresholds 0.3 for IoU and 0.5 for a decision by default).
    ///
    /// # Errors
    ///
    /// [`Error::Options`] naming the text and what is accepted.
    pub fn parse(text: &str) -> Result<Criterion> {
        let bad = |why: &str| {
            Error::options(format!(
                "auto metric `{text}`: {why} (snr, cosine, or top1|ctc|iou|decision[:OUTPUT[:THRESHOLD]])"
            ))
        };
        let mut parts = text.trim().split(':');
        let kind = parts.next().unwrap_or_default();
        let output: usize = match parts.next() {
            None => 0,
            Some(o) => o
                .parse()
                .map_err(|_| bad("the output is an index (0, 1, …)"))?,
        };
        let threshold: Option<f32> = match parts.next() {
            None => None,
            Some(t) => Some(
                t.parse::<f32>()
                    .ok()
                    .filter(|t| t.is_finite())
                    .ok_or_else(|| bad("the threshold is a finite number"))?,
            ),
        };
        if parts.next().is_some() {
            return Err(bad("too many parts"));
        }
        let plain = |c: Criterion| {
            if text.contains(':') {
                Err(bad("snr and cosine take every output and no threshold"))
            } else {
                Ok(c)
            }
        };
        let task = match kind {
            "snr" => return plain(Criterion::MeanSnrDb),
            "cosine" => return plain(Criterion::MinCosine),
            "top1" | "ctc" if threshold.is_some() => {
                return Err(bad("top1 and ctc take no threshold"));
            }
            "top1" => Task::Top1,
            "ctc" => Task::Ctc,
            "iou" => Task::Iou(threshold.unwrap_or(0.3)),
            "decision" => Task::Decision(threshold.unwrap_or(0.5)),
            _ => return Err(bad("unknown metric")),
        };
        Ok(Criterion::Task { task, output })
    }

    /// Checks the criterion against the model's outputs.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] for an output index the model does not have.
    pub fn check(&self, outputs: usize) -> Result<()> {
        match self {
            Criterion::Task { output, .. } if *output >= outputs => Err(Error::options(format!(
                "auto metric {}: the model has {outputs} output(s), numbered from 0",
                self.name()
            ))),
            _ => Ok(()),
        }
    }

    /// The criterion's value of `candidate` against `reference` (one entry per output, its
    /// values over the samples concatenated), with the outputs' `layout`.
    pub(crate) fn measure(
        &self,
        reference: &[Vec<f32>],
        candidate: &[Vec<f32>],
        layout: &Layout,
    ) -> f64 {
        match self {
            Criterion::MeanSnrDb => {
                let n = reference.len().max(1) as f64;
                reference
                    .iter()
                    .zip(candidate)
                    .map(|(a, b)| snr_db(a, b).min(SNR_CAP_DB))
                    .sum::<f64>()
                    / n
            }
            Criterion::MinCosine => per_output(reference, candidate, cosine),
            Criterion::Task { task, output } => {
                let (Some(a), Some(b)) = (reference.get(*output), candidate.get(*output)) else {
                    return f64::NEG_INFINITY;
                };
                let shapes = layout.shapes.get(*output).map_or(&[][..], Vec::as_slice);
                let integer = layout.integer.get(*output).copied().unwrap_or(false);
                task.measure(a, b, shapes, integer)
            }
            Criterion::Custom { metric, .. } => metric(reference, candidate),
        }
    }
}

/// The shapes of each output on each held-out sample, and whether it is an integer tensor
/// (labels already, e.g. an in-graph arg-max).
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    /// Output → sample → shape.
    pub(crate) shapes: Vec<Vec<Vec<usize>>>,
    /// Output → integer element type.
    pub(crate) integer: Vec<bool>,
}

impl Task {
    /// `a`, `b`: one output's values over the samples, whose shapes are `shapes`.
    fn measure(self, a: &[f32], b: &[f32], shapes: &[Vec<usize>], integer: bool) -> f64 {
        let share = |hits: usize, of: usize| {
            if of == 0 {
                1.0
            } else {
                hits as f64 / of as f64
            }
        };
        let last = shapes
            .first()
            .and_then(|s| s.last())
            .copied()
            .unwrap_or(1)
            .max(1);
        match self {
            Task::Top1 => {
                let rows = a.chunks(last).zip(b.chunks(last));
                share(
                    rows.filter(|(x, y)| argmax(x) == argmax(y)).count(),
                    a.len().div_ceil(last),
                )
            }
            Task::Ctc => {
                // Per sample: integer outputs are label rows (the last dimension is the
                // sequence); float ones are [.., T, C] scores decoded by arg-max per step.
                let (mut same, mut total, mut at) = (0, 0, 0);
                for shape in shapes {
                    let n: usize = shape.iter().product();
                    let (x, y) = (&a[at..(at + n).min(a.len())], &b[at..(at + n).min(b.len())]);
                    at += n;
                    let c = shape.last().copied().unwrap_or(1).max(1);
                    let labels = |v: &[f32]| -> Vec<Vec<usize>> {
                        if integer {
                            v.chunks(c)
                                .map(|r| ctc(&r.iter().map(|&l| l as usize).collect::<Vec<_>>()))
                                .collect()
                        } else {
                            let t = shape.len().checked_sub(2).map_or(1, |i| shape[i]).max(1);
                            v.chunks(t * c)
                                .map(|seq| ctc(&seq.chunks(c).map(argmax).collect::<Vec<_>>()))
                                .collect()
                        }
                    };
                    let (p, q) = (labels(x), labels(y));
                    same += p.iter().zip(&q).filter(|(u, v)| u == v).count();
                    total += p.len();
                }
                share(same, total)
            }
            Task::Iou(t) => {
                let (mut inter, mut union) = (0usize, 0usize);
                for (&x, &y) in a.iter().zip(b) {
                    let (p, q) = (x > t, y > t);
                    inter += usize::from(p && q);
                    union += usize::from(p || q);
                }
                share(inter, union)
            }
            Task::Decision(t) => {
                let same = a
                    .iter()
                    .zip(b)
                    .filter(|&(&x, &y)| (x > t) == (y > t))
                    .count();
                share(same, a.len())
            }
        }
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv { (i, x) } else { (bi, bv) }
        })
        .0
}

/// Greedy CTC: repeats merged, blank (0) dropped.
fn ctc(steps: &[usize]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut prev = usize::MAX;
    for &s in steps {
        if s != prev && s != 0 {
            out.push(s);
        }
        prev = s;
    }
    out
}

/// The worst output's value of `f`.
pub(crate) fn per_output(a: &[Vec<f32>], b: &[Vec<f32>], f: fn(&[f32], &[f32]) -> f64) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f(x, y))
        .fold(f64::INFINITY, f64::min)
}

/// Cosine similarity (1 for two zero vectors, 0 when only one is zero).
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        dot / (aa.sqrt() * bb.sqrt())
    }
}

/// SNR of `b` against `a` in dB (infinite when identical).
pub(crate) fn snr_db(a: &[f32], b: &[f32]) -> f64 {
    let (mut s, mut n) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        s += (x as f64).powi(2);
        n += (x as f64 - y as f64).powi(2);
    }
    if n == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (s / n).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_metrics_match_hand_computed_values() {
        // Two rows of three classes: the first agrees, the second does not.
        let a = [0.1, 0.9, 0.0, 0.8, 0.1, 0.1];
        let b = [0.2, 0.7, 0.1, 0.1, 0.1, 0.8];
        let rows = [vec![2, 3]];
        assert_eq!(Task::Top1.measure(&a, &b, &rows, false), 0.5);
        // Masks > 0.3: a = {1, 3}, b = {1, 5}: 1 shared of 3.
        let iou = Task::Iou(0.3).measure(&a, &b, &rows, false);
        assert!((iou - 1.0 / 3.0).abs() < 1e-12);
        // Sides of 0.5: positions 1 agree (both above), 3 and 5 differ: 4 of 6 agree.
        let decision = Task::Decision(0.5).measure(&a, &b, &rows, false);
        assert!((decision - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(ctc(&[0, 3, 3, 0, 3, 5, 5, 0]), vec![3, 3, 5]);
        // CTC on [2 sequences, 2 steps, 2 classes]: a = [1 1 | 0 1] → "1", "1";
        // b = [1 0 | 0 1] → "1", "1": both sequences agree.
        let a = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        let b = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        assert_eq!(Task::Ctc.measure(&a, &b, &[vec![2, 2, 2]], false), 1.0);
        // Integer labels: rows [1 1 2] and [1 2 2] both decode to "1 2".
        let (a, b) = (
            [1.0, 1.0, 2.0, 3.0, 0.0, 3.0],
            [1.0, 2.0, 2.0, 3.0, 3.0, 0.0],
        );
        assert_eq!(Task::Ctc.measure(&a, &b, &[vec![2, 3]], true), 0.5);
        // SNR: signal power 1, noise power 0.01 → 20 dB; identical outputs are capped.
        assert!((snr_db(&[1.0, -1.0], &[1.1, -0.9]) - 20.0).abs() < 1e-5);
        let same = vec![vec![1.0f32, 2.0]];
        let layout = Layout::default();
        assert_eq!(
            Criterion::MeanSnrDb.measure(&same, &same, &layout),
            SNR_CAP_DB
        );
    }

    #[test]
    fn criteria_parse_and_refuse_by_name() {
        assert_eq!(Criterion::parse("snr").unwrap().name(), "mean SNR dB");
        assert_eq!(
            Criterion::parse("iou:1").unwrap().name(),
            "iou>0.3 of output 1"
        );
        assert_eq!(
            Criterion::parse("decision:0:0.4").unwrap().name(),
            "decision>0.4 of output 0"
        );
        for bad in [
            "",
            "f1",
            "top1:x",
            "top1:0:0.5",
            "iou:0:NaN",
            "snr:1",
            "iou:0:0.3:1",
        ] {
            let e = Criterion::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        let e = Criterion::parse("top1:3").unwrap().check(2).unwrap_err();
        assert!(e.to_string().contains("2 output(s)"), "{e}");
    }
}
