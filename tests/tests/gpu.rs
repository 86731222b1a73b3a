//! GPU suite of `trt-runtime`: loading on TensorRT, dynamic shapes across the profiles,
//! several profiles, several execution contexts in parallel, and outputs compared with a CPU
//! reference of the same Q/DQ ONNX.
//!
//! These tests need a GPU that the engine's TensorRT flavor supports (TensorRT-RTX: compute
//! capability 8.0, 8.6, 8.9 or 12.x; the lent H100/H200 are 9.0 and refused) plus TensorRT.
//! Without the `gpu-tests` feature they are *ignored* (libtest reports them as ignored, with
//! the reason); with it they run and fail, naming what is missing, where the GPU is absent:
//!
//! ```sh
//! cargo test -p tests --features gpu-tests --test gpu -- --nocapture
//! ```

use std::sync::Arc;

use ndarray::ArrayD;
use test_support::synth::seed_samples;
use trt_runtime::{Backend, BackendKind, Session};

/// Loads the fixture engine on TensorRT or explains why it cannot.
fn gpu_session() -> Session {
    let e = tests::seed_engine();
    match Session::new(&e.engine, Some(&e.onnx), &e.manifest, Backend::TensorRt) {
        Ok(s) => {
            println!("GPU suite running on {}", s.backend_reason());
            s
        }
        Err(err) => panic!("the GPU suite cannot run here ({:?}): {err}", err.code()),
    }
}

fn cpu_session() -> Session {
    let e = tests::seed_engine();
    Session::new(&e.engine, Some(&e.onnx), &e.manifest, Backend::Cpu).unwrap()
}

fn arrays(sample: &calib::Sample) -> Vec<(String, ArrayD<f32>)> {
    sample
        .tensors()
        .iter()
        .map(|(n, t)| {
            let calib::TensorData::F32(v) = t.data() else {
                unreachable!()
            };
            (
                n.clone(),
                ArrayD::from_shape_vec(t.shape().to_vec(), v.clone()).unwrap(),
            )
        })
        .collect()
}

fn run(s: &Session, sample: &calib::Sample) -> ArrayD<f32> {
    let a = arrays(sample);
    let inputs: Vec<(&str, trt_runtime::TensorRef<'_>)> = a
        .iter()
        .map(|(n, x)| (n.as_str(), x.view().into()))
        .collect();
    s.run(&inputs).unwrap().take::<f32>("x_hat").unwrap()
}

fn cosine(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    let dot: f32 = a.iter().zip(b.iter()).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt()
        * b.iter().map(|y| y * y).sum::<f32>().sqrt())
}

#[test]
#[cfg_attr(
    not(feature = "gpu-tests"),
    ignore = "needs a GPU that TensorRT supports; run `cargo test -p tests --features gpu-tests --test gpu`"
)]
fn loads_on_tensorrt_and_matches_the_manifest() {
    let s = gpu_session();
    assert_eq!(s.backend(), BackendKind::TensorRt);
}

#[test]
#[cfg_attr(
    not(feature = "gpu-tests"),
    ignore = "needs a GPU that TensorRT supports; run `cargo test -p tests --features gpu-tests --test gpu`"
)]
fn dynamic_shapes_across_both_profiles_match_the_cpu_reference() {
    let (gpu, cpu) = (gpu_session(), cpu_session());
    // min, opt and max of profile 0, then of profile 1, plus shapes in between.
    let shapes = [
        (1, 4, 4),
        (2, 6, 6),
        (4, 8, 8),
        (3, 5, 7),
        (5, 8, 8),
        (6, 12, 12),
        (8, 16, 16),
        (7, 9, 15),
    ];
    for (i, sample) in seed_samples(21, &shapes, 1).iter().enumerate() {
        let (g, c) = (run(&gpu, sample), run(&cpu, sample));
        assert_eq!(g.shape(), c.shape(), "shape of run {i}");
        let cos = cosine(&g, &c);
        assert!(
            cos > 0.995,
            "run {i} {:?}: GPU vs CPU cosine {cos}",
            shapes[i]
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "gpu-tests"),
    ignore = "needs a GPU that TensorRT supports; run `cargo test -p tests --features gpu-tests --test gpu`"
)]
fn several_contexts_run_concurrently() {
    let gpu = Arc::new(gpu_session());
    let samples = seed_samples(33, &[(1, 4, 4), (4, 8, 8), (6, 12, 12), (8, 16, 16)], 1);
    let serial: Vec<_> = samples.iter().map(|s| run(&gpu, s)).collect();
    let parallel: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = samples
            .iter()
            .map(|s| {
                let g = gpu.clone();
                sc.spawn(move || run(&g, s))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (a, b) in serial.iter().zip(&parallel) {
        assert_eq!(a, b, "concurrent contexts must give the serial results");
    }
}

#[test]
#[cfg_attr(
    not(feature = "gpu-tests"),
    ignore = "needs a GPU that TensorRT supports; run `cargo test -p tests --features gpu-tests --test gpu`"
)]
fn out_of_profile_input_is_refused_before_enqueue() {
    let gpu = gpu_session();
    let sample = seed_samples(1, &[(9, 4, 4)], 1).remove(0);
    let a = arrays(&sample);
    let inputs: Vec<(&str, trt_runtime::TensorRef<'_>)> = a
        .iter()
        .map(|(n, x)| (n.as_str(), x.view().into()))
        .collect();
    let e = gpu.run(&inputs).unwrap_err();
    assert_eq!(e.code(), trt_runtime::ErrorCode::InvalidInput, "{e}");
}

#[test]
#[cfg_attr(
    not(feature = "gpu-tests"),
    ignore = "needs a GPU that TensorRT supports; run `cargo test -p tests --features gpu-tests --test gpu`"
)]
fn device_buffers_and_enqueued_calls_match_the_blocking_call() {
    let gpu = gpu_session();
    let samples = seed_samples(44, &[(2, 6, 6), (7, 12, 10)], 1);
    let blocking: Vec<_> = samples.iter().map(|s| run(&gpu, s)).collect();

    // Inputs already on the device, outputs kept there, then downloaded.
    for (sample, expected) in samples.iter().zip(&blocking) {
        let a = arrays(sample);
        let device: Vec<(String, trt_runtime::DeviceTensor)> = a
            .iter()
            .map(|(n, x)| (n.clone(), gpu.upload(&x.view().into()).unwrap()))
            .collect();
        let refs: Vec<(&str, &trt_runtime::DeviceTensor)> =
            device.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let outputs = gpu.run_device(&refs).unwrap();
        let host = gpu.download(&outputs[0].1).unwrap();
        let trt_runtime::OwnedTensor::F32(x) = host else {
            panic!("x_hat is float32")
        };
        assert_eq!(&x, expected);
    }

    // Two calls in flight on separate contexts, then waited.
    let a0 = arrays(&samples[0]);
    let a1 = arrays(&samples[1]);
    let c0: Vec<(&str, trt_runtime::TensorRef<'_>)> = a0
        .iter()
        .map(|(n, x)| (n.as_str(), x.view().into()))
        .collect();
    let c1: Vec<(&str, trt_runtime::TensorRef<'_>)> = a1
        .iter()
        .map(|(n, x)| (n.as_str(), x.view().into()))
        .collect();
    let (p0, p1) = (gpu.enqueue(&c0).unwrap(), gpu.enqueue(&c1).unwrap());
    assert_eq!(
        p1.wait().unwrap().take::<f32>("x_hat").unwrap(),
        blocking[1]
    );
    assert_eq!(
        p0.wait().unwrap().take::<f32>("x_hat").unwrap(),
        blocking[0]
    );
}
