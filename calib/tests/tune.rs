//! `Method::Auto` and the accuracy target on closed-form cases: a layer made sensitive by an
//! outlier channel is found and kept in float; Auto's choice equals the best fixed method's
//! held-out metric (measured independently by the report); a target that cannot be met fails
//! with the table.

use calib::tune::{Criterion, Target, TuneOptions, tune};
use calib::{Calibrator, DType, Exclusions, HostTensor, Method, Model, Sample, Source, report};
use test_support::synth::{GraphBuilder, Rng, tensor_f32};

/// `x: [N, 8]` → `mm1` (8→16) → Relu → `mm2` (16→4) → `y`. With `outlier`, channel 3 of the
/// hidden layer is 1000× larger than the others: one scale for the whole hidden tensor then
/// leaves the other channels a handful of INT8 levels, so `mm2` (which reads it) is the
/// sensitive node.
fn mlp(outlier: bool) -> Model {
    let mut rng = Rng::new(5);
    let mut w1: Vec<f32> = (0..8 * 16).map(|_| rng.normal() * 0.3).collect();
    if outlier {
        for k in 0..8 {
            w1[k * 16 + 3] *= 1000.0;
        }
    }
    let mut w2: Vec<f32> = (0..16 * 4).map(|_| rng.normal() * 0.3).collect();
    if outlier {
        // The outlier channel contributes little to y, so y depends on the small channels.
        for j in 0..4 {
            w2[3 * 4 + j] *= 0.0005;
        }
    }
    let mut g = GraphBuilder::new("mlp");
    g.input("x", DType::F32, test_support::dims!["N", 8])
        .output("y", DType::F32, test_support::dims!["N", 4])
        .initializer(tensor_f32("w1", &[8, 16], &w1))
        .initializer(tensor_f32("w2", &[16, 4], &w2))
        .node("mm1", "MatMul", &["x", "w1"], &["h"], vec![])
        .node("relu", "Relu", &["h"], &["r"], vec![])
        .node("mm2", "MatMul", &["r", "w2"], &["y"], vec![]);
    g.build()
}

fn samples(n: usize, seed: u64, spread: impl Fn(&mut Rng) -> f32) -> Vec<Sample> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            Sample::new(format!("s{i}")).with(
                "x",
                HostTensor::f32(vec![4, 8], (0..32).map(|_| spread(&mut rng)).collect()),
            )
        })
        .collect()
}

fn min_cosine(model: &Model, calibration: &calib::Calibration, held: &Source) -> f64 {
    let q = calibration.apply(&calib::Prepared::new(model)).unwrap();
    report::compare(model, &q, held)
        .unwrap()
        .outputs
        .iter()
        .map(|o| o.cosine)
        .fold(f64::INFINITY, f64::min)
}

/// The mean over outputs of each output's SNR (capped as Auto caps it), by the report.
fn mean_snr_db(model: &Model, calibration: &calib::Calibration, held: &Source) -> f64 {
    let q = calibration.apply(&calib::Prepared::new(model)).unwrap();
    let outputs = report::compare(model, &q, held).unwrap().outputs;
    outputs
        .iter()
        .map(|o| o.snr_db.min(calib::metric::SNR_CAP_DB))
        .sum::<f64>()
        / outputs.len() as f64
}

