//! Declare ONNX models in `build.rs`; get calibrated INT8 TensorRT engines, cached by content
//! and embedded in the application with typed bindings.
//!
//! # Tutorial
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! trt-runtime = "0.1"
//!
//! [build-dependencies]
//! trt-build = "0.1"
//! ```
//!
//! `build.rs`:
//!
//! ```no_run
//! use trt_build::{Int8, Method, Profile, ShapeRange};
//!
//! fn main() {
//!     let mut build = trt_build::Builder::new();
//!     build
//!         .model("seed_decoder", "models/seed_decoder.onnx")
//!         .profile(
//!             Profile::new()
//!                 .input("y_hat", ShapeRange::new([1, 8, 4, 4], [2, 8, 8, 8], [4, 8, 16, 16]))
//!                 .input("q", ShapeRange::new([1, 8, 1, 1], [2, 8, 1, 1], [4, 8, 1, 1]))
//!                 .input("dummy_input", ShapeRange::new([1, 3, 16, 16], [2, 3, 32, 32], [4, 3, 64, 64])),
//!         )
//!         .int8(Int8::from_path("calibration/").method(Method::Entropy));
//!     build.build(); // prints one error message and exits on failure
//! }
//! ```
//!
//! `src/main.rs`:
//!
//! ```ignore
//! trt_runtime::include_engine!("seed_decoder");
//!
//! fn main() -> trt_runtime::Result<()> {
//!     let model = seed_decoder::load()?;
//!     let out = model.run(&seed_decoder::Inputs { y_hat: y.view(), q: q.view(), dummy_input: d.view() })?;
//!     println!("{:?}", out.x_hat.shape());
//!     Ok(())
//! }
//! ```
//!
//! # What `build()` does, per model
//!
//! 1. Validates the declaration against the ONNX graph before any heavy work: unknown input
//!    names (the real ones are listed with their shapes), dynamic inputs without a range,
//!    rank mismatches, fixed dims declared differently, `min <= opt <= max`, duplicate
//!    profiles, a missing or empty calibration source.
//! 2. Computes the cache key: SHA-256 of the ONNX (with external data), the calibration
//!    data, every option that changes the engine, and the TensorRT flavor and version.
//! 3. Looks the key up in the cache, then in the prebuilt directory. A hit does no
//!    calibration and no engine build. A corrupt entry is detected by hash and rebuilt.
//! 4. On a miss: calibrates with [`calib`] (samples validated against the profiles, held-out
//!    samples measured by the accuracy report), writes Q/DQ into the ONNX, builds the engine
//!    with TensorRT (TensorRT-RTX builds on the CPU), and stores everything atomically.
//! 5. Writes `trt-build/<name>.engine` and `trt-build/<name>.onnx` and `<name>.rs` into
//!    `OUT_DIR` (only when their bytes change) and prints one summary line per model; the full
//!    log goes to `OUT_DIR/trt-build.log`.
//!
//! # Environment
//!
//! | variable | meaning |
//! |---|---|
//! | `TRT_BUILD_CACHE_DIR` | engine cache (default: `trt-cache` next to Cargo's profile directory) |
//! | `TRT_BUILD_PREBUILT_DIR` | read-only directory of entries (`<key>/…`) copied from a cache |
//! | `TENSORRT_LIB_DIR`, `TENSORRT_ROOT` | where TensorRT's libraries are (see `tensorrt-sys`) |
//!
//! # Offline builds
//!
//! A machine without the TensorRT libraries builds the application from the cache or a
//! prebuilt directory: copy `<cache>/<key>/` from a machine that built it. A missing key is an
//! error that names the key and these steps.

mod cache;
pub mod codegen;
mod engine;
mod env;
mod error;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use calib::{HostTensor, Method, Profile, Sample, ShapeRange, Source};
pub use error::Error;
use error::Kind;
use sha2::{Digest, Sha256};
use trt_manifest::{CalibrationSummary, Manifest};

use crate::cache::{ENGINE, MANIFEST, Miss, ONNX};
use crate::engine::EngineOptions;
use crate::env::Cargo;

