//! Hostile and broken inputs through `trt-calib` (the same library `trt-build` runs inside
//! `cargo build`): inputs are never overwritten, external data stays in the model's folder,
//! invalid graphs and memory bombs give errors that name the culprit (never a panic or an
//! abort), and options that used to be silently wrong are refused. Every malicious file is
//! built here.

mod common;

use std::path::{Path, PathBuf};

use calib::{HostTensor, Model, Sample};
use common::{PROFILE, assert_refused, quantize, s, setup, trt_calib};
use test_support::synth::seed_samples;
use tract_onnx::pb;

/// `trt-calib quantize` with explicit paths (the helper's `--out` is fixed).
fn quantize_to(dir: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let (model, data) = (dir.join("seed.onnx"), dir.join("data"));
    let mut args = vec![
        "quantize",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(out),
    ];
    args.extend(PROFILE);
    args.extend(extra);
    trt_calib(&args)
}

#[test]
fn outputs_never_alias_inputs_and_nothing_is_written_when_a_check_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let model = d.join("seed.onnx");
    let npy = d.join("data/s0/y_hat.npy");
    let (model_bytes, npy_bytes) = (std::fs::read(&model).unwrap(), std::fs::read(&npy).unwrap());

    let (ok, out) = quantize_to(d, &model, &[]);
    assert_refused(
        ok,
        &out,
        &["--out", "refusing to overwrite an input", "seed.onnx"],
    );
    let (ok, out) = quantize_to(d, &npy, &[]);
    assert_refused(ok, &out, &["--out", "y_hat.npy"]);
    // Through another spelling of the same file.
    let dotted = d.join("data/s0/../s0/y_hat.npy");
    let (ok, out) = quantize_to(d, &dotted, &[]);
    assert_refused(ok, &out, &["refusing to overwrite"]);
    let target = d.join("q.onnx");
    let (ok, out) = quantize_to(d, &target, &["--report", s(&model)]);
    assert_refused(ok, &out, &["--report"]);
    let (ok, out) = quantize_to(d, &target, &["--calibration-cache", s(&npy)]);
    assert_refused(ok, &out, &["--calibration-cache"]);
    let (ok, out) = quantize_to(d, &target, &["--report", s(&target)]);
    assert_refused(ok, &out, &["also --out"]);
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
    assert_eq!(std::fs::read(&npy).unwrap(), npy_bytes);
    assert!(!target.exists());

    // A held-out sample that fails validation stops the run before anything is written.
    let held = d.join("held");
    seed_samples(1, &[(9, 4, 4)], 1)[0]
        .save_npy_dir(&held.join("big"))
        .unwrap();
    let (ok, out) = quantize_to(d, &target, &["--report-data", s(&held)]);
    assert_refused(
        ok,
        &out,
        &["big", "outside the allowed range: profile 0: 1..=4"],
    );
    assert!(
        !target.exists(),
        "the output was written before every check passed"
    );
}

/// `two_input_model` with `conv.weight` moved to external data at `location`.
fn external_model(folder: &Path, location: &str, length: Option<usize>) -> PathBuf {
    let length = length.map(|n| n.to_string());
    let fields: Vec<(&str, &str)> = length.iter().map(|n| ("length", n.as_str())).collect();
    test_support::synth::external_model(folder, location, &fields, 0)
}

#[test]
fn external_data_is_confined_to_the_models_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret.bin"), vec![7u8; 4096]).unwrap();
    let inside = d.join("model");
    let ok = external_model(&inside, "weights.bin", None);
    assert!(Model::load(&ok).is_ok());
    for (location, needle) in [
        ("../secret.bin", "leaves the folder"),
        (s(&d.join("secret.bin")), "absolute"),
    ] {
        let m = external_model(&inside, location, None);
        let e = Model::load(&m).unwrap_err().to_string();
        assert!(
            e.contains("conv.weight") && e.contains(location) && e.contains(needle),
            "{e}"
        );
        let (ok, out) = trt_calib(&["inspect", s(&m)]);
        assert_refused(ok, &out, &["conv.weight"]);
    }
    std::os::unix::fs::symlink(d.join("secret.bin"), inside.join("link.bin")).unwrap();
    let m = external_model(&inside, "link.bin", None);
    let e = Model::load(&m).unwrap_err().to_string();
    assert!(e.contains("conv.weight") && e.contains("link"), "{e}");
    // A length that does not fit names the initializer and the file.
    let m = external_model(&inside, "weights.bin", Some(1 << 20));
    let e = Model::load(&m).unwrap_err().to_string();
    assert!(
        e.contains("conv.weight") && e.contains("weights.bin"),
        "{e}"
    );
}

#[test]
fn a_model_named_without_a_folder_finds_its_external_data() {
    // `trt-calib inspect model.onnx` run inside the model's folder: the path's parent is
    // the empty path, which used to fail as "folder unreadable".
    let dir = tempfile::tempdir().unwrap();
    external_model(dir.path(), "weights.bin", None);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trt-calib"))
        .args(["inspect", "model.onnx"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("x: float32 [N, 3, H, W]"), "{text}");
}

fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}

