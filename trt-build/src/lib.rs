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
//!         .int8(Int8::from_path("calibration/").method(Method::Auto).min_cosine(0.99));
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
//! 3. Looks the key up in the local cache, the team's remote cache (see below), then the
//!    prebuilt directory. A hit does no calibration and no engine build. A corrupt entry is
//!    detected by hash and rebuilt.
//! 4. On a miss: calibrates with [`calib`] (samples validated against the profiles, held-out
//!    samples measured by the accuracy report), writes Q/DQ into the ONNX, builds the engine
//!    with TensorRT (TensorRT-RTX builds on the CPU), and stores everything atomically.
//! 5. Writes `trt-build/<name>.engine` and `trt-build/<name>.onnx` and `<name>.rs` into
//!    `OUT_DIR` (only when their bytes change) and prints one summary line per model; the full
//!    log goes to `OUT_DIR/trt-build.log`.
//!
//! # Accuracy
//!
//! [`Int8`] defaults to [`Method::Auto`]: every method's thresholds come from one pass of
//! statistics and the best on the held-out samples wins, by the mean SNR over outputs or the
//! criterion [`Int8::auto_criterion`] names (a built-in task metric such as top-1 agreement,
//! or the application's own); on models with softmax or normalization outputs it also tries
//! clipping methods with those tensors at their full range. [`Int8::min_cosine`],
//! [`Int8::min_snr_db`] or [`Int8::target`] (a task metric through a closure) set an accuracy
//! target: the most sensitive quantized nodes are kept in float until it is met, or the build
//! fails with the table. The choice, the nodes kept in float and the metric are in the cache
//! key's inputs, the manifest and the generated module's docs (see `calib::tune`).
//!
//! # Real models
//!
//! Models tract cannot run are calibrated with onnxruntime (`ORT_DYLIB_PATH`); `If` nodes
//! decided by the declared shapes are folded, and [`ModelConfig::constant_input`] binds an
//! input the application never changes (a sample rate) so `If` nodes that test it fold too;
//! opset 11/12 models are raised to opset 13.
//!
//! # Debug builds
//!
//! Cargo compiles build scripts and their dependencies without optimisation unless the
//! application sets `[profile.dev.build-override] opt-level = 3`; calibration is then many
//! times slower. `trt-build` detects this and prints that snippet as a Cargo warning before it
//! calibrates.
//!
//! # Environment
//!
//! | variable | meaning |
//! |---|---|
//! | `TRT_BUILD_CACHE_DIR` | engine cache (default: `trt-cache` next to Cargo's profile directory) |
//! | `TRT_BUILD_PREBUILT_DIR` | read-only directory of entries (`<key>/…`) copied from a cache |
//! | `TRT_BUILD_REMOTE_CACHE` | team cache: `s3://bucket/prefix[?endpoint=…&region=…]`, `webdav+http(s)://host/path`, `redis(s)://[user:pw@]host:port/db` |
//! | `TRT_BUILD_REMOTE_CACHE_MODE` | `read-write` (default), `read` (never upload), `require` (never build) |
//! | `TRT_BUILD_REMOTE_CACHE_TIMEOUT` | seconds per remote operation step (default 10) |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` | S3 credentials, region, endpoint |
//! | `TRT_BUILD_WEBDAV_USERNAME`, `TRT_BUILD_WEBDAV_PASSWORD`, `TRT_BUILD_WEBDAV_TOKEN` | WebDAV credentials |
//! | `TRT_BUILD_REDIS_PASSWORD` | Redis password (or in the URL) |
//! | `TENSORRT_LIB_DIR`, `TENSORRT_ROOT` | where TensorRT's libraries are (see `tensorrt-sys`) |
//! | `ORT_DYLIB_PATH` | onnxruntime's C library, calibration's second CPU engine |
//! | `TRT_CALIB_ENGINE` | `auto` (default: tract, else onnxruntime), `tract` or `onnxruntime` |
//!
//! # Sharing engines across a team
//!
//! With a remote cache ([`Builder::remote_cache`] or `TRT_BUILD_REMOTE_CACHE`), what one
//! machine built (CI, in `read-write` mode) every other machine fetches: the entry is verified
//! file by file against its recorded SHA-256 before use, so the same key embeds the same bytes
//! everywhere, and the generated code names its files relative to `OUT_DIR`, so it is the same
//! too. Publishing is create-only and never replaces a valid entry; a builder that lost the
//! race uses the published entry. A remote that is down, hangs or refuses the credentials
//! costs one warning and the build goes on locally (bounded by the time-out); `require` mode
//! instead fails with the key, the remote and the cause, and never builds. Each summary line
//! says `local hit`, `remote hit (…)`, `built and uploaded (…)` or `built`. See the
//! `trt-cache` crate.
//!
//! # Offline builds
//!
//! A machine without the TensorRT libraries builds the application from the cache or a
//! prebuilt directory: copy `<cache>/<key>/` from a machine that built it. A missing key is an
//! error that names the key and these steps.