/// Version of the cache-key recipe; bump when generated artifacts change meaning.
const KEY_VERSION: &str = "trt-build/1";

/// INT8 calibration settings of a model.
#[derive(Debug, Clone)]
pub struct Int8 {
    source: Source,
    report: Option<Source>,
    method: Method,
    exclude: Vec<String>,
    hold_out_every: usize,
    fp16: bool,
}

impl Int8 {
    /// Calibration data from a path: a directory with one sub-directory of `<input>.npy` per
    /// sample, a directory of `.npz` files, or one `.npz` file.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        Self::from_source(Source::Path(path.into()))
    }

    /// Calibration data built in code.
    pub fn from_samples(samples: Vec<Sample>) -> Self {
        Self::from_source(Source::Memory(samples))
    }

    /// Calibration data from any source.
    pub fn from_source(source: Source) -> Self {
        Int8 {
            source,
            report: None,
            method: Method::Entropy,
            exclude: Vec::new(),
            hold_out_every: 5,
            fp16: false,
        }
    }

    /// The observer (default: entropy, as TensorRT's calibrator).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Keeps a node (by name) or an operator type in float.
    pub fn exclude(mut self, name_or_op: impl Into<String>) -> Self {
        self.exclude.push(name_or_op.into());
        self
    }

    /// Measures accuracy on this source instead of held-out calibration samples.
    pub fn report_source(mut self, source: Source) -> Self {
        self.report = Some(source);
        self
    }

    /// Also runs the layers left in float in FP16 (the ONNX is converted, inputs and outputs
    /// keep their types; the accuracy report measures the converted model).
    pub fn fp16(mut self, enable: bool) -> Self {
        self.fp16 = enable;
        self
    }

    /// Holds out every `n`-th sample for the accuracy report (default 5; 0 holds out none).
    pub fn hold_out_every(mut self, n: usize) -> Self {
        self.hold_out_every = n;
        self
    }
}

/// Precision of an engine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Precision {
    /// INT8 through Q/DQ written by `calib`.
    Int8(Int8),
    /// FP16: TensorRT 10's builder flag; for always strongly typed flavors (TensorRT 11,
    /// TensorRT-RTX) the ONNX is converted to FP16 with `calib::fp16` (I/O types kept).
    Fp16,
    /// The ONNX as it is.
    Fp32,
}

impl Precision {
    fn name(&self) -> &'static str {
        match self {
            Precision::Int8(_) => "int8",
            Precision::Fp16 => "fp16",
            Precision::Fp32 => "fp32",
        }
    }
}

/// One declared model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    name: String,
    onnx: PathBuf,
    profiles: Vec<Profile>,
    precision: Precision,
    optimization_level: Option<i32>,
    workspace_limit: Option<usize>,
}

impl ModelConfig {
    /// Adds an optimization profile (min/opt/max of every dynamic input).
    pub fn profile(&mut self, profile: Profile) -> &mut Self {
        self.profiles.push(profile);
        self
    }

    /// INT8 with calibration.
    pub fn int8(&mut self, int8: Int8) -> &mut Self {
        self.precision = Precision::Int8(int8);
        self
    }

    /// FP16 (see [`Precision::Fp16`]).
    pub fn fp16(&mut self) -> &mut Self {
        self.precision = Precision::Fp16;
        self
    }

    /// FP32: the ONNX as it is.
    pub fn fp32(&mut self) -> &mut Self {
        self.precision = Precision::Fp32;
        self
    }

    /// Builder optimization level for this model (0..=5).
    pub fn optimization_level(&mut self, level: i32) -> &mut Self {
        self.optimization_level = Some(level);
        self
    }

    /// Workspace memory limit for this model, in bytes.
    pub fn workspace_limit(&mut self, bytes: usize) -> &mut Self {
        self.workspace_limit = Some(bytes);
        self
    }
}

