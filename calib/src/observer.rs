//! Observers: from the values a tensor took during calibration to its clipping threshold
//! (`amax`); the INT8 scale is `amax / 127`.
//!
//! All observers are symmetric (zero point 0) and work on `|x|`:
//!
//! - [`Method::MinMax`]: the largest `|x|` seen.
//! - [`Method::Percentile`]: the `p`-th percentile of `|x|` from the histogram.
//! - [`Method::Entropy`]: TensorRT's entropy calibration: the threshold whose 128-level
//!   quantized distribution has the smallest KL divergence from the observed one.
//! - [`Method::Mse`]: the threshold minimising the expected squared quantization error.
//!
//! Statistics stream: a [`TensorStats`] holds the running `max |x|` and a fixed-size histogram.
//! Histograms use one bin range per tensor for every sample, whatever its shape: a first pass
//! finds `max |x|`, a second fills bins over `[0, max |x|]`. Both are merged with `max` and
//! integer sums, so the result does not depend on sample order or thread count.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How thresholds are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Method {
    /// Largest absolute value.
    MinMax,
    /// Percentile of the absolute values, e.g. `99.99`.
    Percentile {
        /// Percentile in `(0, 100]`.
        percentile: f64,
    },
    /// KL divergence (TensorRT's entropy calibrator).
    Entropy,
    /// Minimum mean squared error.
    Mse,
    /// Chosen automatically: every method's thresholds come from the same statistics, and the
    /// one with the best held-out metric wins (see `calib::tune`); MSE without held-out data.
    #[default]
    Auto,
}

impl Method {
    /// The methods [`Method::Auto`] chooses from, in the order tried (ties keep the earlier).
    pub const AUTO_CANDIDATES: [Method; 4] = [
        Method::Mse,
        Method::Entropy,
        Method::Percentile { percentile: 99.99 },
        Method::MinMax,
    ];

    /// Whether the method needs histograms (a second pass).
    pub fn needs_histogram(self) -> bool {
        !matches!(self, Method::MinMax)
    }

    /// Parses `minmax`, `entropy`, `mse`, `percentile` (99.99) or `percentile:99.9`.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] for anything else or a percentile outside `(0, 100]`.
    pub fn parse(text: &str) -> Result<Method> {
        let lower = text.to_ascii_lowercase();
        let method = match lower.as_str() {
            "minmax" | "max" => Method::MinMax,
            "entropy" | "kl" => Method::Entropy,
            "mse" => Method::Mse,
            "auto" => Method::Auto,
            "percentile" => Method::Percentile { percentile: 99.99 },
            other => match other
                .strip_prefix("percentile:")
                .and_then(|p| p.parse::<f64>().ok())
            {
                Some(percentile) => Method::Percentile { percentile },
                None => {
                    return Err(Error::options(format!(
                        "unknown method '{text}': use auto, minmax, percentile[:P], entropy or mse"
                    )));
                }
            },
        };
        method.check()?;
        Ok(method)
    }

    /// Checks parameters.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] for a percentile outside `(0, 100]`.
    pub fn check(self) -> Result<()> {
        if let Method::Percentile { percentile } = self
            && !(percentile > 0.0 && percentile <= 100.0)
        {
            return Err(Error::options(format!(
                "percentile {percentile} is outside (0, 100]"
            )));
        }
        Ok(())
    }

    /// Name as accepted by [`Method::parse`].
    pub fn name(self) -> String {
        match self {
            Method::MinMax => "minmax".into(),
            Method::Percentile { percentile } => format!("percentile:{percentile}"),
            Method::Entropy => "entropy".into(),
            Method::Mse => "mse".into(),
            Method::Auto => "auto".into(),
        }
    }
}

/// Number of histogram bins (TensorRT's entropy calibrator uses 2048).
pub const DEFAULT_BINS: usize = 2048;

/// Histogram sizes accepted (entropy calibration is quadratic in the bin count).
pub const BINS_RANGE: std::ops::RangeInclusive<usize> = 128..=65536;

/// Streaming statistics of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorStats {
    /// Largest `|x|` seen.
    pub amax: f32,
    /// Number of values seen.
    pub count: u64,
    /// Histogram of `|x|` over `[0, range]` (empty until [`TensorStats::with_histogram`]).
    pub bins: Vec<u64>,
    /// Upper edge of the histogram.
    pub range: f32,
    /// Values that were infinite or NaN (they never enter the range or histogram).
    pub non_finite: u64,
}

impl TensorStats {
    /// No values yet.
    pub fn new() -> Self {
        TensorStats {
            amax: 0.0,
            count: 0,
            bins: Vec::new(),
            range: 0.0,
            non_finite: 0,
        }
    }

    /// Prepares a histogram of `bins` bins over `[0, range]` (range from the first pass).
    pub fn with_histogram(range: f32, bins: usize) -> Self {
        TensorStats {
            amax: 0.0,
            count: 0,
            bins: vec![0; bins],
            range,
            non_finite: 0,
        }
    }

    /// Adds values.
    pub fn observe(&mut self, values: &[f32]) {
        let mut amax = self.amax;
        let mut non_finite = 0u64;
        for &v in values {
            if v.is_finite() {
                amax = amax.max(v.abs());
            } else {
                non_finite += 1;
            }
        }
        self.amax = amax;
        self.non_finite += non_finite;
        self.count += values.len() as u64;
        if !self.bins.is_empty() && self.range > 0.0 {
            let n = self.bins.len();
            let per_unit = n as f32 / self.range;
            for &v in values.iter().filter(|v| v.is_finite()) {
                let b = ((v.abs() * per_unit) as usize).min(n - 1);
                self.bins[b] += 1;
            }
        } else if !self.bins.is_empty() {
            self.bins[0] += values.len() as u64;
        }
    }