mod artifacts;
mod cache;
mod cargo;
pub mod codegen;
mod declaration;
mod engine;
mod error;
mod key;
mod pipeline;

use std::path::PathBuf;

pub use cache::Origin;
pub use calib::{HostTensor, Method, Profile, Sample, ShapeRange, Source};
pub use declaration::{Int8, ModelConfig, Precision};
pub use error::Error;
use error::Kind;
pub use trt_cache::{Mode as RemoteCacheMode, RemoteConfig};
use trt_manifest::Manifest;

use crate::cargo::CargoOutput;
use crate::pipeline::default_cache_dir;

/// Version of the cache-key recipe; bump when generated artifacts change meaning.
const KEY_VERSION: &str = "trt-build/2";

/// What [`Builder::try_build`] produced for one model.
#[derive(Debug, Clone)]
pub struct BuiltModel {
    /// Model name.
    pub name: String,
    /// The manifest.
    pub manifest: Manifest,
    /// Whether the engine came from a cache (local, remote or prebuilt) rather than a build.
    pub cache_hit: bool,
    /// Where the engine came from.
    pub origin: Origin,
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
    remote: Option<RemoteConfig>,
    cargo_metadata: bool,
    optimization_level: Option<i32>,
    workspace_limit: Option<usize>,
    embed_onnx: bool,
    tensorrt_lib_dir: Option<PathBuf>,
    flavor: Option<tensorrt_sys::Flavor>,
    trust: Option<trt_cache::TrustPolicy>,
    signer: Option<std::sync::Arc<trt_cache::SigningKey>>,
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
            remote: None,
            cargo_metadata: true,
            optimization_level: None,
            workspace_limit: None,
            embed_onnx: true,
            tensorrt_lib_dir: None,
            flavor: None,
            trust: None,
            signer: None,
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
            constants: Vec::new(),
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

    /// The signatures entries from the remote cache and the prebuilt directory must carry
    /// (default: `TRT_BUILD_CACHE_TRUSTED_KEYS`, `TRT_BUILD_CACHE_REQUIRE_SIGNED`; see
    /// `trt_cache::signing`). An entry refused from the remote is rebuilt here (with a
    /// warning); one refused from the prebuilt directory is an error.
    pub fn cache_trust(&mut self, policy: trt_cache::TrustPolicy) -> &mut Self {
        self.trust = Some(policy);
        self
    }

    /// Signs the entries built here before they are published and stored (default:
    /// `TRT_BUILD_CACHE_SIGNING_KEY`).
    pub fn cache_signing_key(&mut self, key: trt_cache::SigningKey) -> &mut Self {
        self.signer = Some(std::sync::Arc::new(key));
        self
    }