/// What [`Builder::try_build`] produced for one model.
#[derive(Debug, Clone)]
pub struct BuiltModel {
    /// Model name.
    pub name: String,
    /// The manifest.
    pub manifest: Manifest,
    /// Whether the engine came from the cache or prebuilt directory.
    pub cache_hit: bool,
    /// Cache entry directory.
    pub entry: PathBuf,
    /// `OUT_DIR/trt-build/<name>.engine`.
    pub engine_path: PathBuf,
    /// `OUT_DIR/<name>.rs`.
    pub code_path: PathBuf,
}

/// Declares models and builds their engines (shaped like `cc::Build`).
#[derive(Debug, Clone)]
pub struct Builder {
    models: Vec<ModelConfig>,
    out_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    prebuilt_dir: Option<PathBuf>,
    cargo_metadata: bool,
    optimization_level: Option<i32>,
    workspace_limit: Option<usize>,
    embed_onnx: bool,
    tensorrt_lib_dir: Option<PathBuf>,
    flavor: Option<tensorrt_sys::Flavor>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder with no model, printing Cargo instructions, embedding the ONNX.
    pub fn new() -> Self {
        Builder {
            models: Vec::new(),
            out_dir: None,
            cache_dir: None,
            prebuilt_dir: None,
            cargo_metadata: true,
            optimization_level: None,
            workspace_limit: None,
            embed_onnx: true,
            tensorrt_lib_dir: None,
            flavor: None,
        }
    }

    /// Declares a model: `name` becomes the Rust module name, `onnx` is its path. FP32 until
    /// [`ModelConfig::int8`] or [`ModelConfig::fp16`] is called.
    pub fn model(&mut self, name: impl Into<String>, onnx: impl Into<PathBuf>) -> &mut ModelConfig {
        self.models.push(ModelConfig {
            name: name.into(),
            onnx: onnx.into(),
            profiles: Vec::new(),
            precision: Precision::Fp32,
            optimization_level: None,
            workspace_limit: None,
        });
        self.models.last_mut().expect("just pushed")
    }

    /// Output directory (default: `OUT_DIR`).
    pub fn out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Cache directory (default: `TRT_BUILD_CACHE_DIR`, else `trt-cache` under Cargo's target
    /// directory).
    pub fn cache_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Read-only directory of prebuilt entries (default: `TRT_BUILD_PREBUILT_DIR`).
    pub fn prebuilt_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.prebuilt_dir = Some(dir.into());
        self
    }

    /// Whether to print `cargo:` instructions (default true; false outside build scripts).
    pub fn cargo_metadata(&mut self, enabled: bool) -> &mut Self {
        self.cargo_metadata = enabled;
        self
    }

    /// Default builder optimization level (0..=5).
    pub fn optimization_level(&mut self, level: i32) -> &mut Self {
        self.optimization_level = Some(level);
        self
    }

    /// Default workspace memory limit in bytes.
    pub fn workspace_limit(&mut self, bytes: usize) -> &mut Self {
        self.workspace_limit = Some(bytes);
        self
    }

    /// Whether generated modules embed the ONNX for the CPU backend (default true).
    pub fn embed_onnx(&mut self, embed: bool) -> &mut Self {
        self.embed_onnx = embed;
        self
    }

    /// Requires this TensorRT flavor (TensorRT or TensorRT-RTX). The flavor is fixed when
    /// `tensorrt-sys` is compiled (from the headers found); a mismatch is a declaration error
    /// that says which headers were found, instead of an engine for the wrong runtime.
    pub fn flavor(&mut self, flavor: tensorrt_sys::Flavor) -> &mut Self {
        self.flavor = Some(flavor);
        self
    }