#[test]
fn invalid_graphs_are_refused_naming_the_culprit_never_panicking() {
    let dir = tempfile::tempdir().unwrap();
    type Edit = Box<dyn Fn(&mut pb::GraphProto)>;
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "orphan-output",
            Box::new(|g| g.output[0].name = "nobody".into()),
            vec!["graph output 'nobody'", "produced by no node"],
        ),
        (
            "conv-stride-0",
            Box::new(|g| g.node[0].attribute.push(attr_ints("strides", &[0, 1]))),
            vec!["'conv'", "strides", "outside 1..="],
        ),
        (
            "conv-huge-pad",
            Box::new(|g| {
                g.node[0].attribute.retain(|a| a.name != "pads");
                g.node[0]
                    .attribute
                    .push(attr_ints("pads", &[1, 1 << 31, 1, 1]));
            }),
            vec!["'conv'", "pads", "2147483648"],
        ),
        (
            "init-size",
            Box::new(|g| g.initializer[0].raw_data.truncate(12)),
            vec!["initializer 'conv.weight'", "holds 12 bytes"],
        ),
        (
            "cycle",
            Box::new(|g| g.node[1].input[0] = "y".into()),
            vec!["cycle", "'relu'", "'gate'"],
        ),
        (
            "slice-step-0",
            Box::new(|g| {
                let i64s = |name: &str, v: i64| pb::TensorProto {
                    name: name.into(),
                    dims: vec![1],
                    data_type: 7,
                    raw_data: v.to_le_bytes().to_vec(),
                    ..Default::default()
                };
                g.initializer
                    .extend([i64s("s0", 0), i64s("s1", 4), i64s("ax", 1), i64s("st", 0)]);
                g.node.push(pb::NodeProto {
                    name: "slicer".into(),
                    op_type: "Slice".into(),
                    input: ["y", "s0", "s1", "ax", "st"].map(String::from).to_vec(),
                    output: vec!["sliced".into()],
                    ..Default::default()
                });
            }),
            vec!["'slicer'", "steps", "contain 0"],
        ),
    ];
    for (name, edit, needles) in cases {
        let mut m = test_support::synth::two_input_model();
        edit(m.graph_mut());
        let path = dir.path().join(format!("{name}.onnx"));
        std::fs::write(&path, m.to_bytes()).unwrap();
        let (ok, out) = trt_calib(&["inspect", s(&path)]);
        assert_refused(ok, &out, &needles);
    }
}

/// A `.npy` of `len` header-declared float32 values holding only `data` bytes.
fn npy_declaring(len: u64, data: usize) -> Vec<u8> {
    let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({len},), }}");
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend(vec![0u8; data]);
    out
}

#[test]
fn npy_and_npz_memory_bombs_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let bomb = npy_declaring(1_000_000_000_000, 64);
    assert!(bomb.len() <= 192);
    std::fs::write(d.join("data/s0/y_hat.npy"), &bomb).unwrap();
    let (ok, out) = quantize(d, &[]);
    assert_refused(ok, &out, &["y_hat.npy", "1000000000000", "limit"]);
    // The same array inside an .npz.
    let npz = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(npz.path().join("s.npz")).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    zip.start_file("y_hat.npy", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, &bomb).unwrap();
    zip.finish().unwrap();
    let e = calib::Source::Path(npz.path().into())
        .load(
            &calib::data::SampleRef::Npz(npz.path().join("s.npz")),
            &test_support::synth::seed_decoder(1).inputs().unwrap(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("s.npz") && e.contains("y_hat") && e.contains("limit"),
        "{e}"
    );
}

#[test]
fn an_npz_array_the_input_cannot_take_is_refused_before_it_is_inflated() {
    // A compressed entry whose header (and the archive) agree on a shape the model input
    // cannot take: refused by the header against the input's rank and fixed extents, before
    // the payload is inflated (it used to be read whole and refused after).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.npz");
    let mut npz = ndarray_npy::NpzWriter::new_compressed(std::fs::File::create(&path).unwrap());
    npz.add_array("y_hat", &ndarray::ArrayD::<f32>::zeros(vec![1, 64, 32, 32]))
        .unwrap();
    npz.finish().unwrap();
    let inputs = test_support::synth::seed_decoder(1).inputs().unwrap();
    let e = calib::Source::Path(dir.path().into())
        .load(&calib::data::SampleRef::Npz(path), &inputs)
        .unwrap_err()
        .to_string();
    for needle in [
        "s.npz",
        "y_hat",
        "[1, 64, 32, 32]",
        "[N, 8, h, w]",
        "nothing past the header",
    ] {
        assert!(e.contains(needle), "missing '{needle}' in: {e}");
    }
}

