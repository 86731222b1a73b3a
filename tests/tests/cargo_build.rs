//! `trt-build` under Cargo: the fixture crate `tests/fixtures/seed-app` (its own `build.rs`
//! declares the seed decoder) is built with `cargo build`, checking what only Cargo can show:
//! the build script does not re-run when nothing it reads changed (nor when application code
//! changes), touching a calibration file re-runs it exactly once, and the built application
//! runs the embedded engine.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cargo build` of the whole workspace with every target: the package and feature selection
/// of `cargo test --workspace`, so every dependency is already compiled and only what the test
/// changes is rebuilt (`-p seed-app-fixture` alone would resolve other features and compile
/// the dependency tree again).
fn cargo_build(dir: &Path) -> String {
    let args = ["build", "--workspace", "--all-targets"];
    let out = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(workspace())
        .env("SEED_FIXTURE_DIR", dir)
        .env("TRT_BUILD_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cargo {args:?} failed:\n{text}");
    text
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs.log"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn fixture_crate_builds_reruns_only_when_inputs_change_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    test_support::synth::seed_decoder(3)
        .save(d.join("seed.onnx"), calib::WeightStorage::Inline)
        .unwrap();
    for (i, s) in test_support::synth::seed_samples(5, &[(1, 4, 4), (2, 6, 6), (3, 8, 8)], 1)
        .iter()
        .enumerate()
    {
        s.save_npy_dir(&d.join("calibration").join(format!("s{i}")))
            .unwrap();
    }
    // Files written just now may look newer than the first build-script run; let a second pass
    // settle the fingerprints, as Cargo itself would on a fresh checkout.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let first = cargo_build(d);
    assert!(first.contains(" s, built"), "{first}");
    let after_first = runs(d);
    assert!(after_first >= 1);

    // Nothing changed: no build-script run.
    cargo_build(d);
    assert_eq!(
        runs(d),
        after_first,
        "the build script re-ran without a change"
    );

    // Application code changed: still no build-script run.
    let main = workspace().join("tests/fixtures/seed-app/src/main.rs");
    let text = std::fs::read(&main).unwrap();
    std::fs::write(&main, &text).unwrap();
    cargo_build(d);
    assert_eq!(
        runs(d),
        after_first,
        "editing application code re-ran the build script"
    );

    // A calibration file touched: exactly one run, served from the cache (same content).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let file = d.join("calibration/s1/y_hat.npy");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    let touched = cargo_build(d);
    assert_eq!(
        runs(d),
        after_first + 1,
        "touching a calibration file must re-run the build script once"
    );
    assert!(touched.contains("local hit"), "{touched}");
    cargo_build(d);
    assert_eq!(runs(d), after_first + 1);

    // The application runs the embedded engine (CPU backend here, TensorRT on a supported GPU).
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let run = Command::new(target.join("debug").join("seed-app-fixture"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(text.contains("x_hat [2, 3, 20, 22]"), "{text}");
}
