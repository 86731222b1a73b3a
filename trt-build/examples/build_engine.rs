//! Builds a TensorRT engine from an ONNX file as it is (a Q/DQ model becomes an INT8 engine):
//! used by `cargo xtask bench` to check that the peer's Q/DQ models build too.
//!
//! ```text
//! cargo run --release -p trt-build --example build_engine -- MODEL.onnx [NAME:MIN:OPT:MAX ...]
//! ```
//!
//! Prints the engine size and build time; exits 1 with the error otherwise.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(model) = args.first() else {
        eprintln!("usage: build_engine MODEL.onnx [NAME:MIN:OPT:MAX ...]");
        return ExitCode::FAILURE;
    };
    let mut profile = trt_build::Profile::new();
    for spec in &args[1..] {
        profile = match profile.parse_input(spec) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    }
    let dir = std::env::temp_dir().join(format!("trt-build-example-{}", std::process::id()));
    let mut b = trt_build::Builder::new();
    b.cargo_metadata(false)
        .out_dir(dir.join("out"))
        .cache_dir(dir.join("cache"))
        .optimization_level(0);
    let config = b.model("model", model);
    config.fp32();
    if !profile.inputs.is_empty() {
        config.profile(profile);
    }
    let start = std::time::Instant::now();
    let result = b
        .try_build()
        .map(|built| std::fs::metadata(&built[0].engine_path).map_or(0, |m| m.len()));
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(bytes) => {
            println!(
                "engine of {bytes} bytes built in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