    /// Read-only directory of prebuilt entries (default: `TRT_BUILD_PREBUILT_DIR`).
    pub fn prebuilt_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.prebuilt_dir = Some(dir.into());
        self
    }

    /// The team's remote cache (default: from `TRT_BUILD_REMOTE_CACHE` and the variables in
    /// the crate docs' table): looked up after the local cache and before the prebuilt
    /// directory; what is built here is uploaded in read-write mode.
    ///
    /// ```no_run
    /// # let mut build = trt_build::Builder::new();
    /// use trt_build::{RemoteCacheMode, RemoteConfig};
    /// build.remote_cache(
    ///     RemoteConfig::new("s3://engines/team?endpoint=http://127.0.0.1:9000")
    ///         .mode(RemoteCacheMode::Read)
    ///         .with_timeout(std::time::Duration::from_secs(5)),
    /// );
    /// ```
    pub fn remote_cache(&mut self, config: RemoteConfig) -> &mut Self {
        self.remote = Some(config);
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
    ///
    /// # Example
    ///
    /// A two-input model calibrated to INT8 on samples made in code, outside a build script
    /// (so no `cargo:` lines, and explicit folders); the second build is a cache hit:
    ///
    /// ```
    /// use trt_build::{Builder, HostTensor, Int8, Method, Profile, Sample, ShapeRange};
    /// # let dir = tempfile::tempdir()?;
    /// # let onnx = dir.path().join("two_inputs.onnx");
    /// # test_support::synth::two_input_model().save(&onnx, calib::WeightStorage::Inline)?;
    /// // x: [N, 3, H, W] and q: [N, 8] -> y: [N, 8]
    /// let samples: Vec<Sample> = [1, 2, 4, 3, 1]
    ///     .into_iter()
    ///     .enumerate()
    ///     .map(|(i, n)| {
    ///         let x = (0..n * 3 * 16 * 16).map(|v| ((v + i) % 7) as f32 / 7.0).collect();
    ///         Sample::new(format!("s{i}"))
    ///             .with("x", HostTensor::f32(vec![n, 3, 16, 16], x))
    ///             .with("q", HostTensor::f32(vec![n, 8], vec![0.5; n * 8]))
    ///     })
    ///     .collect();
    /// let mut build = Builder::new();
    /// build.cargo_metadata(false).out_dir(dir.path().join("out")).cache_dir(dir.path().join("cache"));
    /// build
    ///     .model("two_inputs", &onnx)
    ///     .profile(
    ///         Profile::new()
    ///             .input("x", ShapeRange::new([1, 3, 16, 16], [2, 3, 16, 16], [4, 3, 16, 16]))
    ///             .input("q", ShapeRange::new([1, 8], [2, 8], [4, 8])),
    ///     )
    ///     .int8(Int8::from_samples(samples).method(Method::MinMax));
    /// let built = build.try_build()?.remove(0);
    /// assert_eq!(built.manifest.precision, "int8");
    /// assert!(built.engine_path.is_file()); // what `include_engine!` embeds
    /// assert!(build.try_build()?.remove(0).cache_hit);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_build(&self) -> Result<Vec<BuiltModel>, Error> {
        let cargo = CargoOutput::new(self.cargo_metadata);
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
        let remote_config = match &self.remote {
            Some(c) => Some(c.clone()),
            None => trt_cache::RemoteConfig::from_env(|v| {
                cargo.env(v).map(|s| s.to_string_lossy().into_owned())
            })
            .map_err(|e| Error::new(Kind::Declaration, e.to_string()))?,
        };
        let remote = cache::RemoteTier::open(remote_config, &cargo)?;
        let env = |v: &str| cargo.env(v).map(|s| s.to_string_lossy().into_owned());
        let trust = match &self.trust {
            Some(t) => t.clone(),
            None => trt_cache::TrustPolicy::from_env(env)
                .map_err(|e| Error::new(Kind::Declaration, e.to_string()))?,
        };
        let signer = match &self.signer {
            Some(k) => Some(k.clone()),
            None => {
                cache::signing_key(env("TRT_BUILD_CACHE_SIGNING_KEY"))?.map(std::sync::Arc::new)
            }
        };
        let tiers = cache::Tiers {
            local: trt_cache::LocalCache::new(cache_dir),
            remote: remote.as_ref(),
            prebuilt: prebuilt.map(trt_cache::LocalCache::new),
            trust,
            signer,
        };
        for var in [
            "TENSORRT_LIB_DIR",
            "TENSORRT_ROOT",
            "TRT_CALIB_ENGINE",
            "ORT_DYLIB_PATH",
        ] {
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
        let cx = pipeline::Context {
            cargo: &cargo,
            tiers: &tiers,
            out_dir: &out_dir,
            out_dir_is_cargo: self.out_dir.is_none(),
        };
        let mut built = Vec::new();
        for m in &self.models {
            built.push(self.build_model(m, &cx)?);
        }
        artifacts::write_if_changed(&log_path, cargo.log_text().as_bytes())?;
        Ok(built)
    }
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
