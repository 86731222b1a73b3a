//! `trt-runtime` on the CPU (always run): manifest matching against TensorRT's own view of a
//! network, shape validation through a loaded session, error mapping, and the CPU backend's
//! numerics against an independent reference.
//!
//! The engine comes from `tests::seed_engine` (trt-build in process, a real TensorRT-RTX build
//! on the CPU of the seed decoder of `test_support::synth`).

use std::sync::Arc;

use ndarray::ArrayD;
use test_support::synth::{seed_decoder, seed_samples};
use trt_manifest::{Interface, Mode, RangeSpec, TensorSpec};
use trt_runtime::{Backend, BackendKind, ErrorCode, Session};

fn built() -> &'static tests::SeedEngine {
    tests::seed_engine()
}

fn cpu_session() -> Session {
    let b = built();
    Session::new(&b.engine, Some(&b.onnx), &b.manifest, Backend::Cpu).unwrap()
}

/// The three inputs as an untyped call.
fn call<'a>(
    y: &'a ArrayD<f32>,
    q: &'a ArrayD<f32>,
    d: &'a ArrayD<f32>,
) -> [(&'static str, trt_runtime::TensorRef<'a>); 3] {
    [
        ("y_hat", y.view().into()),
        ("q", q.view().into()),
        ("dummy_input", d.view().into()),
    ]
}

fn inputs(
    n: usize,
    h: usize,
    w: usize,
    hh: usize,
    ww: usize,
) -> (ArrayD<f32>, ArrayD<f32>, ArrayD<f32>) {
    (
        ArrayD::ones(vec![n, 8, h, w]),
        ArrayD::ones(vec![n, 8, 1, 1]),
        ArrayD::zeros(vec![n, 3, hh, ww]),
    )
}

/// TensorRT's view of the Q/DQ network (parsed on the CPU) matches the manifest exactly, and
/// every deliberate change to the manifest is reported.
#[test]
fn manifest_matches_tensorrt_metadata_and_mismatches_are_listed() {
    let b = built();
    let manifest = trt_manifest::Manifest::from_json(&b.manifest).unwrap();
    let lib = tensorrt_sys::Library::load().unwrap();
    let logger = tensorrt_sys::Logger::new(tensorrt_sys::Severity::ERROR, |_, _| {}).unwrap();
    let builder = tensorrt_sys::Builder::new(&lib, &logger).unwrap();
    let network = builder.network_from_onnx(&b.onnx, None).unwrap();
    let mut tensors = Vec::new();
    for (mode, list) in [
        (Mode::Input, network.inputs().unwrap()),
        (Mode::Output, network.outputs().unwrap()),
    ] {
        for t in list {
            tensors.push(TensorSpec {
                name: t.name,
                mode,
                dtype: t.data_type.name().parse().unwrap(),
                dims: t.dims,
            });
        }
    }
    let actual = Interface {
        tensors,
        profiles: manifest.interface.profiles.clone(),
    };
    trt_runtime::check_interface(&manifest, &actual).unwrap();

    let mut wrong = actual.clone();
    wrong.tensors[0].dtype = trt_manifest::DType::F16;
    wrong.tensors[3].dims[1] = 4;
    wrong.profiles.pop();
    wrong.profiles[0].inputs[1] = RangeSpec {
        name: "q".into(),
        range: trt_manifest::ShapeRange::new(vec![1, 8, 1, 1], vec![1, 8, 1, 1], vec![2, 8, 1, 1]),
    };
    let e = trt_runtime::check_interface(&manifest, &wrong).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ManifestMismatch);
    for expected in [
        "tensor 'y_hat' is expected as float32 but the engine has float16",
        "tensor 'x_hat' dimension 1 is expected to be 3 but the engine has 4",
        "2 optimization profile(s) are expected but the engine has 1",
        "profile 0 input 'q' opt is expected to be 2x8x1x1 but the engine has 1x8x1x1",
        "profile 0 input 'q' max is expected to be 4x8x1x1 but the engine has 2x8x1x1",
    ] {
        assert!(
            e.message().contains(expected),
            "missing '{expected}' in:\n{e}"
        );
    }
}

