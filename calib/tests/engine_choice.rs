//! Forcing the CPU engine (`set_engine_choice`, `--engine`, `TRT_CALIB_ENGINE`). The choice is
//! process-wide, so this file is a test binary of its own.

use calib::CpuModel;
use calib::infer::{EngineChoice, engine_choice, set_engine_choice, to_f32};
use test_support::synth::{seed_decoder, seed_samples};
use trt_cpu::onnxruntime as ort_engine;

#[test]
fn a_forced_engine_runs_the_model_and_both_engines_agree() {
    assert_eq!(
        "tract".parse::<EngineChoice>().unwrap(),
        EngineChoice::Tract
    );
    assert_eq!(
        "onnxruntime".parse::<EngineChoice>().unwrap(),
        EngineChoice::OnnxRuntime
    );
    let e = "gpu".parse::<EngineChoice>().unwrap_err();
    assert!(
        e.to_string()
            .contains("not one of auto, tract, onnxruntime"),
        "{e}"
    );

    let model = seed_decoder(1);
    let sample = &seed_samples(2, &[(2, 6, 5)], 1)[0];
    set_engine_choice(EngineChoice::Tract);
    assert_eq!(engine_choice().unwrap(), EngineChoice::Tract);
    let tract = CpuModel::new(&model, &[]).unwrap();
    let a = to_f32(&tract.run(sample.id(), sample.inputs()).unwrap()[0]).unwrap();
    assert_eq!(tract.engine_name(), Some("tract"));

    if let Err(why) = ort_engine::available() {
        eprintln!("SKIPPED the onnxruntime half: {why}");
        return;
    }
    set_engine_choice(EngineChoice::OnnxRuntime);
    let ort = CpuModel::new(&model, &[]).unwrap();
    let b = to_f32(&ort.run(sample.id(), sample.inputs()).unwrap()[0]).unwrap();
    assert_eq!(ort.engine_name(), Some("onnxruntime"));
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst <= 1e-4 * scale.max(1.0),
        "engines differ by {worst} (scale {scale})"
    );

    // Calibration observes graph inputs too: asked for as an output, an input comes back as
    // given (onnxruntime itself returns undefined values for it; found by `bench engines`).
    let observing = CpuModel::new(&model, &["y_hat".to_string()]).unwrap();
    let out = observing.run(sample.id(), sample.inputs()).unwrap();
    let y_hat = to_f32(out.last().unwrap()).unwrap();
    let given = calib::infer::to_f32(&sample.get("y_hat").unwrap().to_tract()).unwrap();
    assert_eq!(y_hat, given);
}
