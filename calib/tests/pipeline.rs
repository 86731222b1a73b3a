//! Calibration of the seed decoder end to end on the CPU: placement, scales, Q/DQ rewrite,
//! determinism and accuracy. Models and samples come from `test_support::synth` (generated in code).

use calib::{Calibrator, Method, Profile, Source, report};
use test_support::synth::{seed_decoder, seed_profile, seed_samples};

fn profile() -> Profile {
    seed_profile([1, 2, 4], [4, 8, 16], 2)
}

fn samples() -> Vec<calib::Sample> {
    seed_samples(
        11,
        &[(1, 4, 4), (2, 8, 8), (4, 16, 16), (1, 6, 10), (3, 12, 5)],
        2,
    )
}

#[test]
fn seed_decoder_placement_follows_the_rules() {
    let model = seed_decoder(1);
    let placement = calib::qdq::place(&calib::Prepared::new(&model), &Default::default()).unwrap();
    let acts = placement.activation_tensors();
    // Inputs of Conv/ConvTranspose, plus the residual input of the Add after conv2.
    assert_eq!(acts, vec!["conv1.act", "res.act", "scaled", "up1.act"]);
    let up1 = placement
        .activations
        .iter()
        .find(|a| a.tensor == "up1.act")
        .unwrap();
    assert_eq!(
        up1.consumers.len(),
        2,
        "conv1 and the residual Add share one Q/DQ pair"
    );
    let weights: Vec<(&str, usize)> = placement
        .weights
        .iter()
        .map(|w| (w.initializer.as_str(), w.axis))
        .collect();
    assert_eq!(
        weights,
        vec![
            ("conv1.weight", 0),
            ("conv2.weight", 0),
            ("up1.weight", 1),
            ("up2.weight", 1)
        ]
    );
}

#[test]
fn exclusions_keep_nodes_in_float() {
    let model = seed_decoder(1);
    let c = Calibrator::new(&model)
        .exclude("conv1")
        .exclude("ConvTranspose");
    let placement =
        calib::qdq::place(&calib::Prepared::new(&model), &c_exclusions(&model)).unwrap();
    drop(c);
    assert_eq!(placement.activation_tensors(), vec!["conv1.act", "up1.act"]);
    assert_eq!(placement.weights.len(), 1);
    assert!(
        placement
            .skipped
            .iter()
            .any(|(n, why)| n == "conv1" && why == "excluded")
    );
}

fn c_exclusions(model: &calib::Model) -> calib::Exclusions {
    let mut e = calib::Exclusions::default();
    e.add(model, "conv1");
    e.add(model, "ConvTranspose");
    e
}

#[test]
fn calibration_is_deterministic_and_accurate() {
    let model = seed_decoder(1);
    let source = Source::Memory(samples());
    let run = |threads: usize| {
        Calibrator::new(&model)
            .method(Method::Entropy)
            .profile(profile())
            .threads(threads)
            .run(&source)
            .unwrap()
    };
    let a = run(2);
    let b = run(1);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(a.scales.len(), 4);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let qa = a.apply(&calib::Prepared::new(&model)).unwrap().to_bytes();
    let qb = b.apply(&calib::Prepared::new(&model)).unwrap().to_bytes();
    assert_eq!(qa, qb, "the Q/DQ ONNX differs between runs");

    let qdq = a.apply(&calib::Prepared::new(&model)).unwrap();
    assert_eq!(
        qdq.graph()
            .node
            .iter()
            .filter(|n| n.op_type == "QuantizeLinear")
            .count(),
        4
    );
    assert_eq!(
        qdq.graph()
            .node
            .iter()
            .filter(|n| n.op_type == "DequantizeLinear")
            .count(),
        8
    );
    let held_out = seed_samples(99, &[(2, 8, 8), (1, 12, 12)], 1);
    let report = report::compare_samples(&model, &qdq, &held_out).unwrap();
    let x = &report.outputs[0];
    assert_eq!(x.name, "x_hat");
    assert!(x.cosine > 0.99, "{}", report.table());
    assert!(x.snr_db > 20.0, "{}", report.table());
}