#[test]
fn calls_are_validated_against_the_profiles() {
    let s = cpu_session();
    let (y, q, d) = inputs(2, 6, 6, 20, 22);
    assert_eq!(s.validate(&call(&y, &q, &d)).unwrap(), 0);
    let (y, q, d) = inputs(6, 12, 12, 40, 40);
    assert_eq!(s.validate(&call(&y, &q, &d)).unwrap(), 1);
    // Batch 9 fits neither profile: the error names input, dimension, value and both ranges.
    let (y, q, d) = inputs(9, 8, 8, 31, 31);
    let e = s.run(&call(&y, &q, &d)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(
        e.message().contains("input 'y_hat': dimension 0 is 9"),
        "{e}"
    );
    assert!(
        e.message().contains("profile 0: 1..=4") && e.message().contains("profile 1: 5..=8"),
        "{e}"
    );
    // Wrong element type in the untyped API.
    let yi = ArrayD::<i64>::zeros(vec![2, 8, 6, 6]);
    let (_, q, d) = inputs(2, 6, 6, 20, 22);
    let e = s
        .run(&[
            ("y_hat", yi.view().into()),
            ("q", q.view().into()),
            ("dummy_input", d.view().into()),
        ])
        .unwrap_err();
    assert!(
        e.message()
            .contains("input 'y_hat': element type int64 but the engine expects float32"),
        "{e}"
    );
}

/// The CPU backend returns the Q/DQ model's numerics: equal to running the same ONNX through
/// calib's tract runner, and close to the FP32 model.
#[test]
fn cpu_backend_matches_the_reference() {
    let s = cpu_session();
    assert_eq!(s.backend(), BackendKind::Cpu);
    let sample = seed_samples(42, &[(3, 7, 5)], 2).remove(0);
    let get = |n: &str| {
        let t = sample.get(n).unwrap();
        let calib::TensorData::F32(v) = t.data() else {
            unreachable!()
        };
        ArrayD::from_shape_vec(t.shape().to_vec(), v.clone()).unwrap()
    };
    let (y, q, d) = (get("y_hat"), get("q"), get("dummy_input"));
    let mut out = s.run(&call(&y, &q, &d)).unwrap();
    let x = out.take::<f32>("x_hat").unwrap();
    assert_eq!(x.shape(), &[3, 3, 26, 18]);
    let qdq = calib::Model::from_bytes(&built().onnx, "qdq").unwrap();
    let reference = calib::CpuModel::new(&qdq, &[])
        .unwrap()
        .run(sample.id(), sample.inputs())
        .unwrap();
    assert_eq!(
        calib::infer::to_f32(&reference[0]).unwrap(),
        x.iter().copied().collect::<Vec<_>>()
    );
    let fp32 = calib::CpuModel::new(&seed_decoder(tests::SEED_MODEL), &[])
        .unwrap()
        .run(sample.id(), sample.inputs())
        .unwrap();
    let r = calib::infer::to_f32(&fp32[0]).unwrap();
    let cos = r.iter().zip(x.iter()).map(|(a, b)| a * b).sum::<f32>()
        / (r.iter().map(|a| a * a).sum::<f32>().sqrt()
            * x.iter().map(|b| b * b).sum::<f32>().sqrt());
    assert!(
        cos > 0.99,
        "INT8-simulated output too far from FP32: cosine {cos}"
    );
    // Asking for the wrong type or name is an error, not a panic.
    assert_eq!(
        out.take::<f32>("x_hat").unwrap_err().code(),
        ErrorCode::InvalidOutput
    );
}

#[test]
fn corrupted_engine_bytes_are_refused() {
    let b = built();
    let mut engine = b.engine.clone();
    engine[100] ^= 0xff;
    let e = Session::new(&engine, Some(&b.onnx), &b.manifest, Backend::Auto).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptEngine);
    let e = Session::new(
        &b.engine[..b.engine.len() / 2],
        Some(&b.onnx),
        &b.manifest,
        Backend::Cpu,
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptEngine);
    assert!(e.message().contains("corrupted or truncated"), "{e}");
}