    /// Merges another tensor's statistics (same histogram layout). Commutative and associative.
    pub fn merge(&mut self, other: &TensorStats) {
        self.amax = self.amax.max(other.amax);
        self.count += other.count;
        self.non_finite += other.non_finite;
        if self.bins.len() == other.bins.len() {
            for (a, b) in self.bins.iter_mut().zip(&other.bins) {
                *a += b;
            }
        }
    }

    /// The threshold chosen by `method`.
    pub fn threshold(&self, method: Method) -> f32 {
        if self.amax == 0.0 || self.count == 0 {
            return 0.0;
        }
        if !method.needs_histogram() || self.bins.is_empty() || self.range <= 0.0 {
            return self.amax;
        }
        let width = self.range / self.bins.len() as f32;
        let t = match method {
            Method::MinMax => self.amax,
            Method::Percentile { percentile } => {
                percentile_threshold(&self.bins, percentile) * width
            }
            Method::Entropy => entropy_threshold(&self.bins) * width,
            Method::Mse | Method::Auto => mse_threshold(&self.bins, width),
        };
        t.min(self.amax).max(f32::MIN_POSITIVE)
    }
}

impl Default for TensorStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Upper edge (in bins) below which `percentile` % of the mass lies.
fn percentile_threshold(bins: &[u64], percentile: f64) -> f32 {
    let total: u64 = bins.iter().sum();
    let target = (total as f64 * percentile / 100.0).ceil() as u64;
    let mut cum = 0u64;
    for (i, &c) in bins.iter().enumerate() {
        cum += c;
        if cum >= target {
            return (i + 1) as f32;
        }
    }
    bins.len() as f32
}

/// TensorRT's entropy calibration, as NVIDIA's reference implementation
/// (pytorch-quantization's `_compute_amax_entropy`) does it:
///
/// - the first bin is replaced by the second (a ReLU's spike of exact zeros would otherwise
///   dominate the divergence);
/// - for every candidate threshold of `i` bins (`i` from 128 to all bins), the reference
///   distribution is `bins[..i]` with the clipped tail added to its last bin; the candidate is
///   `bins[..i]` merged into 128 levels, each level spread evenly over its non-empty bins;
/// - the candidate with the smallest KL divergence wins (the largest such `i` on ties); a
///   reference bin with mass where the candidate has none makes the divergence infinite.
///
/// Returns the threshold in bins.
fn entropy_threshold(bins: &[u64]) -> f32 {
    const LEVELS: usize = 128;
    let n = bins.len();
    if n <= LEVELS {
        return n as f32;
    }
    let mut bins = bins.to_vec();
    bins[0] = bins[1];
    let mut best = (f64::INFINITY, n);
    let mut level_of = vec![0usize; n];
    let mut reference = vec![0f64; n];
    let mut candidate = vec![0f64; n];
    let mut tail: u64 = 0;
    // Walk candidates from the top so the tail sum is incremental.
    let mut tails = vec![0u64; n + 1];
    for i in (0..n).rev() {
        tail += bins[i];
        tails[i] = tail;
    }
    for i in LEVELS..=n {
        let mut sums = [0f64; LEVELS];
        let mut counts = [0usize; LEVELS];
        for j in 0..i {
            let level = (j * LEVELS / i).min(LEVELS - 1);
            level_of[j] = level;
            if bins[j] > 0 {
                sums[level] += bins[j] as f64;
                counts[level] += 1;
            }
        }
        for j in 0..i {
            reference[j] = bins[j] as f64;
            let l = level_of[j];
            candidate[j] = if bins[j] > 0 {
                sums[l] / counts[l] as f64
            } else {
                0.0
            };
        }
        reference[i - 1] += tails[i] as f64;
        let kl = kl_divergence(&reference[..i], &candidate[..i]);
        if kl <= best.0 {
            best = (kl, i);
        }
    }
    best.1 as f32
}

/// KL(p || q) of two unnormalised histograms; infinite where `p > 0` and `q == 0`.
fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp == 0.0 || sq == 0.0 {
        return f64::INFINITY;
    }
    let mut kl = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        if a > 0.0 {
            if b == 0.0 {
                return f64::INFINITY;
            }
            let (pa, qb) = (a / sp, b / sq);
            kl += pa * (pa / qb).ln();
        }
    }
    kl
}

/// Threshold (in value units) minimising the expected squared error of symmetric INT8
/// quantize-dequantize, evaluated on bin centres.
fn mse_threshold(bins: &[u64], width: f32) -> f32 {
    let n = bins.len();
    let centers: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5) * width as f64).collect();
    let mut best = (f64::INFINITY, n);
    let first = (n / 16).max(1);
    for i in first..=n {
        let amax = i as f64 * width as f64;
        let scale = amax / 127.0;
        let mut err = 0.0;
        for (j, &c) in bins.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let x = centers[j];
            let q = (x / scale).round_ties_even().min(127.0) * scale;
            err += c as f64 * (x - q) * (x - q);
        }
        if err < best.0 {
            best = (err, i);
        }
    }
    best.1 as f32 * width
}

/// Quantizes one value to INT8 with a symmetric scale: divide, round half to even, clamp.
pub fn quantize(x: f32, scale: f32, min: i32) -> i8 {
    (x / scale).round_ties_even().clamp(min as f32, 127.0) as i8
}

/// Scale for a threshold (`amax / 127`), 1 for an all-zero tensor.
pub fn scale_for(amax: f32) -> f32 {
    if amax > 0.0 && amax.is_finite() {
        amax / 127.0
    } else {
        1.0
    }
}
