//! The example application's data step: `cargo run -p test-support --bin example-data -- DIR`
//! writes what a real application would have on disk before `cargo build`: the FP32 seed
//! decoder (`seed_decoder.fp32.onnx`), its calibration samples (`calibration/sample-NNN/`),
//! the inputs of the demonstration runs with the FP32 model's output for each
//! (`runs/run-N/inputs/`, `runs/run-N/reference/x_hat.npy`) and one out-of-profile call
//! (`out-of-profile/`). Deterministic; files whose bytes are unchanged are not rewritten, so
//! Cargo does not rebuild the example.
//!
//! The scenario's constants (seeds, profile, shapes) are the example's own
//! `example-app/src/seed.rs`, included here so they exist once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use calib::{CpuModel, HostTensor, Sample};
use test_support::synth::{seed_decoder, seed_samples};

#[allow(dead_code)] // The profile constants are the build script's.
mod seed {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../example-app/src/seed.rs"
    ));
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: example-data DIR");
        return ExitCode::FAILURE;
    };
    match generate(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: example data in {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn generate(dir: &Path) -> Result<(), calib::Error> {
    let model = seed_decoder(seed::MODEL_SEED);
    let onnx = dir.join("seed_decoder.fp32.onnx");
    if std::fs::read(&onnx).ok() != Some(model.to_bytes()) {
        model.save(&onnx, calib::WeightStorage::Inline)?;
    }
    let calibration = seed_samples(seed::CALIBRATION_SEED, seed::CALIBRATION_SHAPES, seed::CROP);
    for (i, sample) in calibration.iter().enumerate() {
        sample.save_npy_dir(&dir.join("calibration").join(format!("sample-{i:03}")))?;
    }
    let reference = CpuModel::new(&model, &[])?;
    let out_of_profile = [(seed::PROFILE[2].0 + 1, 8, 8)];
    for (folder, shapes) in [
        ("runs", seed::RUNS),
        ("out-of-profile", &out_of_profile[..]),
    ] {
        for (i, sample) in seed_samples(seed::RUN_SEED, shapes, seed::CROP)
            .iter()
            .enumerate()
        {
            let run = dir.join(folder).join(format!("run-{i}"));
            sample.save_npy_dir(&run.join("inputs"))?;
            let x_hat = &reference.run(sample.id(), sample.inputs())?[0];
            let shape = x_hat.shape().to_vec();
            let values = calib::infer::to_f32(x_hat)?;
            Sample::new("reference")
                .with("x_hat", HostTensor::f32(shape, values))
                .save_npy_dir(&run.join("reference"))?;
        }
    }
    Ok(())
}