#[test]
fn the_layer_made_sensitive_by_an_outlier_channel_is_kept_in_float() {
    let model = mlp(true);
    let data = Source::Memory(samples(12, 1, |r| r.normal()));
    let held = Source::Memory(samples(4, 2, |r| r.normal()));
    let c = Calibrator::new(&model)
        .method(Method::MinMax)
        .run(&data)
        .unwrap();
    let before = min_cosine(&model, &c, &held);
    let options = TuneOptions {
        target: Some(Target::MinCosine(0.999)),
        max_float_share: 0.5,
        ..Default::default()
    };
    let (tuned, tuning) = tune(
        &calib::Prepared::new(&model),
        &c,
        &Exclusions::default(),
        &held,
        &options,
        &|_| {},
    )
    .unwrap();
    assert!(before < 0.999, "the outlier must hurt: {before}");
    assert_eq!(tuning.steps.len(), 1, "{}", tuning.table());
    assert_eq!(tuning.steps[0].node, "mm2", "{}", tuning.table());
    assert_eq!(tuning.steps[0].op_type, "MatMul");
    assert!(tuning.achieved >= 0.999, "{}", tuning.table());
    // The returned calibration is what was measured: the report agrees.
    let after = min_cosine(&model, &tuned, &held);
    assert!(
        (after - tuning.achieved).abs() < 1e-9,
        "{after} vs {}",
        tuning.achieved
    );
    let q = tuned.apply(&calib::Prepared::new(&model)).unwrap();
    assert!(
        q.graph()
            .node
            .iter()
            .any(|n| n.op_type == "MatMul" && n.input[0] == "r"),
        "mm2 reads its float input"
    );
    assert!(tuning.table().contains("mm2"));
    // Same inputs, same choices.
    let (_, again) = tune(
        &calib::Prepared::new(&model),
        &c,
        &Exclusions::default(),
        &held,
        &options,
        &|_| {},
    )
    .unwrap();
    assert_eq!(again.steps, tuning.steps);
}

/// Auto's held-out metric is the best fixed method's, measured independently per method, by
/// the worst output's cosine (`criterion`: `None`) or by the default mean SNR.
fn auto_equals_the_best_fixed_method(
    model: &Model,
    data: Vec<Sample>,
    held: Vec<Sample>,
    cosine: bool,
) -> String {
    let measure = if cosine { min_cosine } else { mean_snr_db };
    let (data, held) = (Source::Memory(data), Source::Memory(held));
    let auto = Calibrator::new(model)
        .method(Method::Auto)
        .run(&data)
        .unwrap();
    let (tuned, tuning) = tune(
        &calib::Prepared::new(model),
        &auto,
        &Exclusions::default(),
        &held,
        &TuneOptions {
            criterion: cosine.then_some(Criterion::MinCosine),
            ..Default::default()
        },
        &|_| {},
    )
    .unwrap();
    let mut best = (f64::NEG_INFINITY, String::new());
    for m in Method::AUTO_CANDIDATES {
        let c = Calibrator::new(model).method(m).run(&data).unwrap();
        let v = measure(model, &c, &held);
        let (_, listed) = tuning
            .candidates
            .iter()
            .find(|(n, _)| *n == m.name())
            .unwrap();
        assert!((v - listed).abs() < 1e-9, "{}: {v} vs {listed}", m.name());
        if v > best.0 {
            best = (v, m.name());
        }
    }
    assert!(
        (tuning.achieved - best.0).abs() < 1e-9,
        "{}",
        tuning.table()
    );
    assert_eq!(tuning.chosen, best.1, "{}", tuning.table());
    assert!((measure(model, &tuned, &held) - best.0).abs() < 1e-6);
    tuning.chosen
}

#[test]
fn auto_chooses_the_method_with_the_best_held_out_metric() {
    let model = mlp(false);
    // Bounded inputs without outliers: nothing to clip.
    let uniform = |r: &mut Rng| r.uniform() * 2.0 - 1.0;
    for cosine in [true, false] {
        auto_equals_the_best_fixed_method(
            &model,
            samples(12, 3, uniform),
            samples(4, 4, uniform),
            cosine,
        );
    }
    // Heavy tails in calibration (rare values 40× the rest): the plain maximum wastes the
    // INT8 range, so a clipping method wins.
    let heavy = |r: &mut Rng| {
        let v = r.normal();
        if r.uniform() < 0.002 { v * 40.0 } else { v }
    };
    for cosine in [true, false] {
        let chosen = auto_equals_the_best_fixed_method(
            &model,
            samples(40, 5, heavy),
            samples(6, 6, |r| r.normal()),
            cosine,
        );
        assert_ne!(chosen, "minmax", "clipping must win on heavy tails");
    }
}

