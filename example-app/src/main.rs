//! The seed scenario end to end. `build.rs` calibrated the three-input decoder to INT8 and
//! built a TensorRT engine; this program loads the embedded model (TensorRT where a supported
//! GPU exists, else the CPU backend running the Q/DQ model), runs it on inputs of three
//! shapes read from `data/runs/`, and compares `x_hat` with the FP32 model's output saved
//! next to them.
//!
//! `--out-of-profile` runs one call with a batch size outside the profile, to show the
//! validation error (and exit non-zero).

#[allow(dead_code)] // Calibration constants are used by build.rs, which includes the same file.
mod seed;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ndarray::ArrayD;
use ndarray_npy::read_npy;

trt_runtime::include_engine!("seed_decoder");

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(std::env::args().any(|a| a == "--out-of-profile")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn npy(path: &Path) -> Result<ArrayD<f32>, String> {
    read_npy(path).map_err(|e| {
        format!(
            "{}: {e} (the example's data is written by `cargo xtask example`)",
            path.display()
        )
    })
}

fn run(out_of_profile: bool) -> Result<(), Box<dyn std::error::Error>> {
    let model = seed_decoder::load()?;
    let session = model.session();
    println!(
        "backend: {} ({})",
        session.backend(),
        session.backend_reason()
    );
    print!("{}", session.manifest());

    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    let (folder, runs) = if out_of_profile {
        ("out-of-profile", 1)
    } else {
        ("runs", seed::RUNS.len())
    };
    let (mut err2, mut count, mut lo, mut hi) = (0f64, 0usize, f64::INFINITY, f64::NEG_INFINITY);
    for i in 0..runs {
        let dir = data.join(folder).join(format!("run-{i}"));
        let input = |name: &str| npy(&dir.join("inputs").join(format!("{name}.npy")));
        let (y_hat, q, dummy) = (input("y_hat")?, input("q")?, input("dummy_input")?);
        let start = Instant::now();
        let out = model.run(&seed_decoder::Inputs {
            y_hat: y_hat.view(),
            q: q.view(),
            dummy_input: dummy.view(),
        })?;
        let latency = start.elapsed();
        println!(
            "run: y_hat {:?} q {:?} dummy_input {:?} -> x_hat {:?} in {:.2} ms",
            y_hat.shape(),
            q.shape(),
            dummy.shape(),
            out.x_hat.shape(),
            latency.as_secs_f64() * 1e3
        );
        let fp32 = npy(&dir.join("reference").join("x_hat.npy"))?;
        if fp32.shape() != out.x_hat.shape() {
            return Err(format!(
                "x_hat {:?} but the FP32 reference is {:?}",
                out.x_hat.shape(),
                fp32.shape()
            )
            .into());
        }
        for (&a, &b) in fp32.iter().zip(out.x_hat.iter()) {
            err2 += ((a - b) as f64).powi(2);
            lo = lo.min(a as f64);
            hi = hi.max(a as f64);
        }
        count += fp32.len();
    }
    let mse = err2 / count.max(1) as f64;
    let psnr = 10.0 * ((hi - lo).powi(2) / mse).log10();
    println!(
        "agreement: x_hat PSNR {psnr:.2} dB vs the FP32 model ({count} values, latent channels {}, upsampling x{})",
        seed::LATENT_CHANNELS,
        seed::UPSAMPLE
    );
    Ok(())
}
