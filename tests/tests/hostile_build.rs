//! The hostile inputs of `trt-calib`'s tests (`trt-calib/tests/hostile.rs`) through
//! `trt-build`, as an application's `build.rs` declares them: the same errors, naming the model
//! and the culprit, as one message.

use test_support::synth::{seed_profile, seed_samples};
use trt_build::{Builder, Int8};

fn builder(dir: &std::path::Path) -> Builder {
    let mut b = Builder::new();
    b.cargo_metadata(false)
        .out_dir(dir.join("out"))
        .cache_dir(dir.join("cache"))
        .optimization_level(0);
    b
}

#[test]
fn external_data_outside_the_model_folder_is_refused_by_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret.bin"), vec![1u8; 4096]).unwrap();
    let mut m = test_support::synth::seed_decoder(1);
    let w = m
        .graph_mut()
        .initializer
        .iter_mut()
        .find(|t| t.dims.len() == 4)
        .unwrap();
    let name = w.name.clone();
    w.raw_data.clear();
    w.data_location = Some(1);
    w.external_data = vec![tract_onnx::pb::StringStringEntryProto {
        key: "location".into(),
        value: "../secret.bin".into(),
    }];
    std::fs::create_dir_all(d.join("model")).unwrap();
    std::fs::write(d.join("model/seed.onnx"), m.to_bytes()).unwrap();
    let mut b = builder(d);
    b.model("seed", d.join("model/seed.onnx"))
        .profile(seed_profile([1, 2, 3], [4, 6, 8], 1))
        .int8(Int8::from_samples(seed_samples(3, &[(1, 4, 4)], 1)));
    let e = b.try_build().unwrap_err().to_string();
    assert!(
        e.contains("seed") && e.contains(&name) && e.contains("../secret.bin"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "one message: {e}");
}

#[test]
fn an_npy_memory_bomb_in_the_calibration_data_is_refused_by_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    test_support::synth::seed_decoder(1)
        .save(d.join("seed.onnx"), calib::WeightStorage::Inline)
        .unwrap();
    for (i, s) in seed_samples(3, &[(1, 4, 4), (2, 6, 6), (3, 8, 8)], 1)
        .iter()
        .enumerate()
    {
        s.save_npy_dir(&d.join("calibration").join(format!("s{i}")))
            .unwrap();
    }
    let mut h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }".to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bomb = b"\x93NUMPY\x01\x00".to_vec();
    bomb.extend((h.len() as u16).to_le_bytes());
    bomb.extend(h.as_bytes());
    std::fs::write(d.join("calibration/s1/q.npy"), bomb).unwrap();
    let mut b = builder(d);
    b.model("seed", d.join("seed.onnx"))
        .profile(seed_profile([1, 2, 3], [4, 6, 8], 1))
        .int8(Int8::from_path(d.join("calibration")).hold_out_every(0));
    let e = b.try_build().unwrap_err().to_string();
    assert!(
        e.contains("seed") && e.contains("q.npy") && e.contains("limit"),
        "{e}"
    );
}
