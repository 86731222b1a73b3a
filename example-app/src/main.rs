//! The seed scenario end to end. `build.rs` calibrated the three-input decoder to INT8 and
//! built a TensorRT engine; this program loads the embedded model (TensorRT where a supported
//! GPU exists, else the CPU backend running the Q/DQ model), runs it on inputs of three
//! shapes, and compares `x_hat` with the FP32 model.
//!
//! `--out-of-profile` runs one call with a batch size outside the profile, to show the
//! validation error (and exit non-zero).

#[allow(dead_code)] // Calibration constants are used by build.rs, which includes the same file.
mod seed;

use std::process::ExitCode;
use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use test_support::synth::{SEED_LATENT_CHANNELS, SEED_UPSAMPLE, seed_decoder, seed_samples};

trt_runtime::include_engine!("seed_decoder");

/// Shapes `(N, h, w)` of the demonstration runs (inside the profile, not calibration shapes).
const RUNS: &[(usize, usize, usize)] = &[(1, 5, 7), (2, 8, 8), (4, 16, 12)];

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

fn array(t: &calib::HostTensor) -> ArrayD<f32> {
    let calib::TensorData::F32(v) = t.data() else {
        unreachable!("the seed inputs are float32")
    };
    ArrayD::from_shape_vec(IxDyn(t.shape()), v.clone()).expect("shape matches")
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

    let reference = calib::CpuModel::new(&seed_decoder(seed::MODEL_SEED), &[])?;
    let shapes: Vec<(usize, usize, usize)> = if out_of_profile {
        vec![(seed::PROFILE[2].0 + 1, 8, 8)]
    } else {
        RUNS.to_vec()
    };
    let samples = seed_samples(1234, &shapes, seed::CROP);
    let (mut err2, mut count, mut lo, mut hi) = (0f64, 0usize, f64::INFINITY, f64::NEG_INFINITY);
    for sample in &samples {
        let (y_hat, q, dummy) = (
            array(&sample.tensors()["y_hat"]),
            array(&sample.tensors()["q"]),
            array(&sample.tensors()["dummy_input"]),
        );
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
        let fp32 = calib::infer::to_f32(&reference.run(sample.id(), sample.inputs())?[0])?;
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
        "agreement: x_hat PSNR {psnr:.2} dB vs the FP32 model ({count} values, latent channels {SEED_LATENT_CHANNELS}, upsampling x{SEED_UPSAMPLE})"
    );
    Ok(())
}
