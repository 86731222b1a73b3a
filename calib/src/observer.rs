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
//! Statistics stream: a [`TensorStats`] holds the running `max |x|` and a fixed-size histogram
//! of `|x|`, filled in **one pass** over the samples: the histogram's range is the smallest
//! power of two above `max |x|` so far and widens by powers of two (merging bins exactly) when
//! a larger value arrives. Statistics merge with `max` and integer sums, so the result does
//! not depend on sample order or thread count. The histogram keeps [`OVERSAMPLING`] times the
//! requested bins; thresholds are chosen on it resampled to the requested bins over
//! `[0, max |x|]`, TensorRT's formulation (2048 bins by default).

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

    /// Whether the method needs histograms.
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

/// The streaming histogram keeps this many times the requested bins over its power-of-two
/// range, so that resampling it to the requested bins over `[0, max |x|]` (TensorRT's
/// formulation) splits each of its bins across at most two target bins.
pub const OVERSAMPLING: usize = 4;

/// Histogram sizes accepted (entropy calibration is quadratic in the bin count).
pub const BINS_RANGE: std::ops::RangeInclusive<usize> = 128..=65536;

/// Streaming statistics of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorStats {
    /// Largest `|x|` seen.
    pub amax: f32,
    /// Number of values seen.
    pub count: u64,
    /// Histogram of `|x|` over `[0, range)`, [`OVERSAMPLING`] times the requested bins (empty
    /// without [`TensorStats::with_histogram`]).
    pub bins: Vec<u64>,
    /// Upper edge of the histogram: 0 before any non-zero value, then the smallest power of
    /// two above `amax`.
    pub range: f32,
    /// Values that were infinite or NaN (they never enter the range or histogram).
    pub non_finite: u64,
}

/// The smallest power of two strictly above `x` (finite, > 0); `f32::INFINITY` past the
/// largest one.
fn power_of_two_above(x: f32) -> f32 {
    let mut r = 2f32.powi(x.log2().floor() as i32).max(f32::from_bits(1));
    while r <= x {
        r *= 2.0;
    }
    while r.is_finite() && r / 2.0 > x {
        r /= 2.0;
    }
    r
}

impl TensorStats {
    /// No values yet, and no histogram (enough for [`Method::MinMax`]).
    pub fn new() -> Self {
        TensorStats {
            amax: 0.0,
            count: 0,
            bins: Vec::new(),
            range: 0.0,
            non_finite: 0,
        }
    }

    /// No values yet, with a histogram whose range follows the data; thresholds are chosen
    /// on `bins` bins over `[0, max |x|]`.
    pub fn with_histogram(bins: usize) -> Self {
        TensorStats {
            bins: vec![0; bins.max(1) * OVERSAMPLING],
            ..TensorStats::new()
        }
    }

    /// The histogram resampled to `bins.len() / OVERSAMPLING` bins over `[0, amax]`, each
    /// streaming bin's count spread evenly over its width (the last one's ends at `amax`).
    fn resampled(&self) -> Vec<f64> {
        let n = (self.bins.len() / OVERSAMPLING).max(1);
        let mut out = vec![0f64; n];
        let fine = f64::from(self.range) / self.bins.len() as f64;
        let amax = f64::from(self.amax);
        let target = amax / n as f64;
        for (i, &c) in self.bins.iter().enumerate().filter(|(_, c)| **c > 0) {
            let lo = i as f64 * fine;
            let hi = ((i + 1) as f64 * fine).min(amax);
            if hi <= lo {
                out[((lo / target) as usize).min(n - 1)] += c as f64;
                continue;
            }
            let per_unit = c as f64 / (hi - lo);
            let mut at = lo;
            while at < hi {
                let t = ((at / target) as usize).min(n - 1);
                let end = if t == n - 1 {
                    hi
                } else {
                    ((t + 1) as f64 * target).min(hi)
                };
                out[t] += (end - at) * per_unit;
                if end <= at {
                    break;
                }
                at = end;
            }
        }
        out
    }

