//! Checks, on a real CUDA GPU, every path of `trt-runtime` that does not need TensorRT to
//! execute an engine, and prints one line per check:
//!
//! 1. device allocation and host→device→host round trips of every element type;
//! 2. device tensors across streams: a tensor written on one stream, copied on another and
//!    dropped before that copy is synchronised still yields the right bytes;
//! 3. the stream pool under concurrent uploads and downloads from several threads;
//! 4. an allocation larger than the device maps to `ErrorCode::OutOfDeviceMemory` (from the
//!    `CUresult` code);
//! 5. with `ENGINE MANIFEST_JSON`: loading the engine with the TensorRT backend only, printing
//!    the backend or the typed error (TensorRT-RTX refuses compute capability 9.0 through its
//!    engine check, which must surface as `ErrorCode::UnsupportedGpu`).
//!
//! Usage: `02-gpu-checks [ENGINE MANIFEST_JSON]`. Exits 1 when any check fails, 2 when there
//! is no CUDA device (nothing was checked).

use std::process::ExitCode;

use half::f16;
use ndarray::ArrayD;
use trt_runtime::{Backend, DType, Device, DeviceTensor, ErrorCode, OwnedTensor, Session};

/// A tensor of `n` varied values of every element type the runtime binds.
fn samples(n: usize) -> Vec<OwnedTensor> {
    fn array<T>(n: usize, f: impl Fn(usize) -> T) -> ArrayD<T> {
        ArrayD::from_shape_vec(vec![n], (0..n).map(f).collect()).expect("n values")
    }
    vec![
        OwnedTensor::F32(array(n, |i| i as f32 * 0.37 - 50.0)),
        OwnedTensor::F16(array(n, |i| f16::from_f32((i % 997) as f32 * 0.5 - 99.0))),
        OwnedTensor::F64(array(n, |i| (i as f64).sqrt() * 1e-3)),
        OwnedTensor::I8(array(n, |i| (i % 256) as u8 as i8)),
        OwnedTensor::U8(array(n, |i| (i * 7 % 256) as u8)),
        OwnedTensor::I32(array(n, |i| i as i32 * -3)),
        OwnedTensor::I64(array(n, |i| (i as i64) << 33)),
    ]
}

fn check(ok: bool, what: &str, failures: &mut usize) {
    println!("[{}] {what}", if ok { "ok" } else { "FAILED" });
    if !ok {
        *failures += 1;
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = match Device::open(0) {
        Ok(d) => d,
        Err(e) => {
            println!("no CUDA device, nothing checked: {:?}: {e}", e.code());
            return ExitCode::from(2);
        }
    };
    println!("device: {}", device.description());
    let mut failures = 0;

    // 1. Every element type, small and large (64 Mi elements of float32 = 256 MiB).
    for n in [1, 1000, 1 << 20] {
        for t in samples(n) {
            let dtype = t.dtype();
            let back = device.upload(&t.view()).and_then(|d| device.download(&d));
            check(
                back.as_ref().is_ok_and(|b| *b == t),
                &format!("round trip of {n} {dtype} values"),
                &mut failures,
            );
        }
    }
    let zeros = device
        .alloc(DType::F32, &[3, 5])
        .and_then(|d| device.download(&d));
    check(
        matches!(&zeros, Ok(OwnedTensor::F32(a)) if a.shape() == [3, 5] && a.iter().all(|&x| x == 0.0)),
        "alloc gives a zeroed [3, 5] float32 tensor",
        &mut failures,
    );

    // 2. Across streams: write on stream A (not synchronised), copy on the pool's stream,
    //    drop the source before the copy is synchronised.
    let big = 64 << 20;
    let host: Vec<u8> = (0..big).map(|i| (i % 251) as u8).collect();
    let a = device.context().new_stream().expect("a stream");
    let written = a.clone_htod(&host).expect("an async upload on stream A");
    let source = DeviceTensor::from_buffer(written, DType::U8, vec![big]).expect("fits");
    let copy = device.copy(&source);
    drop(source);
    let back = copy.and_then(|c| device.download(&c));
    check(
        matches!(&back, Ok(OwnedTensor::U8(v)) if v.as_slice() == Some(&host[..])),
        "a 64 MiB tensor written on one stream, copied on another and dropped early",
        &mut failures,
    );
    let short = DeviceTensor::from_buffer(
        device
            .context()
            .default_stream()
            .alloc_zeros::<u8>(8)
            .unwrap(),
        DType::F32,
        vec![4],
    );
    check(
        short
            .as_ref()
            .is_err_and(|e| e.code() == ErrorCode::InvalidInput),
        "a buffer smaller than its shape is refused",
        &mut failures,
    );

    // 3. Eight threads, each 25 round trips of a different size and type at once.
    let device_ref = &device;
    let results: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|thread| {
                s.spawn(move || {
                    (0..25).all(|i| {
                        let all = samples(1 + thread * 4099 + i * 517);
                        let t = &all[(thread + i) % all.len()];
                        device_ref
                            .upload(&t.view())
                            .and_then(|d| device_ref.download(&d))
                            .is_ok_and(|b| b == *t)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect()
    });
    check(
        results.iter().all(|&ok| ok),
        &format!(
            "8 threads x 25 concurrent round trips ({} streams in the pool afterwards)",
            device.pooled_streams()
        ),
        &mut failures,
    );

    // 4. Out of memory, from the CUresult code.
    let huge = device.alloc(DType::U8, &[1 << 40]);
    match &huge {
        Err(e) => println!("  1 TiB allocation: {:?}: {e}", e.code()),
        Ok(_) => println!("  1 TiB allocation succeeded"),
    }
    check(
        huge.as_ref()
            .is_err_and(|e| e.code() == ErrorCode::OutOfDeviceMemory),
        "a 1 TiB allocation is ErrorCode::OutOfDeviceMemory",
        &mut failures,
    );
    let after = device
        .upload(&samples(16)[0].view())
        .and_then(|d| device.download(&d));
    check(
        after.is_ok(),
        "the device still works after the failed allocation",
        &mut failures,
    );

    // 5. The engine, TensorRT only.
    if let (Some(engine), Some(manifest)) = (args.first(), args.get(1)) {
        let engine = std::fs::read(engine).expect("engine file");
        let manifest = std::fs::read_to_string(manifest).expect("manifest file");
        match Session::new(&engine, None, &manifest, Backend::TensorRt) {
            Ok(s) => println!("engine: loaded on {} ({})", s.backend(), s.backend_reason()),
            Err(e) => {
                println!("engine: {:?}: {e}", e.code());
                let (major, _) = device.compute_capability();
                if major == 9 {
                    check(
                        e.code() == ErrorCode::UnsupportedGpu,
                        "TensorRT-RTX's refusal of compute capability 9.x is ErrorCode::UnsupportedGpu",
                        &mut failures,
                    );
                }
            }
        }
    }
    if failures == 0 {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        println!("{failures} check(s) failed");
        ExitCode::FAILURE
    }
}
