//! Helpers shared by the `trt-calib` command-line tests: the seed decoder and six samples
//! in a temporary folder, and the binary run with its profile.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

use test_support::synth::{seed_decoder, seed_samples};

pub fn trt_calib(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trt-calib"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub const PROFILE: [&str; 6] = [
    "--profile",
    "y_hat:1x8x4x4:2x8x6x6:4x8x8x8",
    "--profile",
    "q:1x8x1x1:2x8x1x1:4x8x1x1",
    "--profile",
    "dummy_input:1x3x15x15:2x3x23x23:4x3x31x31",
];

pub fn setup(dir: &Path) {
    seed_decoder(1)
        .save(dir.join("seed.onnx"), calib::WeightStorage::Inline)
        .unwrap();
    let shapes = [
        (1, 4, 4),
        (2, 6, 6),
        (4, 8, 8),
        (3, 5, 7),
        (2, 8, 4),
        (1, 6, 8),
    ];
    for (i, s) in seed_samples(3, &shapes, 1).iter().enumerate() {
        s.save_npy_dir(&dir.join("data").join(format!("s{i}")))
            .unwrap();
    }
}

pub fn quantize(dir: &Path, extra: &[&str]) -> (bool, String) {
    let (model, data, out) = (
        dir.join("seed.onnx"),
        dir.join("data"),
        dir.join("seed.int8.onnx"),
    );
    let mut args = vec![
        "quantize",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(PROFILE);
    args.extend(extra);
    trt_calib(&args)
}

/// A path as `&str` (the tests' paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The run failed, its output names every needle, and no panic reached the user.
pub fn assert_refused(ok: bool, out: &str, needles: &[&str]) {
    assert!(!ok, "accepted (expected {needles:?}):\n{out}");
    for n in needles {
        assert!(out.contains(n), "missing '{n}' in:\n{out}");
    }
    assert!(
        !out.contains("panicked"),
        "a panic reached the user:\n{out}"
    );
}