/// Forcing TensorRT where it cannot run yields the precise reason, never a crash.
#[test]
fn tensorrt_backend_errors_are_mapped() {
    let b = built();
    match Session::new(&b.engine, None, &b.manifest, Backend::TensorRt) {
        Ok(s) => println!("a supported GPU is present: {}", s.backend_reason()),
        Err(e) => {
            println!("TensorRT backend unavailable here: {e}");
            assert!(
                matches!(
                    e.code(),
                    ErrorCode::NoCudaDriver | ErrorCode::NoDevice | ErrorCode::UnsupportedGpu
                ),
                "unexpected code {:?}: {e}",
                e.code()
            );
        }
    }
    // Auto falls back to the CPU and says why.
    let s = Session::new(&b.engine, Some(&b.onnx), &b.manifest, Backend::Auto).unwrap();
    if s.backend() == BackendKind::Cpu {
        assert!(
            s.backend_reason().contains("TensorRT unavailable"),
            "{}",
            s.backend_reason()
        );
    }
    // Auto without an embedded ONNX and without TensorRT names both failures.
    if let Err(e) = Session::new(&b.engine, None, &b.manifest, Backend::Auto) {
        assert!(e.message().contains("no CPU fallback"), "{e}");
    }
}

#[test]
fn library_errors_map_to_runtime_codes() {
    let empty = tempfile::tempdir().unwrap();
    let e: trt_runtime::Error =
        tensorrt_sys::Library::open(&tensorrt_sys::SearchPath::dirs([empty.path()]))
            .unwrap_err()
            .into();
    assert_eq!(e.code(), ErrorCode::LibraryNotFound);
    assert!(
        e.message().contains(&empty.path().display().to_string()),
        "{e}"
    );
}

/// Sessions are shared across threads; concurrent calls give the same results as serial ones.
#[test]
fn a_session_serves_concurrent_calls() {
    let s = Arc::new(cpu_session());
    let run = |n: usize| {
        let (y, q, d) = inputs(n, 4, 4, 15, 15);
        let mut out = s.run(&call(&y, &q, &d)).unwrap();
        out.take::<f32>("x_hat").unwrap()
    };
    let serial: Vec<_> = (1..=4).map(run).collect();
    let parallel: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (1..=4).map(|n| sc.spawn(move || run(n))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(serial, parallel);
}

/// The asynchronous API gives the blocking call's results; device-memory calls explain that
/// they need the TensorRT backend when the session runs on the CPU.
#[test]
fn enqueue_then_wait_and_device_calls_on_the_cpu_backend() {
    let s = cpu_session();
    let (y, q, d) = inputs(3, 5, 7, 18, 26);
    let args = call(&y, &q, &d);
    let pending = s.enqueue(&args).unwrap();
    let mut waited = pending.wait().unwrap();
    let mut blocking = s.run(&args).unwrap();
    assert_eq!(
        waited.take::<f32>("x_hat").unwrap(),
        blocking.take::<f32>("x_hat").unwrap()
    );
    let e = s.upload(&y.view().into()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::BackendUnavailable);
    assert!(e.message().contains("needs the TensorRT backend"), "{e}");
}

/// A call can be pinned to a profile; inputs outside that profile are refused with its range
/// even when another profile would fit them.
#[test]
fn calls_can_choose_their_profile() {
    let s = cpu_session();
    let (y, q, d) = inputs(5, 8, 8, 31, 31);
    let args = call(&y, &q, &d);
    s.run_in_profile(1, &args).unwrap();
    let e = s.run_in_profile(0, &args).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    assert!(
        e.message().contains("dimension 0 is 5") && e.message().contains("profile 0: 1..=4"),
        "{e}"
    );
    assert!(
        !e.message().contains("profile 1"),
        "only the chosen profile is named: {e}"
    );
    let e = s.run_in_profile(7, &args).unwrap_err();
    assert!(
        e.message()
            .contains("profile 7 does not exist; the engine has 2"),
        "{e}"
    );
}
