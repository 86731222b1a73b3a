//! `cargo xtask bench …`: the calibration benchmark against onnxruntime's `quantize_static`
//! (a synthetic conv stack), the real-model corpus against the same peer, and calibration's
//! two CPU engines side by side.

use std::path::Path;
use std::process::Command;

use crate::{Result, cargo, corpus, output, python, root, run, setup};

/// `cargo xtask bench corpus [MODEL ...]`: every corpus model, ours against onnxruntime's
/// `quantize_static`, in one run (`bench/corpus_bench.py`); results in
/// `target/corpus-bench.json`.
fn corpus_bench(models: &[String]) -> Result {
    let root = root();
    setup()?;
    let corpus_dir = corpus(false)?;
    if !Path::new("/usr/bin/time").is_file() {
        // GNU time measures each tool's peak memory (see bench/corpus_bench.py).
        run(Command::new("apt-get").arg("update").arg("-qq"))?;
        run(Command::new("apt-get").args(["install", "-y", "-qq", "time"]))?;
    }
    run(cargo()
        .current_dir(&root)
        .args(["build", "--release", "--package", "trt-calib"]))?;
    run(cargo().current_dir(&root).args([
        "build",
        "--release",
        "--package",
        "trt-build",
        "--example",
        "build_engine",
    ]))?;
    let results = root.join("target").join("corpus-bench.json");
    if models.is_empty() {
        // A full run starts afresh; a run of some models updates their rows.
        let _ = std::fs::remove_file(&results);
    }
    run(Command::new(root.join(".trt/corpus-venv/bin/python"))
        .arg(root.join("bench/corpus_bench.py"))
        .arg(root.join("target/release/trt-calib"))
        .arg(root.join("target/release/examples/build_engine"))
        .arg(&corpus_dir)
        .arg(&results)
        .args(models))?;
    eprintln!("xtask: results in {}", results.display());
    Ok(())
}

/// `cargo xtask bench engines [MODEL ...]`: calibration on tract and on onnxruntime, side by
/// side, on every corpus model (`bench/engines_bench.py`); results in
/// `target/engines-bench.json`.
fn engines_bench(models: &[String]) -> Result {
    let root = root();
    setup()?;
    let corpus_dir = corpus(false)?;
    run(cargo()
        .current_dir(&root)
        .args(["build", "--release", "--package", "trt-calib"]))?;
    let results = root.join("target").join("engines-bench.json");
    if models.is_empty() {
        let _ = std::fs::remove_file(&results);
    }
    run(Command::new(root.join(".trt/corpus-venv/bin/python"))
        .arg(root.join("bench/engines_bench.py"))
        .arg(root.join("target/release/trt-calib"))
        .arg(&corpus_dir)
        .arg(&results)
        .args(models))
}

pub(crate) fn bench(args: &[String]) -> Result {
    if args.first().map(String::as_str) == Some("corpus") {
        return corpus_bench(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("engines") {
        return engines_bench(&args[1..]);
    }
    let root = root();
    let venv = root.join(".trt").join("bench-venv");
    let venv_python = venv.join("bin").join("python");
    if !venv_python.is_file() {
        run(python().args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(&venv_python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "onnxruntime",
            "onnx",
            "numpy",
        ]))?;
    }
    run(cargo()
        .current_dir(&root)
        .args(["build", "--release", "--package", "trt-calib"]))?;
    run(cargo().current_dir(&root).args([
        "build",
        "--release",
        "--package",
        "calib",
        "--example",
        "bench_fixture",
    ]))?;
    let fixture = root.join("target").join("bench-fixture");
    let _ = std::fs::remove_dir_all(&fixture);
    run(
        Command::new(root.join("target/release/examples/bench_fixture"))
            .arg(&fixture)
            .args(args),
    )?;
    let out = output(
        Command::new(&venv_python)
            .arg(root.join("bench/calibration.py"))
            .arg(root.join("target/release/trt-calib"))
            .arg(&fixture),
    )?;
    let results = root.join("target").join("bench-results.json");
    std::fs::write(&results, &out).map_err(|e| e.to_string())?;
    println!("{}", String::from_utf8_lossy(&out));
    eprintln!("xtask: results in {}", results.display());
    Ok(())
}
