//! Shared fixtures of the integration tests (in `tests/`).
//!
//! Every model and sample is generated in code by `test_support::synth`; engines are built by
//! `trt-build` in process with a real TensorRT-RTX build on the CPU.

use std::sync::OnceLock;

use std::path::{Path, PathBuf};
use test_support::synth::{seed_decoder, seed_profile, seed_samples};

use trt_build::{Builder, Int8, Profile};

/// A built seed-decoder engine with two profiles (batch 1..=4 and 5..=8).
#[derive(Debug)]
pub struct SeedEngine {
    /// Serialized engine.
    pub engine: Vec<u8>,
    /// The Q/DQ ONNX it was built from.
    pub onnx: Vec<u8>,
    /// The manifest (JSON).
    pub manifest: String,
    _dir: tempfile::TempDir,
}

/// Seed of the decoder's weights in [`seed_engine`].
pub const SEED_MODEL: u64 = 3;

/// Builds (once per test binary) the seed decoder as an INT8 engine with two profiles:
/// batch 1..=4 at latent 4..=8 and batch 5..=8 at latent 8..=16.
pub fn seed_engine() -> &'static SeedEngine {
    static BUILT: OnceLock<SeedEngine> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        seed_decoder(SEED_MODEL)
            .save(dir.path().join("seed.onnx"), calib::WeightStorage::Inline)
            .expect("write the fixture model");
        let shapes = [(1, 4, 4), (2, 6, 6), (4, 8, 8), (8, 12, 12), (6, 16, 16)];
        let samples = seed_samples(5, &shapes, 1);
        let small = seed_profile([1, 2, 4], [4, 6, 8], 1);
        let large = seed_profile([5, 6, 8], [8, 12, 16], 1);
        let mut b = Builder::new();
        b.cargo_metadata(false)
            .out_dir(dir.path().join("out"))
            .cache_dir(dir.path().join("cache"))
            .optimization_level(0);
        b.model("seed", dir.path().join("seed.onnx"))
            .profile(small)
            .profile(large)
            .int8(Int8::from_samples(samples).hold_out_every(0));
        let m = b.try_build().expect("the fixture engine builds").remove(0);
        SeedEngine {
            engine: std::fs::read(&m.engine_path).expect("engine"),
            onnx: std::fs::read(m.entry.join("model.onnx")).expect("onnx"),
            manifest: m.manifest.to_json(),
            _dir: dir,
        }
    })
}

/// The seed-like decoder of `test_support::synth` (inputs `y_hat: [N,8,h,w]`, `q: [N,8,1,1]`,
/// `dummy_input: [N,3,H,W]`) in a temporary directory with six calibration samples as
/// `calibration/<sample>/<input>.npy`.
#[derive(Debug)]
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// Writes the model and the samples.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        seed_decoder(3)
            .save(dir.path().join("seed.onnx"), calib::WeightStorage::Inline)
            .unwrap();
        let shapes = [
            (1, 4, 4),
            (2, 6, 6),
            (3, 8, 8),
            (1, 8, 4),
            (2, 4, 8),
            (3, 6, 4),
        ];
        for (i, s) in seed_samples(5, &shapes, 1).iter().enumerate() {
            s.save_npy_dir(&dir.path().join("calibration").join(format!("s{i}")))
                .unwrap();
        }
        Fixture { dir }
    }

    /// A path inside the fixture's directory.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The profile the samples fit.
    pub fn profile() -> Profile {
        seed_profile([1, 2, 3], [4, 6, 8], 1)
    }

    /// A builder declaring the seed model with its out dir `out` and cache dir `cache`.
    pub fn builder(&self, out: &Path, cache: &Path) -> Builder {
        let mut b = Builder::new();
        b.cargo_metadata(false)
            .out_dir(out)
            .cache_dir(cache)
            .optimization_level(0);
        b.model("seed", self.path("seed.onnx"))
            .profile(Self::profile())
            .int8(Int8::from_path(self.path("calibration")).method(trt_build::Method::Entropy));
        b
    }
}
