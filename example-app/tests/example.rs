//! Runs the example binary and checks what it prints: the backend, the manifest, one line per
//! run whose shapes match the inputs, an INT8-vs-FP32 PSNR above the floor, and the validation
//! error (with a non-zero exit) for an out-of-profile input.

use std::process::Command;

/// INT8 (Q/DQ) vs FP32 agreement the seed decoder must reach. Measured: about 51 dB.
const PSNR_FLOOR_DB: f64 = 40.0;

fn example(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_example-app"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prints_backend_manifest_runs_and_agreement() {
    let (ok, stdout, stderr) = example(&[]);
    assert!(ok, "exit failure:\n{stdout}\n{stderr}");
    assert!(
        stdout.lines().next().unwrap().starts_with("backend: "),
        "{stdout}"
    );
    for expected in [
        "Input y_hat: float32 [?, 8, ?, ?]",
        "Input q: float32 [?, 8, 1, 1]",
        "Input dummy_input: float32 [?, 3, ?, ?]",
        "Output x_hat: float32 [?, 3, ?, ?]",
        "y_hat: min 1x8x4x4 opt 2x8x8x8 max 4x8x16x16",
        "dummy_input: min 1x3x13x13 opt 2x3x29x29 max 4x3x61x61",
        "calibration: auto: ",
        "tuning: ",
    ] {
        assert!(
            stdout.contains(expected),
            "missing '{expected}' in:\n{stdout}"
        );
    }

    // One line per run; x_hat is [N, 3, H, W] of the dummy_input [N, 3, H, W] of the same run.
    let runs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("run: ")).collect();
    assert_eq!(runs.len(), 3, "{stdout}");
    let shape = |line: &str, key: &str| -> Vec<usize> {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        let inner = &rest[rest.find('[').unwrap() + 1..rest.find(']').unwrap()];
        inner.split(", ").map(|d| d.parse().unwrap()).collect()
    };
    for (line, (n, h, w)) in runs.iter().zip([(1, 5, 7), (2, 8, 8), (4, 16, 12)]) {
        assert_eq!(shape(line, "y_hat "), vec![n, 8, h, w], "{line}");
        assert_eq!(shape(line, "q "), vec![n, 8, 1, 1], "{line}");
        let dummy = shape(line, "dummy_input ");
        assert_eq!(dummy, vec![n, 3, 4 * h - 3, 4 * w - 3], "{line}");
        assert_eq!(shape(line, "x_hat "), dummy, "{line}");
        assert!(line.contains(" ms"), "{line}");
    }

    let agreement = stdout
        .lines()
        .find(|l| l.starts_with("agreement: "))
        .expect("agreement line");
    let psnr: f64 = agreement
        .split("PSNR ")
        .nth(1)
        .unwrap()
        .split(" dB")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        psnr > PSNR_FLOOR_DB,
        "PSNR {psnr} dB below the {PSNR_FLOOR_DB} dB floor: {agreement}"
    );
}

#[test]
fn out_of_profile_input_fails_with_the_validation_error() {
    let (ok, stdout, stderr) = example(&["--out-of-profile"]);
    assert!(!ok, "must exit non-zero:\n{stdout}");
    assert!(
        stderr.contains(
            "error: input 'y_hat': dimension 0 is 5, outside the allowed range: profile 0: 1..=4"
        ),
        "{stderr}"
    );
}
