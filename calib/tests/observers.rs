//! Observers and thresholds: closed-form references (uniform, Gaussian quantiles), spikes
//! with tails, merging order, rounding and method parsing.

use calib::observer::*;
use test_support::synth::Rng;

fn one_pass(values: &[f32]) -> TensorStats {
    let mut s = TensorStats::with_histogram(DEFAULT_BINS);
    s.observe(values);
    s
}

#[test]
fn minmax_is_the_largest_absolute_value() {
    let s = one_pass(&[0.5, -3.25, 2.0, 0.0]);
    assert_eq!(s.threshold(Method::MinMax), 3.25);
}

#[test]
fn uniform_values_keep_almost_their_full_range() {
    let mut rng = Rng::new(1);
    let v: Vec<f32> = (0..200_000).map(|_| rng.uniform() * 2.0 - 1.0).collect();
    let s = one_pass(&v);
    // For U(-1, 1), |x| is U(0, 1): the p-th percentile is p/100.
    let p = s.threshold(Method::Percentile { percentile: 99.0 });
    assert!((p - 0.99).abs() < 0.005, "{p}");
    // Nothing to clip: entropy and MSE stay near the top of the range.
    assert!(
        s.threshold(Method::Entropy) > 0.9,
        "{}",
        s.threshold(Method::Entropy)
    );
    assert!(
        s.threshold(Method::Mse) > 0.9,
        "{}",
        s.threshold(Method::Mse)
    );
}

#[test]
fn gaussian_percentile_matches_the_normal_quantile() {
    let mut rng = Rng::new(2);
    let v: Vec<f32> = (0..400_000).map(|_| rng.normal()).collect();
    let s = one_pass(&v);
    // P(|Z| <= 2.5758) = 0.99 for a standard normal.
    let p = s.threshold(Method::Percentile { percentile: 99.0 });
    assert!((p - 2.5758).abs() < 0.05, "{p}");
    // Entropy and MSE keep a Gaussian's body; MSE also clips its far tail.
    let e = s.threshold(Method::Entropy);
    let m = s.threshold(Method::Mse);
    assert!(e > 2.5 && e <= s.amax, "entropy {e}, amax {}", s.amax);
    assert!(m > 2.5 && m < s.amax, "mse {m}, amax {}", s.amax);
}

#[test]
fn a_spike_plus_tail_is_clipped_by_entropy_and_percentile_but_not_by_max() {
    // Laplace: a sharp spike at zero and an exponential tail (|x| ~ Exp(1)).
    let mut rng = Rng::new(3);
    let v: Vec<f32> = (0..200_000)
        .map(|_| {
            let e = -(1.0 - rng.uniform()).ln();
            if rng.uniform() < 0.5 { e } else { -e }
        })
        .collect();
    let s = one_pass(&v);
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert_eq!(s.threshold(Method::MinMax), max);
    // The 99.99th percentile of Exp(1) is ln(10^4) = 9.21.
    let p = s.threshold(Method::Percentile { percentile: 99.99 });
    assert!((p - 9.21).abs() < 0.6, "percentile {p}");
    assert!(p < max, "percentile {p} must clip below max {max}");
    let e = s.threshold(Method::Entropy);
    assert!(
        e < 0.8 * max && e > 2.0,
        "entropy {e} must clip the tail (max {max}) but keep the spike"
    );
}

#[test]
fn merging_is_order_independent() {
    let mut rng = Rng::new(4);
    // Chunks of very different ranges, so that histograms widen while merging.
    let chunks: Vec<Vec<f32>> = (0..5)
        .map(|i| {
            (0..1000 + i * 37)
                .map(|_| rng.normal() * [0.01, 3.0, 0.3, 40.0, 1.0][i])
                .collect()
        })
        .collect();
    let merged = |order: &[usize]| {
        let mut total = TensorStats::with_histogram(512);
        for &i in order {
            let mut s = TensorStats::with_histogram(512);
            s.observe(&chunks[i]);
            total.merge(&s);
        }
        total
    };
    let a = merged(&[0, 1, 2, 3, 4]);
    let b = merged(&[4, 2, 0, 3, 1]);
    assert_eq!(a, b);
    assert_eq!(a.threshold(Method::Entropy), b.threshold(Method::Entropy));
}

#[test]
fn a_histogram_that_widens_while_streaming_equals_one_filled_at_once() {
    // One pass: the range starts at the first chunk's max and doubles as larger values come;
    // the bins must be exactly those of a histogram that saw every value at the final range.
    let mut rng = Rng::new(5);
    let chunks: Vec<Vec<f32>> = [0.001f32, 0.2, 7.0, 0.05, 300.0, 1.0]
        .iter()
        .map(|&scale| (0..2000).map(|_| rng.normal() * scale).collect())
        .collect();
    let all: Vec<f32> = chunks.iter().flatten().copied().collect();
    let at_once = one_pass(&all);
    let mut streamed = TensorStats::with_histogram(DEFAULT_BINS);
    for c in &chunks {
        streamed.observe(c);
    }
    assert_eq!(streamed, at_once);
    // The range is the smallest power of two above max |x|.
    let max = all.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        at_once.range > max && at_once.range / 2.0 <= max,
        "{} vs {max}",
        at_once.range
    );
    assert_eq!(at_once.range.log2().fract(), 0.0);
    // Zeros and a single value at an exact power of two stay in range.
    let mut s = TensorStats::with_histogram(64);
    s.observe(&[0.0, 0.0, 4.0]);
    let half = s.bins.len() / 2;
    assert_eq!((s.range, s.bins[0], s.bins[half]), (8.0, 2, 1));
    assert_eq!(s.threshold(Method::MinMax), 4.0);
}

#[test]
fn quantize_rounds_half_to_even_and_clamps() {
    assert_eq!(quantize(2.5, 1.0, -128), 2);
    assert_eq!(quantize(3.5, 1.0, -128), 4);
    assert_eq!(quantize(-500.0, 1.0, -128), -128);
    assert_eq!(quantize(-500.0, 1.0, -127), -127);
    assert_eq!(quantize(500.0, 1.0, -128), 127);
}

#[test]
fn methods_parse_and_reject_bad_percentiles() {
    assert_eq!(Method::parse("entropy").unwrap(), Method::Entropy);
    assert_eq!(
        Method::parse("percentile:99.9").unwrap(),
        Method::Percentile { percentile: 99.9 }
    );
    assert!(Method::parse("percentile:120").is_err());
    assert!(Method::parse("magic").is_err());
}
