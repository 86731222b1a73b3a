//! The Q/DQ ONNX that `calib` writes is accepted by TensorRT-RTX and builds an INT8 engine on
//! the CPU, with the seed decoder's three dynamic inputs and two optimization profiles; so
//! does its FP16 conversion.

use std::sync::{Arc, Mutex};

use calib::{Calibrator, Method, Model, Profile, Source};
use tensorrt_sys::{Builder, DataType, Library, Logger, Severity};
use test_support::synth::{seed_decoder, seed_profile, seed_samples};

/// Parses `model`, adds `profiles`, builds; returns the engine size and TensorRT's errors.
fn build(model: &Model, profiles: &[Profile]) -> (usize, Vec<String>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let logger = Logger::new(Severity::WARNING, move |s, m| {
        if s <= Severity::ERROR {
            sink.lock().unwrap().push(m.to_string())
        }
    })
    .unwrap();
    let lib = Library::load().unwrap();
    let builder = Builder::new(&lib, &logger).unwrap();
    let network = builder.network_from_onnx(&model.to_bytes(), None).unwrap();
    let names: Vec<String> = network
        .inputs()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["y_hat", "q", "dummy_input"]);
    assert!(
        network
            .inputs()
            .unwrap()
            .iter()
            .chain(&network.outputs().unwrap())
            .all(|t| t.data_type == DataType::FLOAT)
    );
    let mut config = builder.config().unwrap();
    for p in profiles {
        let mut profile = builder.profile().unwrap();
        for (name, r) in &p.inputs {
            profile.set(name, &r.min, &r.opt, &r.max).unwrap();
        }
        config.add_profile(&profile).unwrap();
    }
    config.set_optimization_level(0).unwrap();
    let size = builder.build_serialized(&network, &config).unwrap().len();
    let errors = errors.lock().unwrap().clone();
    (size, errors)
}

fn calibrated(
    profiles: &[Profile],
    shapes: &[(usize, usize, usize)],
) -> (Model, calib::Calibration) {
    let model = seed_decoder(1);
    let calibration = Calibrator::new(&model)
        .method(Method::Entropy)
        .profiles(profiles.to_vec())
        .run(&Source::Memory(seed_samples(5, shapes, 2)))
        .unwrap();
    (model, calibration)
}

#[test]
fn calibrated_seed_decoder_builds_an_int8_engine() {
    let profiles = [
        seed_profile([1, 1, 2], [4, 8, 8], 2),
        seed_profile([2, 4, 4], [8, 16, 16], 2),
    ];
    let (model, calibration) =
        calibrated(&profiles, &[(1, 4, 4), (2, 8, 8), (4, 16, 16), (3, 12, 10)]);
    let (size, errors) = build(
        &calibration.apply(&calib::Prepared::new(&model)).unwrap(),
        &profiles,
    );
    assert!(size > 1000);
    assert!(errors.is_empty(), "TensorRT reported errors: {errors:?}");
}

/// The FP16 conversion (`calib::fp16`) of the Q/DQ model, with its I/O kept in float32, also
/// builds: TensorRT-RTX is strongly typed and takes every precision from the ONNX.
#[test]
fn fp16_converted_qdq_model_builds() {
    let profiles = [seed_profile([1, 1, 2], [4, 8, 8], 2)];
    let (model, calibration) = calibrated(&profiles, &[(1, 4, 4), (2, 8, 8)]);
    let half = calib::fp16::convert(&calibration.apply(&calib::Prepared::new(&model)).unwrap());
    let (size, errors) = build(&half, &profiles);
    assert!(size > 1000);
    assert!(errors.is_empty(), "TensorRT reported errors: {errors:?}");
}
