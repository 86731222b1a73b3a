//! Accuracy report: the FP32 model against the Q/DQ model (INT8 simulated by tract) on
//! held-out samples, for every output.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::data::{Sample, Source};
use crate::error::Result;
use crate::infer::{CpuModel, to_f32};
use crate::model::Model;

/// Agreement of one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputMetrics {
    /// Output name.
    pub name: String,
    /// Values compared.
    pub elements: u64,
    /// Largest absolute difference.
    pub max_abs_error: f64,
    /// Mean absolute difference.
    pub mean_abs_error: f64,
    /// Cosine similarity over all values.
    pub cosine: f64,
    /// Signal-to-noise ratio, `10 log10(Σ ref² / Σ (ref − q)²)`, in dB.
    pub snr_db: f64,
    /// Peak signal-to-noise ratio with the reference's value range as peak, in dB.
    pub psnr_db: f64,
    /// Fraction of rows whose arg-max agrees, for outputs that look like class scores
    /// (rank 2, last axis ≥ 2).
    pub top1_agreement: Option<f64>,
}

/// Agreement of every output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Samples compared.
    pub samples: usize,
    /// One entry per output.
    pub outputs: Vec<OutputMetrics>,
}

#[derive(Debug, Default, Clone)]
struct Acc {
    n: u64,
    sum_abs: f64,
    max_abs: f64,
    dot: f64,
    ref2: f64,
    cand2: f64,
    err2: f64,
    min: f64,
    max: f64,
    rows: u64,
    agree: u64,
    classes: bool,
}

impl Acc {
    fn add(&mut self, reference: &[f32], candidate: &[f32], shape: &[usize]) {
        if self.n == 0 {
            self.min = f64::INFINITY;
            self.max = f64::NEG_INFINITY;
        }
        for (&r, &c) in reference.iter().zip(candidate) {
            let (r, c) = (r as f64, c as f64);
            let d = (r - c).abs();
            self.n += 1;
            self.sum_abs += d;
            self.max_abs = self.max_abs.max(d);
            self.dot += r * c;
            self.ref2 += r * r;
            self.cand2 += c * c;
            self.err2 += d * d;
            self.min = self.min.min(r);
            self.max = self.max.max(r);
        }
        if shape.len() == 2 && shape[1] >= 2 {
            self.classes = true;
            let k = shape[1];
            for (r, c) in reference.chunks(k).zip(candidate.chunks(k)) {
                let argmax = |v: &[f32]| {
                    v.iter()
                        .enumerate()
                        .fold(0, |b, (i, x)| if *x > v[b] { i } else { b })
                };
                self.rows += 1;
                self.agree += u64::from(argmax(r) == argmax(c));
            }
        }
    }

    fn finish(&self, name: &str) -> OutputMetrics {
        let db = |signal: f64, noise: f64| {
            if noise == 0.0 {
                f64::INFINITY
            } else {
                10.0 * (signal / noise).log10()
            }
        };
        let peak = (self.max - self.min).max(f64::MIN_POSITIVE);
        let mse = if self.n == 0 {
            0.0
        } else {
            self.err2 / self.n as f64
        };
        OutputMetrics {
            name: name.to_string(),
            elements: self.n,
            max_abs_error: self.max_abs,
            mean_abs_error: if self.n == 0 {
                0.0
            } else {
                self.sum_abs / self.n as f64
            },
            cosine: if self.ref2 == 0.0 || self.cand2 == 0.0 {
                0.0
            } else {
                self.dot / (self.ref2.sqrt() * self.cand2.sqrt())
            },
            snr_db: db(self.ref2, self.err2),
            psnr_db: db(peak * peak, mse),
            top1_agreement: self
                .classes
                .then(|| self.agree as f64 / self.rows.max(1) as f64),
        }
    }
}

/// Compares two models on samples.
///
/// # Errors
///
/// [`crate::Error::Cpu`] when either model fails on a sample.
pub fn compare_samples(reference: &Model, candidate: &Model, samples: &[Sample]) -> Result<Report> {
    accumulate(reference, candidate, samples.iter().cloned().map(Ok))
}

/// Compares two models on every sample of a source (loaded one at a time).
///
/// # Errors
///
/// As [`compare_samples`], plus the source's errors.
pub fn compare(reference: &Model, candidate: &Model, source: &Source) -> Result<Report> {
    let inputs = reference.inputs()?;
    let refs = source.list()?;
    accumulate(
        reference,
        candidate,
        refs.iter().map(|r| {
            let sample = source.load(r, &inputs)?;
            sample.validate(&inputs, &[])?;
            Ok(sample)
        }),
    )
}

fn accumulate(
    reference: &Model,
    candidate: &Model,
    samples: impl Iterator<Item = Result<Sample>>,
) -> Result<Report> {
    let mut a = CpuModel::new(reference, &[])?;
    let mut b = CpuModel::new(candidate, &[])?;
    a.release_memory_after_calls(true);
    b.release_memory_after_calls(true);
    let names = a.output_names().to_vec();
    let mut accs = vec![Acc::default(); names.len()];
    let mut count = 0;
    for sample in samples {
        let sample = sample?;
        if count == 0 {
            // Both models on one engine, so the report measures quantization alone.
            let sig = a.signature(sample.shapes());
            match (a.tract_runs(&sig), b.tract_runs(&sig)) {
                (Ok(()), Ok(())) => {
                    a.prepare(std::slice::from_ref(&sig))?;
                    b.prepare(std::slice::from_ref(&sig))?;
                }
                (Err(e), _) | (_, Err(e)) => {
                    let reason = e.to_string();
                    a.use_onnxruntime(&reason)?;
                    b.use_onnxruntime(&reason)?;
                }
            }
        }
        let (ra, rb) = (
            a.run(sample.id(), sample.inputs())?,
            b.run(sample.id(), sample.inputs())?,
        );
        for (i, acc) in accs.iter_mut().enumerate() {
            acc.add(&to_f32(&ra[i])?, &to_f32(&rb[i])?, ra[i].shape());
        }
        count += 1;
    }
    Ok(Report {
        samples: count,
        outputs: names.iter().zip(&accs).map(|(n, a)| a.finish(n)).collect(),
    })
}

impl Report {
    /// A short table for people.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<20} {:>12} {:>12} {:>10} {:>9} {:>9} {:>7}\n",
            "output", "max |err|", "mean |err|", "cosine", "SNR dB", "PSNR dB", "top-1"
        );
        for o in &self.outputs {
            let top1 = o
                .top1_agreement
                .map_or("-".to_string(), |t| format!("{:.1}%", t * 100.0));
            let _ = writeln!(
                s,
                "{:<20} {:>12.5} {:>12.5} {:>10.6} {:>9.2} {:>9.2} {:>7}",
                o.name, o.max_abs_error, o.mean_abs_error, o.cosine, o.snr_db, o.psnr_db, top1
            );
        }
        let _ = write!(s, "({} samples)", self.samples);
        s
    }
}