    /// Widens the histogram to `range` (a power of two, at least the current one): with
    /// both ranges powers of two, each new bin is exactly `2^k` old ones.
    fn widen(&mut self, range: f32) {
        if range <= self.range {
            return;
        }
        if self.range > 0.0 && range.is_finite() {
            let factor = (range / self.range) as usize;
            let n = self.bins.len();
            for i in 0..n {
                let (j, c) = (i / factor, self.bins[i]);
                self.bins[i] = 0;
                self.bins[j] += c;
            }
        } else if self.range > 0.0 {
            // Past the largest power of two: everything lands in the first bin.
            let total = self.bins.iter().sum();
            self.bins.iter_mut().for_each(|b| *b = 0);
            self.bins[0] = total;
        }
        self.range = range;
    }

    /// Adds values.
    ///
    /// The histogram is filled in the same pass: its range is the smallest power of two above
    /// the largest `|x|` so far, and when a larger value arrives the range doubles (or more)
    /// and bins merge. Bin edges of a power-of-two range are edges of every smaller one and
    /// `|x| · bins / range` scales exactly by powers of two, so a value lands in the same bin
    /// whichever range it was first counted under: the histogram does not depend on sample
    /// order or on how samples were split between threads.
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
        if self.bins.is_empty() {
            return;
        }
        if amax > 0.0 {
            self.widen(power_of_two_above(amax));
        }
        let n = self.bins.len();
        if self.range > 0.0 && self.range.is_finite() {
            let per_unit = n as f32 / self.range;
            for &v in values.iter().filter(|v| v.is_finite()) {
                let b = ((v.abs() * per_unit) as usize).min(n - 1);
                self.bins[b] += 1;
            }
        } else {
            self.bins[0] += values.len() as u64 - non_finite;
        }
    }

    /// Merges statistics of the same tensor (order-independent: max and sums, histograms
    /// brought to the wider of the two ranges first).
    pub fn merge(&mut self, other: &TensorStats) {
        self.amax = self.amax.max(other.amax);
        self.count += other.count;
        self.non_finite += other.non_finite;
        if self.bins.len() == other.bins.len() && !self.bins.is_empty() {
            let mut other = other.clone();
            let range = self.range.max(other.range);
            self.widen(range);
            other.widen(range);
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
        if !method.needs_histogram()
            || self.bins.is_empty()
            || self.range <= 0.0
            || !self.range.is_finite()
        {
            return self.amax;
        }
        let bins = self.resampled();
        let width = self.amax / bins.len() as f32;
        let t = match method {
            Method::MinMax => self.amax,
            Method::Percentile { percentile } => percentile_threshold(&bins, percentile) * width,
            Method::Entropy => entropy_threshold(&bins) * width,
            Method::Mse | Method::Auto => mse_threshold(&bins, width),
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
fn percentile_threshold(bins: &[f64], percentile: f64) -> f32 {
    let total: f64 = bins.iter().sum();
    let target = total * percentile / 100.0;
    let mut cum = 0f64;
    for (i, &c) in bins.iter().enumerate() {
        cum += c;
        if cum >= target * (1.0 - 1e-12) {
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
fn entropy_threshold(bins: &[f64]) -> f32 {
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
    let mut tail = 0f64;
    // Walk candidates from the top so the tail sum is incremental.
    let mut tails = vec![0f64; n + 1];
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
            if bins[j] > 0.0 {
                sums[level] += bins[j];
                counts[level] += 1;
            }
        }
        for j in 0..i {
            reference[j] = bins[j];
            let l = level_of[j];
            candidate[j] = if bins[j] > 0.0 {
                sums[l] / counts[l] as f64
            } else {
                0.0
            };
        }
        reference[i - 1] += tails[i];
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
fn mse_threshold(bins: &[f64], width: f32) -> f32 {
    let n = bins.len();
    let centers: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5) * width as f64).collect();
    let mut best = (f64::INFINITY, n);
    let first = (n / 16).max(1);
    for i in first..=n {
        let amax = i as f64 * width as f64;
        let scale = amax / 127.0;
        let mut err = 0.0;
        for (j, &c) in bins.iter().enumerate() {
            if c == 0.0 {
                continue;
            }
            let x = centers[j];
            let q = (x / scale).round_ties_even().min(127.0) * scale;
            err += c * (x - q) * (x - q);
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