#[test]
fn compressed_npz_archives_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let data = d.join("npz");
    std::fs::create_dir_all(&data).unwrap();
    for (i, sample) in seed_samples(3, &[(1, 4, 4), (2, 6, 6), (3, 8, 8)], 1)
        .iter()
        .enumerate()
    {
        let f = std::fs::File::create(data.join(format!("s{i}.npz"))).unwrap();
        let mut npz = ndarray_npy::NpzWriter::new_compressed(f);
        for (name, t) in sample.tensors() {
            let calib::TensorData::F32(v) = t.data() else {
                panic!()
            };
            let a = ndarray::ArrayD::from_shape_vec(t.shape().to_vec(), v.clone()).unwrap();
            npz.add_array(name.as_str(), &a).unwrap();
        }
        npz.finish().unwrap();
    }
    let (out, model) = (d.join("q.onnx"), d.join("seed.onnx"));
    let mut args = vec!["quantize", "--model", s(&model), "--data", s(&data)];
    args.extend(["--out", s(&out), "--hold-out-every", "0"]);
    args.extend(PROFILE);
    let (ok, text) = trt_calib(&args);
    assert!(ok, "{text}");
    assert!(text.contains("3 calibration samples"), "{text}");
}

#[test]
fn options_that_were_silently_wrong_are_refused_with_the_allowed_range() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    for bins in ["0", "1", "1000000", "1000000000000"] {
        let (ok, out) = quantize(d, &["--method", "entropy", "--bins", bins]);
        assert_refused(ok, &out, &[bins, "allowed range is 128..=65536"]);
    }
    let (ok, out) = quantize(d, &["--threads", "100000"]);
    assert_refused(ok, &out, &["100000 threads", "1..=1024"]);
    let (ok, out) = quantize(d, &["--threads", "0"]);
    assert_refused(ok, &out, &["0 threads"]);
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (path, needle) in [
        (d.join("missing"), "missing"),
        (empty.clone(), "holds no sample"),
        (d.join("seed.onnx"), "seed.onnx"),
    ] {
        let (ok, out) = quantize(d, &["--report-data", s(&path)]);
        assert_refused(ok, &out, &[needle]);
    }
    let (ok, out) = quantize(d, &["--profile", "q:1x8x1x1:1x8x1x1:1x8x1x1"]);
    assert_refused(ok, &out, &["input 'q' already has a range"]);
    let (ok, out) = quantize(d, &["--exclude", "no_such_node"]);
    assert_refused(ok, &out, &["exclude 'no_such_node' matches no node"]);
    let (ok, out) = quantize(d, &["--hold-out-every", "1"]);
    assert_refused(ok, &out, &["every 1. sample", "no sample to calibrate"]);
    // A declared max shape whose input alone would need terabytes is refused before running.
    let (model, data, out_path) = (d.join("seed.onnx"), d.join("data"), d.join("q.onnx"));
    let mut args = vec![
        "quantize",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&out_path),
    ];
    args.extend(["--profile", "y_hat:1x8x4x4:2x8x6x6:100000x8x100000x100000"]);
    args.extend(&PROFILE[2..]);
    let (ok, out) = trt_calib(&args);
    assert_refused(
        ok,
        &out,
        &[
            "input 'y_hat'",
            "100000x8x100000x100000",
            "limit of one input",
        ],
    );
}

#[test]
fn activations_that_overflow_float32_are_an_error_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    for entry in std::fs::read_dir(d.join("data")).unwrap() {
        let p = entry.unwrap().path().join("y_hat.npy");
        let a: ndarray::ArrayD<f32> = ndarray_npy::read_npy(&p).unwrap();
        ndarray_npy::write_npy(&p, &a.mapv(|v| if v >= 0.0 { 3e38f32 } else { -3e38f32 })).unwrap();
    }
    let (ok, out) = quantize(d, &["--hold-out-every", "0"]);
    assert_refused(ok, &out, &["activation '", "became non-finite"]);
}

#[test]
fn a_fifo_named_like_a_sample_is_refused_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let fifo = d.join("data/s0/y_hat.npy");
    std::fs::remove_file(&fifo).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (ok, out) = quantize(d, &[]);
    assert_refused(ok, &out, &["y_hat.npy", "not a regular file"]);
}

#[test]
fn a_batch_size_clash_names_both_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let mut s = seed_samples(1, &[(2, 4, 4)], 1).remove(0);
    let q = HostTensor::f32(vec![1, 8, 1, 1], vec![1.0; 8]);
    s = s
        .tensors()
        .iter()
        .fold(Sample::new("clash"), |acc, (n, t)| {
            acc.with(n.clone(), if n == "q" { q.clone() } else { t.clone() })
        });
    s.save_npy_dir(&d.join("data/zz-clash")).unwrap();
    let (ok, out) = quantize(d, &["--hold-out-every", "0"]);
    assert_refused(ok, &out, &["zz-clash", "input 'q'", "'y_hat'", "'N'"]);
}

#[test]
fn a_link_to_a_folder_inside_the_data_is_refused_never_walked() {
    // A link to `/` among the samples used to walk the whole file system for the fingerprint;
    // a link to a sample folder was read but never fingerprinted. Both are refused, by name.
    for target in [PathBuf::from("/"), PathBuf::from("s0")] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        setup(d);
        std::os::unix::fs::symlink(&target, d.join("data/zz-link")).unwrap();
        let (ok, out) = quantize(d, &[]);
        assert_refused(ok, &out, &["zz-link", "symbolic link to a folder"]);
        assert!(!d.join("seed.int8.onnx").exists());
    }
}