    /// Opens TensorRT only from this folder (default: `tensorrt-sys`'s search order:
    /// `TENSORRT_LIB_DIR`, `TENSORRT_ROOT/lib`, the build-time folder, the system path).
    pub fn tensorrt_lib_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.tensorrt_lib_dir = Some(dir.into());
        self
    }

    /// Builds every model; on failure prints `error occurred in trt-build: …` and exits with
    /// status 1 (no backtrace), as `cc` does.
    pub fn build(&self) -> Vec<BuiltModel> {
        match self.try_build() {
            Ok(built) => built,
            Err(e) => {
                eprintln!("\nerror occurred in trt-build: {e}\n");
                std::process::exit(1);
            }
        }
    }

    /// Builds every model.
    ///
    /// # Errors
    ///
    /// The first failure, naming the model and the cause.
    pub fn try_build(&self) -> Result<Vec<BuiltModel>, Error> {
        let cargo = Cargo::new(self.cargo_metadata);
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => cargo.env("OUT_DIR").map(PathBuf::from).ok_or_else(|| {
                Error::new(
                    Kind::Declaration,
                    "OUT_DIR is not set: run from a build script or call out_dir()",
                )
            })?,
        };
        let cache_dir = match (&self.cache_dir, cargo.env("TRT_BUILD_CACHE_DIR")) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => PathBuf::from(d),
            (None, None) => default_cache_dir(&out_dir),
        };
        let prebuilt = self
            .prebuilt_dir
            .clone()
            .or_else(|| cargo.env("TRT_BUILD_PREBUILT_DIR").map(PathBuf::from));
        for var in ["TENSORRT_LIB_DIR", "TENSORRT_ROOT"] {
            cargo.env(var);
        }
        if let Some(wanted) = self.flavor
            && wanted != tensorrt_sys::header_flavor()
        {
            return Err(Error::new(
                Kind::Declaration,
                format!(
                    "the build asks for {wanted} but tensorrt-sys was compiled against the {} {} headers in {}; \
                     point TENSORRT_ROOT (or TENSORRT_INCLUDE_DIR) at {wanted}",
                    tensorrt_sys::header_flavor(),
                    tensorrt_sys::format_version(tensorrt_sys::header_version()),
                    tensorrt_sys::HEADER_INCLUDE_DIR
                ),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for m in &self.models {
            if !codegen::valid_module_name(&m.name) {
                return Err(Error::declaration(
                    &m.name,
                    "the name must be a lower-case Rust identifier (it becomes a module)",
                ));
            }
            if !names.insert(&m.name) {
                return Err(Error::declaration(&m.name, "declared twice"));
            }
        }
        let log_path = out_dir.join("trt-build.log");
        let mut log = String::new();
        let mut built = Vec::new();
        for m in &self.models {
            built.push(self.build_model(
                m,
                &cargo,
                &out_dir,
                &cache_dir,
                prebuilt.as_deref(),
                &mut log,
            )?);
        }
        cache::write_if_changed(&log_path, log.as_bytes())?;
        Ok(built)
    }

    fn build_model(
        &self,
        m: &ModelConfig,
        cargo: &Cargo,
        out_dir: &Path,
        cache_dir: &Path,
        prebuilt: Option<&Path>,
        log: &mut String,
    ) -> Result<BuiltModel, Error> {
        let start = Instant::now();
        let name = m.name.as_str();
        cargo.rerun_if_changed(&m.onnx);
        let model = calib::Model::load(&m.onnx).map_err(|e| Error::declaration(name, e))?;
        for f in model.external_files() {
            cargo.rerun_if_changed(f);
        }
        let inputs = model.inputs().map_err(|e| Error::declaration(name, e))?;
        calib::profile::require_profiles(&inputs, &m.profiles)
            .map_err(|e| Error::declaration(name, e))?;
        calib::profile::validate_profiles(&inputs, &m.profiles)
            .map_err(|e| Error::declaration(name, e))?;
        for (a, b) in calib::profile::overlapping_profiles(&m.profiles) {
            cargo.warning(&format!(
                "trt-build: {name}: profiles {a} and {b} overlap; calls that fit both use profile {a}"
            ));
        }
        let options = EngineOptions {
            optimization_level: m.optimization_level.or(self.optimization_level),
            workspace_limit: m.workspace_limit.or(self.workspace_limit),
            fp16_flag: matches!(m.precision, Precision::Fp16) && !always_strongly_typed(),
        };

        // The key: model, data, options, TensorRT flavor and version.
        let mut key = Sha256::new();
        key.update(KEY_VERSION);
        key.update(tensorrt_sys::header_flavor().as_str());
        key.update(tensorrt_sys::header_version().to_le_bytes());
        let fp16 = match &m.precision {
            Precision::Int8(int8) => int8.fp16,
            Precision::Fp16 => always_strongly_typed(),
            Precision::Fp32 => false,
        };
        key.update(
            serde_json::to_vec(&(&m.profiles, m.precision.name(), &options, fp16))
                .expect("serializable"),
        );
        let mut calibrator_sources = None;
        match &m.precision {
            Precision::Int8(int8) => {
                if let Source::Path(p) = &int8.source {
                    if !p.exists() {
                        return Err(Error::declaration(
                            name,
                            format!("calibration data {} does not exist", p.display()),
                        ));
                    }
                    cargo.rerun_if_changed(p);
                }
                let files = int8
                    .source
                    .files()
                    .map_err(|e| Error::declaration(name, e))?;
                for f in &files {
                    cargo.rerun_if_changed(f);
                }
                int8.source
                    .list()
                    .map_err(|e| Error::declaration(name, e))?;
                let (calibration, held_out) = match (&int8.report, int8.hold_out_every) {
                    (Some(r), _) => (int8.source.clone(), r.clone()),
                    (None, 0) => (int8.source.clone(), Source::Memory(Vec::new())),
                    (None, n) => int8
                        .source
                        .split(n)
                        .map_err(|e| Error::declaration(name, e))?,
                };
                let calibrator = self.calibrator(&model, int8, &m.profiles);
                let fingerprint = calibrator
                    .fingerprint(&calibration)
                    .map_err(|e| Error::calibration(name, e))?;
                key.update(&fingerprint);
                if let Some(r) = &int8.report {
                    for f in r.files().map_err(|e| Error::declaration(name, e))? {
                        cargo.rerun_if_changed(&f);
                    }
                }
                calibrator_sources = Some((calibration, held_out, fingerprint));
            }
            Precision::Fp16 | Precision::Fp32 => key.update(model.to_bytes()),
        }
        let key = hex::encode(key.finalize());

        let mut note = String::new();
        let found = match cache::lookup(cache_dir, &key, true) {
            Ok(e) => Some((e, "cache hit")),
            Err(miss) => {
                if let Miss::Corrupt(why) = miss {
                    cargo.warning(&format!(
                        "trt-build: {name}: cache entry {key} was corrupt and is rebuilt: {why}"
                    ));
                }
                prebuilt
                    .and_then(|p| cache::lookup(p, &key, false).ok())
                    .map(|e| (e, "prebuilt"))
            }
        };
        let (entry, hit) = match found {
            Some((entry, how)) => {
                note.push_str(how);
                (entry, true)
            }
            None => {
                note.push_str("cache miss");
                let library = engine::library(self.tensorrt_lib_dir.as_deref()).map_err(|e| {
                    Error::new(
                        Kind::Missing,
                        format!(
                            "model `{name}`: no engine with key {key} in the cache ({}){}, and TensorRT cannot build one: {e}\n\
                             To build without TensorRT, build once on a machine that has it, then copy {}/{key}/ \
                             into a directory named by TRT_BUILD_PREBUILT_DIR (or Builder::prebuilt_dir) here.",
                            cache_dir.display(),
                            prebuilt.map(|p| format!(" or the prebuilt directory ({})", p.display())).unwrap_or_default(),
                            cache_dir.display(),
                        ),
                    )
                })?;
                let entry = self.build_entry(
                    m,
                    &model,
                    &key,
                    &options,
                    calibrator_sources,
                    cache_dir,
                    &library,
                    cargo,
                    log,
                )?;
                (entry, false)
            }
        };

        let manifest_bytes = entry.read(MANIFEST)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| Error::io(entry.path(MANIFEST).display(), e))?;
        let engine_bytes = entry.read(ENGINE)?;
        // Artifacts live in OUT_DIR/trt-build/ so they never collide with the build script's own files.
        let artifacts = out_dir.join("trt-build");
        let engine_path = artifacts.join(format!("{name}.engine"));
        cache::write_if_changed(&engine_path, &engine_bytes)?;
        let onnx_path = if self.embed_onnx {
            let p = artifacts.join(format!("{name}.onnx"));
            cache::write_if_changed(&p, &entry.read(ONNX)?)?;
            Some(p)
        } else {
            None
        };
        let code = codegen::generate(&manifest, &engine_path, onnx_path.as_deref())?;
        let code_path = out_dir.join(format!("{name}.rs"));
        cache::write_if_changed(&code_path, code.as_bytes())?;

        let metric = manifest
            .calibration
            .as_ref()
            .and_then(|c| {
                c.min_cosine.map(|cos| {
                    format!(
                        ", INT8 vs FP32 cosine {cos:.5} SNR {:.1} dB on {} held-out samples",
                        c.min_snr_db.unwrap_or(0.0),
                        c.report_samples
                    )
                })
            })
            .unwrap_or_default();
        let summary = format!(
            "trt-build: {name}: {} engine {:.1} KiB{metric}, {:.1} s, {note}",
            manifest.precision,
            engine_bytes.len() as f64 / 1024.0,
            start.elapsed().as_secs_f64()
        );
        cargo.warning(&summary);
        log.push_str(&summary);
        log.push('\n');
        Ok(BuiltModel {
            name: name.to_string(),
            manifest,
            cache_hit: hit,
            entry: entry.dir.clone(),
            engine_path,
            code_path,
        })
    }

    fn calibrator<'m>(
        &self,
        model: &'m calib::Model,
        int8: &Int8,
        profiles: &[Profile],
    ) -> calib::Calibrator<'m> {
        let mut c = calib::Calibrator::new(model)
            .method(int8.method)
            .profiles(profiles.to_vec());
        for e in &int8.exclude {
            c = c.exclude(e);
        }
        c
    }

    #[allow(clippy::too_many_arguments)]
    fn build_entry(
        &self,
        m: &ModelConfig,
        model: &calib::Model,
        key: &str,
        options: &EngineOptions,
        sources: Option<(Source, Source, String)>,
        cache_dir: &Path,
        library: &std::sync::Arc<tensorrt_sys::Library>,
        cargo: &Cargo,
        log: &mut String,
    ) -> Result<cache::Entry, Error> {
        let name = m.name.as_str();
        let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
        let (onnx, calibration) = match (&m.precision, sources) {
            (Precision::Int8(int8), Some((calibration_source, held_out, fingerprint))) => {
                let t = Instant::now();
                // Progress goes to the build log: every pass's start and every tenth of it.
                let progress = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
                let (sink, label) = (progress.clone(), name.to_string());
                let calibrator = self
                    .calibrator(model, int8, &m.profiles)
                    .on_progress(move |p| {
                        let step = (p.total / 10).max(1);
                        if p.done == 1 || p.done % step == 0 || p.done == p.total {
                            let mut text = sink.lock().unwrap_or_else(|e| e.into_inner());
                            text.push_str(&format!(
                                "{label}: calibration pass {}/{}: {}/{} samples\n",
                                p.pass, p.passes, p.done, p.total
                            ));
                        }
                    });
                let calib_dir = cache_dir.join("calibrations");
                let (calibration, reused) = calibrator
                    .run_cached_with(
                        &calibration_source,
                        calib_dir.join(format!("{fingerprint}.json")),
                        fingerprint,
                    )
                    .map_err(|e| Error::calibration(name, e))?;
                for w in &calibration.warnings {
                    cargo.warning(&format!("trt-build: {name}: {w}"));
                }
                let mut qdq = calibration
                    .apply(model)
                    .map_err(|e| Error::calibration(name, e))?;
                if int8.fp16 {
                    qdq = calib::fp16::convert(&qdq);
                }
                let held = held_out.list().map(|r| r.len()).unwrap_or(0);
                let report = if held > 0 {
                    Some(
                        calib::report::compare(model, &qdq, &held_out)
                            .map_err(|e| Error::calibration(name, e))?,
                    )
                } else {
                    None
                };
                log.push_str(&progress.lock().unwrap_or_else(|e| e.into_inner()));
                log.push_str(&format!(
                    "{name}: calibration ({}) on {} samples {} in {:.2} s\n",
                    calibration.method.name(),
                    calibration.samples,
                    if reused { "reused" } else { "computed" },
                    t.elapsed().as_secs_f64()
                ));
                if let Some(r) = &report {
                    log.push_str(&format!("{name}: accuracy report\n{}\n", r.table()));
                    files.push((
                        "report.json",
                        serde_json::to_vec_pretty(r).expect("serializable"),
                    ));
                }
                files.push((
                    "calibration.json",
                    serde_json::to_vec_pretty(&calibration).expect("serializable"),
                ));
                let summary = CalibrationSummary {
                    method: calibration.method.name(),
                    samples: calibration.samples,
                    activations: calibration.placement.activations.len(),
                    weights: calibration.placement.weights.len(),
                    report_samples: report.as_ref().map_or(0, |r| r.samples),
                    min_cosine: report.as_ref().map(|r| {
                        r.outputs
                            .iter()
                            .map(|o| o.cosine)
                            .fold(f64::INFINITY, f64::min)
                    }),
                    min_snr_db: report.as_ref().map(|r| {
                        r.outputs
                            .iter()
                            .map(|o| o.snr_db)
                            .fold(f64::INFINITY, f64::min)
                    }),
                };
                (qdq.to_bytes(), Some(summary))
            }
            (Precision::Fp16, _) if always_strongly_typed() => {
                (calib::fp16::convert(model).to_bytes(), None)
            }
            _ => (model.to_bytes(), None),
        };
        let t = Instant::now();
        let built = engine::build(name, &onnx, model.path(), &m.profiles, options, library)?;
        for w in &built.warnings {
            cargo.warning(&format!("trt-build: {name}: {w}"));
        }
        log.push_str(&format!("{name}: engine build log\n{}", built.log));
        log.push_str(&format!(
            "{name}: engine built in {:.2} s\n",
            t.elapsed().as_secs_f64()
        ));
        let manifest = Manifest {
            format_version: trt_manifest::FORMAT_VERSION,
            name: name.to_string(),
            interface: built.interface,
            engine_sha256: cache::sha256(&built.engine),
            cache_key: key.to_string(),
            flavor: tensorrt_sys::header_flavor().as_str().to_string(),
            tensorrt_version: library.version(),
            precision: m.precision.name().to_string(),
            calibration,
        };
        files.push((ENGINE, built.engine));
        files.push((MANIFEST, manifest.to_json().into_bytes()));
        files.push((ONNX, onnx));
        files.push(("build.log", built.log.into_bytes()));
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        cache::store(cache_dir, key, &refs)
    }
}

/// TensorRT 11 and TensorRT-RTX take precision from the network only.
fn always_strongly_typed() -> bool {
    tensorrt_sys::header_flavor() == tensorrt_sys::Flavor::Rtx
        || tensorrt_sys::header_version() >= 110000
}

/// `trt-cache` next to Cargo's profile directories (`<target>/trt-cache`), found from
/// `OUT_DIR = <target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`.
fn default_cache_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .map(|target| target.join("trt-cache"))
        .unwrap_or_else(|| out_dir.join("trt-cache"))
}

/// One-call shortcut: builds one INT8 model with one profile from a calibration directory.
///
/// # Errors
///
/// As [`Builder::try_build`].
pub fn compile_int8(
    name: &str,
    onnx: impl Into<PathBuf>,
    profile: Profile,
    calibration: impl Into<PathBuf>,
) -> Result<BuiltModel, Error> {
    let mut b = Builder::new();
    b.model(name, onnx)
        .profile(profile)
        .int8(Int8::from_path(calibration));
    Ok(b.try_build()?.remove(0))
}
