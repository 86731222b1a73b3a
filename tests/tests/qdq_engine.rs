//! The Q/DQ ONNX that `calib` writes is accepted by TensorRT-RTX and builds an INT8 engine on
//! the CPU, with the seed decoder's three dynamic inputs and two optimization profiles.

use calib::synth::{seed_decoder, seed_samples};
use calib::{Calibrator, Method, Profile, ShapeRange, Source};
use tensorrt_sys::{Builder, Library, Logger, Severity};

#[test]
fn calibrated_seed_decoder_builds_an_int8_engine() {
    let model = seed_decoder(1);
    let small = Profile::new()
        .input(
            "y_hat",
            ShapeRange::new([1, 8, 4, 4], [1, 8, 8, 8], [2, 8, 8, 8]),
        )
        .input(
            "q",
            ShapeRange::new([1, 8, 1, 1], [1, 8, 1, 1], [2, 8, 1, 1]),
        )
        .input(
            "dummy_input",
            ShapeRange::new([1, 3, 12, 12], [1, 3, 30, 30], [2, 3, 32, 32]),
        );
    let large = Profile::new()
        .input(
            "y_hat",
            ShapeRange::new([2, 8, 8, 8], [4, 8, 16, 16], [4, 8, 16, 16]),
        )
        .input(
            "q",
            ShapeRange::new([2, 8, 1, 1], [4, 8, 1, 1], [4, 8, 1, 1]),
        )
        .input(
            "dummy_input",
            ShapeRange::new([2, 3, 28, 28], [4, 3, 62, 62], [4, 3, 64, 64]),
        );
    let samples = seed_samples(5, &[(1, 4, 4), (2, 8, 8), (4, 16, 16), (3, 12, 10)], 2);
    let calibration = Calibrator::new(&model)
        .method(Method::Entropy)
        .profiles(vec![small.clone(), large.clone()])
        .run(&Source::Memory(samples))
        .unwrap();
    let qdq = calibration.apply(&model).unwrap();

    let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = errors.clone();
    let logger = Logger::new(Severity::WARNING, move |s, m| {
        if s <= Severity::ERROR {
            sink.lock().unwrap().push(m.to_string())
        }
    })
    .unwrap();
    let lib = Library::load().unwrap();
    let builder = Builder::new(&lib, &logger).unwrap();
    let network = builder.network_from_onnx(&qdq.to_bytes(), None).unwrap();
    let names: Vec<String> = network.inputs().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["y_hat", "q", "dummy_input"]);
    let mut config = builder.config().unwrap();
    for p in [&small, &large] {
        let mut profile = builder.profile().unwrap();
        for (name, r) in &p.inputs {
            profile.set(name, &r.min, &r.opt, &r.max).unwrap();
        }
        config.add_profile(&profile).unwrap();
    }
    config.set_optimization_level(0).unwrap();
    let engine = builder.build_serialized(&network, &config).unwrap();
    assert!(engine.len() > 1000);
    assert!(
        errors.lock().unwrap().is_empty(),
        "TensorRT reported errors: {:?}",
        errors.lock().unwrap()
    );
}

/// The FP16 conversion (`calib::fp16`) of the Q/DQ model, with its I/O kept in float32, also
/// builds: TensorRT-RTX is strongly typed and takes every precision from the ONNX.
#[test]
fn fp16_converted_qdq_model_builds() {
    let model = seed_decoder(1);
    let profile = Profile::new()
        .input(
            "y_hat",
            ShapeRange::new([1, 8, 4, 4], [1, 8, 8, 8], [2, 8, 8, 8]),
        )
        .input(
            "q",
            ShapeRange::new([1, 8, 1, 1], [1, 8, 1, 1], [2, 8, 1, 1]),
        )
        .input(
            "dummy_input",
            ShapeRange::new([1, 3, 12, 12], [1, 3, 30, 30], [2, 3, 32, 32]),
        );
    let samples = seed_samples(5, &[(1, 4, 4), (2, 8, 8)], 2);
    let calibration = Calibrator::new(&model)
        .profile(profile.clone())
        .run(&Source::Memory(samples))
        .unwrap();
    let half = calib::fp16::convert(&calibration.apply(&model).unwrap());
    let logger = Logger::new(Severity::ERROR, |_, _| {}).unwrap();
    let lib = Library::load().unwrap();
    let builder = Builder::new(&lib, &logger).unwrap();
    let network = builder.network_from_onnx(&half.to_bytes(), None).unwrap();
    assert!(
        network
            .inputs()
            .iter()
            .all(|t| t.data_type == tensorrt_sys::DataType::FLOAT)
    );
    assert!(
        network
            .outputs()
            .iter()
            .all(|t| t.data_type == tensorrt_sys::DataType::FLOAT)
    );
    let mut config = builder.config().unwrap();
    let mut p = builder.profile().unwrap();
    for (name, r) in &profile.inputs {
        p.set(name, &r.min, &r.opt, &r.max).unwrap();
    }
    config.add_profile(&p).unwrap();
    config.set_optimization_level(0).unwrap();
    assert!(builder.build_serialized(&network, &config).unwrap().len() > 1000);
}
