//! What is not ours is never replaced, nothing hangs and no bad number is read as another:
//! outputs that are links, devices or FIFOs are refused (and left as they were), a FIFO given as
//! the model is refused instead of blocking, malformed external-data offsets and lengths name
//! the initializer, accuracy targets outside their range (or NaN) are refused and an unmet
//! target is an error unless best effort was asked for, and constants are range-checked.

mod common;

use std::path::Path;

use calib::Model;
use common::{assert_refused as refused, quantize, s, setup, trt_calib};

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

#[test]
fn links_devices_and_fifos_are_never_replaced_by_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    // --report as a link to a file elsewhere, and as a link to standard output.
    let target = d.join("elsewhere.txt");
    std::fs::write(&target, "keep me").unwrap();
    for pointee in [target.as_path(), Path::new("/proc/self/fd/1")] {
        let link = d.join("report.json");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(pointee, &link).unwrap();
        let (ok, out) = quantize(d, &["--method", "minmax", "--report", s(&link)]);
        refused(
            ok,
            &out,
            &["--report", "symbolic link", "refusing to replace"],
        );
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    // --out as a FIFO: refused at once, still a FIFO.
    let fifo = d.join("seed.int8.onnx");
    mkfifo(&fifo);
    let (ok, out) = quantize(d, &["--method", "minmax"]);
    refused(ok, &out, &["--out", "FIFO"]);
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // A character device is refused too (named, never opened for writing).
    std::fs::remove_file(&fifo).unwrap();
    let (ok, out) = quantize(d, &["--method", "minmax", "--report", "/dev/null"]);
    refused(ok, &out, &["/dev/null", "character device"]);
}

#[test]
fn a_fifo_as_the_model_or_its_external_data_is_refused_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("model.onnx");
    mkfifo(&fifo);
    let (ok, out) = trt_calib(&["inspect", s(&fifo)]);
    refused(ok, &out, &["model.onnx", "FIFO", "not a regular file"]);
    let e = Model::load(&fifo).unwrap_err().to_string();
    assert!(e.contains("FIFO"), "{e}");
}

/// The two-input model with `conv.weight` at byte 64 of `weights.bin` and these fields.
fn external(folder: &Path, fields: &[(&str, &str)]) -> std::path::PathBuf {
    test_support::synth::external_model(folder, "weights.bin", fields, 64)
}

#[test]
fn malformed_external_data_offsets_and_lengths_name_the_initializer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The weights start at byte 64: a correct offset loads.
    assert!(Model::load(external(d, &[("offset", "64")])).is_ok());
    for (key, value) in [
        ("offset", "0x40"),
        ("offset", "-64"),
        ("offset", "99999999999999999999999"),
        ("length", "-1"),
        ("length", "8e2"),
    ] {
        let m = external(d, &[(key, value)]);
        let e = Model::load(&m).unwrap_err().to_string();
        assert!(
            e.contains("conv.weight") && e.contains(value) && e.contains(key),
            "{key}={value}: {e}"
        );
    }
    // A length that disagrees with the tensor's dims is refused before allocating it.
    let m = external(d, &[("offset", "64"), ("length", "8589934592")]);
    let e = Model::load(&m).unwrap_err().to_string();
    assert!(e.contains("conv.weight") && e.contains("864 bytes"), "{e}");
}

#[test]
fn accuracy_targets_outside_their_range_or_unmet_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    for (args, needle) in [
        (&["--min-cosine", "1.5"][..], "min cosine 1.5"),
        (&["--min-cosine", "NaN"], "min cosine NaN"),
        (&["--min-snr-db", "inf"], "min SNR inf"),
        (
            &["--min-cosine", "0.9", "--max-float-share", "1.5"],
            "max float share 1.5",
        ),
        (
            &["--min-cosine", "0.9", "--max-float-share=-0.1"],
            "max float share -0.1",
        ),
    ] {
        let (ok, out) = quantize(d, args);
        refused(ok, &out, &[needle]);
        assert!(!d.join("seed.int8.onnx").exists(), "written for {args:?}");
    }
    // A target the allowed share of float nodes cannot meet (cosine exactly 1): an error,
    // nothing written; with --best-effort, the closest result and exit 0.
    let unmet = [
        "--method",
        "minmax",
        "--min-cosine",
        "1",
        "--max-float-share",
        "0.25",
    ];
    let (ok, out) = quantize(d, &unmet);
    refused(ok, &out, &["not met", "best effort"]);
    assert!(!d.join("seed.int8.onnx").exists());
    let mut best = unmet.to_vec();
    best.push("--best-effort");
    let (ok, out) = quantize(d, &best);
    assert!(ok, "{out}");
    assert!(d.join("seed.int8.onnx").exists());
}

#[test]
fn constants_are_range_checked_and_bound_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    for (args, needles) in [
        (&["--constant", "q=NaN"][..], &["q=NaN", "finite"][..]),
        (&["--constant", "q=1e39"], &["float32's range"]),
        (
            &["--constant", "q=1", "--constant", "q=2"],
            &["'q'", "twice"],
        ),
    ] {
        let (ok, out) = quantize(d, args);
        refused(ok, &out, needles);
    }
    // int32: 4294967299 is not read as 3.
    let mut m = test_support::synth::two_input_model();
    let g = m.graph_mut();
    g.input
        .push(test_support::synth::value_info("n", calib::DType::I32, &[]));
    let e = calib::fold::parse_constant(&m, "n=4294967299")
        .unwrap_err()
        .to_string();
    assert!(e.contains("int32's range"), "{e}");
    let (_, value) = calib::fold::parse_constant(&m, "n=7").unwrap();
    assert_eq!(value.to_le_bytes(), 7i32.to_le_bytes());
}

#[test]
fn auto_metrics_are_checked_against_the_model_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    // The seed decoder has one output.
    let (ok, out) = quantize(d, &["--auto-metric", "top1:3"]);
    refused(ok, &out, &["top1 of output 3", "1 output(s)"]);
    for bad in ["f1", "iou:0:NaN", "snr:0"] {
        let (ok, out) = quantize(d, &["--auto-metric", bad]);
        refused(ok, &out, &[&format!("`{bad}`"), "top1|ctc|iou|decision"]);
    }
    // Accepted, Auto ranks by it and the table names it.
    let (ok, out) = quantize(d, &["--auto-metric", "decision:0:0.5"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("method choice (decision>0.5 of output 0 on held-out samples)"),
        "{out}"
    );
}
