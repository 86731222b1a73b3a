//! Probes this machine's GPU path with an engine built elsewhere: opens CUDA (device name,
//! compute capability, a host→device→host round trip through cudarc) and loads the engine with
//! the TensorRT backend only, printing the backend or the typed error.
//!
//! Usage: `01-probe-gpu ENGINE MANIFEST_JSON`. Exits 0 when the engine loads or TensorRT
//! refuses with a typed error; 1 on a crash-worthy surprise (e.g. an untyped failure).

use cudarc::driver::CudaContext;
use trt_runtime::{Backend, ErrorCode, Session};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (engine, manifest) = match (args.first(), args.get(1)) {
        (Some(e), Some(m)) => (
            std::fs::read(e).expect("engine file"),
            std::fs::read_to_string(m).expect("manifest file"),
        ),
        _ => {
            eprintln!("usage: 01-probe-gpu ENGINE MANIFEST_JSON");
            return std::process::ExitCode::FAILURE;
        }
    };
    // SAFETY: only probes whether the driver library can be opened (cudarc panics without it).
    let driver = unsafe { cudarc::driver::sys::is_culib_present() };
    match if driver {
        CudaContext::new(0).map_err(|e| format!("{e:?}"))
    } else {
        Err("no libcuda.so".to_string())
    } {
        Ok(ctx) => {
            let cc = ctx.compute_capability();
            println!(
                "cuda: device 0 {} compute capability {cc:?}",
                ctx.name().unwrap_or_default()
            );
            let stream = ctx.default_stream();
            let host: Vec<u8> = (0..=255).collect();
            let roundtrip = stream.clone_htod(&host).and_then(|d| stream.clone_dtoh(&d));
            println!(
                "cuda: host->device->host of 256 bytes {}",
                if roundtrip.as_ref().ok() == Some(&host) {
                    "ok"
                } else {
                    "FAILED"
                }
            );
        }
        Err(e) => println!("cuda: unavailable: {e}"),
    }
    match Session::new(&engine, None, &manifest, Backend::TensorRt) {
        Ok(s) => {
            println!("loaded: {} ({})", s.backend(), s.backend_reason());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error code {:?}: {e}", e.code());
            match e.code() {
                ErrorCode::UnsupportedGpu
                | ErrorCode::NoCudaDriver
                | ErrorCode::NoDevice
                | ErrorCode::LibraryNotFound => std::process::ExitCode::SUCCESS,
                _ => std::process::ExitCode::FAILURE,
            }
        }
    }
}
