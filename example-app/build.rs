//! Generates the seed decoder ONNX and its calibration samples (deterministically, from
//! `calib::synth`), then declares the model with trt-build: one profile over batch sizes
//! 1..=4 and latent resolutions 4..=16, INT8 with entropy calibration.

use std::path::PathBuf;

use trt_build::{Int8, Method, Profile, ShapeRange};

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

    let c = calib::synth::SEED_LATENT_CHANNELS;
    let up = calib::synth::SEED_UPSAMPLE;
    let [(n0, h0, w0), (n1, h1, w1), (n2, h2, w2)] =
        PROFILE.map(|(n, h, w)| (n as i64, h as i64, w as i64));
    let crop = CROP as i64;
    let image = |n: i64, h: i64, w: i64| [n, 3, up * h - crop, up * w - crop];
    let profile = Profile::new()
        .input(
            "y_hat",
            ShapeRange::new([n0, c, h0, w0], [n1, c, h1, w1], [n2, c, h2, w2]),
        )
        .input(
            "q",
            ShapeRange::new([n0, c, 1, 1], [n1, c, 1, 1], [n2, c, 1, 1]),
        )
        .input(
            "dummy_input",
            ShapeRange::new(image(n0, h0, w0), image(n1, h1, w1), image(n2, h2, w2)),
        );
    let mut build = trt_build::Builder::new();
    build
        .model("seed_decoder", &onnx)
        .profile(profile)
        .int8(Int8::from_path(&data).method(Method::Entropy));
    build.build();
}

fn generate(onnx: &std::path::Path, data: &std::path::Path) -> Result<(), calib::Error> {
    let model = calib::synth::seed_decoder(MODEL_SEED);
    let bytes = model.to_bytes();
    if std::fs::read(onnx).ok().as_deref() != Some(&bytes[..]) {
        model.save(onnx, calib::WeightStorage::Inline)?;
    }
    for (i, sample) in calib::synth::seed_samples(CALIBRATION_SEED, CALIBRATION_SHAPES, CROP)
        .iter()
        .enumerate()
    {
        sample.save_npy_dir(&data.join(format!("sample-{i:03}")))?;
    }
    Ok(())
}