#[test]
fn a_target_that_cannot_be_met_fails_with_the_table() {
    let model = mlp(true);
    let data = Source::Memory(samples(8, 1, |r| r.normal()));
    let held = Source::Memory(samples(2, 2, |r| r.normal()));
    let c = Calibrator::new(&model)
        .method(Method::MinMax)
        .run(&data)
        .unwrap();
    let options = TuneOptions {
        target: Some(Target::MinCosine(0.999)),
        max_float_share: 0.0,
        ..Default::default()
    };
    let e = tune(
        &calib::Prepared::new(&model),
        &c,
        &Exclusions::default(),
        &held,
        &options,
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("min cosine >= 0.999 is not met")
            && e.contains("0 of 2 quantized nodes in float")
            && e.contains("at most 0"),
        "{e}"
    );
    // Without held-out samples there is nothing to measure.
    let e = tune(
        &calib::Prepared::new(&model),
        &c,
        &Exclusions::default(),
        &Source::Memory(vec![]),
        &options,
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("held-out"), "{e}");
}

/// `x: [N, 8]` → MatMul → Softmax → MatMul → `y`: attention's shape in miniature.
fn softmax_mlp() -> Model {
    let mut rng = Rng::new(9);
    let w1: Vec<f32> = (0..8 * 16).map(|_| rng.normal() * 2.0).collect();
    let w2: Vec<f32> = (0..16 * 4).map(|_| rng.normal()).collect();
    let mut g = GraphBuilder::new("softmax_mlp");
    g.input("x", DType::F32, test_support::dims!["N", 8])
        .output("y", DType::F32, test_support::dims!["N", 4])
        .initializer(tensor_f32("w1", &[8, 16], &w1))
        .initializer(tensor_f32("w2", &[16, 4], &w2))
        .node("mm1", "MatMul", &["x", "w1"], &["h"], vec![])
        .node(
            "softmax",
            "Softmax",
            &["h"],
            &["p"],
            vec![test_support::synth::attr_int("axis", -1)],
        )
        .node("mm2", "MatMul", &["p", "w2"], &["y"], vec![]);
    g.build()
}

#[test]
fn auto_tries_minmax_on_softmax_outputs_and_ranks_by_the_criterion_asked_for() {
    let normal = |r: &mut Rng| r.normal();
    let (data, held) = (
        Source::Memory(samples(16, 11, normal)),
        Source::Memory(samples(4, 12, normal)),
    );
    let run = |model: &Model, criterion: Option<Criterion>| {
        let auto = Calibrator::new(model)
            .method(Method::Auto)
            .run(&data)
            .unwrap();
        tune(
            &calib::Prepared::new(model),
            &auto,
            &Exclusions::default(),
            &held,
            &TuneOptions {
                criterion,
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap()
        .1
    };
    // With a Softmax, every clipping method is also tried with the softmax output's full
    // range; the mixed candidate differs from the plain one (the output is clipped there).
    let t = run(&softmax_mlp(), None);
    assert_eq!(t.criterion, "mean SNR dB");
    let value = |name: &str| t.candidates.iter().find(|(n, _)| n == name).map(|c| c.1);
    for base in ["mse", "entropy", "percentile:99.99"] {
        let mixed =
            value(&format!("{base}+minmax-norm")).unwrap_or_else(|| panic!("{}", t.table()));
        assert!(mixed.is_finite());
    }
    assert!(
        ["mse", "entropy", "percentile:99.99"]
            .iter()
            .any(|b| value(&format!("{b}+minmax-norm")) != value(b)),
        "the mixing changed nothing:\n{}",
        t.table()
    );
    let best = t
        .candidates
        .iter()
        .map(|c| c.1)
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(t.achieved, best, "{}", t.table());
    // Without a Softmax or a normalization there is nothing to mix.
    let plain = run(&mlp(false), None);
    assert!(
        plain.candidates.iter().all(|(n, _)| !n.contains('+')),
        "{}",
        plain.table()
    );
    // A task metric: Auto ranks by arg-max agreement on output 0, and says so.
    let top1 = run(&softmax_mlp(), Some(Criterion::parse("top1").unwrap()));
    assert_eq!(top1.criterion, "top1 of output 0");
    let best = top1
        .candidates
        .iter()
        .map(|c| c.1)
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(top1.achieved, best, "{}", top1.table());
    assert!((0.0..=1.0).contains(&top1.achieved));
}
