//! Generates the seed decoder ONNX and its calibration samples (deterministically, from
//! `test_support::synth`), then declares the model with trt-build: one profile over batch sizes
//! 1..=4 and latent resolutions 4..=16, INT8 with entropy calibration.

use std::path::PathBuf;

use trt_build::{Int8, Method};

include!("src/seed.rs");

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let onnx = out.join("seed").join("seed_decoder.fp32.onnx");
    let data = out.join("seed").join("calibration");
    if let Err(e) = generate(&onnx, &data) {
        eprintln!("error occurred in example-app's build script: {e}");
        std::process::exit(1);
    }
    println!("cargo:rerun-if-changed=src/seed.rs");

    let [batch, latent] = [0, 1].map(|k| PROFILE.map(|p| [p.0, p.1][k] as i64));
    let profile = test_support::synth::seed_profile(batch, latent, CROP as i64);
    let mut build = trt_build::Builder::new();
    build
        .model("seed_decoder", &onnx)
        .profile(profile)
        // Auto: the method with the best accuracy on the held-out samples, and a target that
        // keeps sensitive nodes in float if the choice alone does not reach it.
        .int8(
            Int8::from_path(&data)
                .method(Method::Auto)
                .min_cosine(0.999),
        );
    build.build();
}

fn generate(onnx: &std::path::Path, data: &std::path::Path) -> Result<(), calib::Error> {
    let model = test_support::synth::seed_decoder(MODEL_SEED);
    let bytes = model.to_bytes();
    if std::fs::read(onnx).ok().as_deref() != Some(&bytes[..]) {
        model.save(onnx, calib::WeightStorage::Inline)?;
    }
    for (i, sample) in test_support::synth::seed_samples(CALIBRATION_SEED, CALIBRATION_SHAPES, CROP)
        .iter()
        .enumerate()
    {
        sample.save_npy_dir(&data.join(format!("sample-{i:03}")))?;
    }
    Ok(())
}
