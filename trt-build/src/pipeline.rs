//! The per-model pipeline behind [`Builder::try_build`]: validate the declaration, compute the
//! cache key, look up the cache and the prebuilt directory, and on a miss calibrate, write
//! Q/DQ, measure accuracy, build the engine and store the entry; then write the artifacts and
//! the generated code into `OUT_DIR`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use trt_manifest::{CalibrationSummary, Manifest};

use trt_cache::{ENGINE, MANIFEST, ONNX};

use crate::artifacts::write_if_changed;
use crate::cache::{Origin, Tiers};
use crate::cargo::Cargo;
use crate::engine::{self, EngineOptions};
use crate::error::{Error, Kind};
use crate::{
    Builder, BuiltModel, Int8, KEY_VERSION, ModelConfig, Precision, Profile, Source, codegen,
};

/// Printed (as Cargo warnings) before calibrating when this crate was compiled at opt-level 0.
const UNOPTIMIZED_WARNING: &str = "trt-build: calibration runs unoptimised: Cargo compiles build scripts and their dependencies at opt-level 0 unless told otherwise, which makes INT8 calibration about 6-8x slower (measured in BENCHMARKS.md).
trt-build: add this to the application's Cargo.toml (the workspace root's, in a workspace) and rebuild:
trt-build:     [profile.dev.build-override]
trt-build:     opt-level = 3";

/// One model to calibrate and build: what `build_entry` needs besides Cargo and the log.
struct BuildJob<'a> {
    m: &'a ModelConfig,
    model: &'a calib::Model,
    /// Its cache key.
    key: &'a str,
    options: &'a EngineOptions,
    /// Calibration and held-out data with their fingerprint (INT8 only).
    sources: Option<(Source, Source, String)>,
    /// The local cache's root (timing caches live there).
    cache_dir: &'a Path,
    library: &'a std::sync::Arc<tensorrt_sys::Library>,
}

impl Builder {
    pub(crate) fn build_model(
        &self,
        m: &ModelConfig,
        cargo: &Cargo,
        out_dir: &Path,
        out_dir_is_cargo: bool,
        tiers: &Tiers<'_>,
        log: &mut String,
    ) -> Result<BuiltModel, Error> {
        let start = Instant::now();
        let name = m.name.as_str();
        cargo.rerun_if_changed(&m.onnx);
        let model = calib::Model::load(&m.onnx).map_err(|e| Error::declaration(name, e))?;
        for f in model.external_files() {
            cargo.rerun_if_changed(f);
        }
        let model = if m.constants.is_empty() {
            model
        } else {
            calib::fold::bind_inputs(&model, &m.constants)
                .map_err(|e| Error::declaration(name, e))?
        };
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
        // A forced CPU engine (not the automatic choice) changes calibration's numerics.
        match calib::infer::engine_choice().map_err(|e| Error::declaration(name, e))? {
            calib::infer::EngineChoice::Auto => {}
            forced => key.update(format!("cpu-engine={forced:?}")),
        }
        for (input, value) in &m.constants {
            key.update(input.as_bytes());
            key.update(value.elem_type().name());
            key.update(value.to_le_bytes());
        }
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
                // The held-out samples and the target decide Auto's method and the nodes kept
                // in float, so they are part of the key (a custom metric by its name).
                key.update(format!("{:?}/{}", int8.target, int8.max_float_share));
                if held_out.list().is_ok_and(|l| !l.is_empty()) {
                    key.update(
                        calibrator
                            .fingerprint(&held_out)
                            .map_err(|e| Error::calibration(name, e))?,
                    );
                }
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

        let found = match tiers.lookup(name, &key, cargo, log)? {
            Some(found) => found,
            None => {
                let library = engine::library(self.tensorrt_lib_dir.as_deref()).map_err(|e| {
                    Error::new(
                        Kind::Missing,
                        format!(
                            "model `{name}`: no engine with key {key} in the cache ({}){}{}, and TensorRT cannot build one: {e}\n\
                             To build without TensorRT, point TRT_BUILD_REMOTE_CACHE at a team cache that has it, \
                             or build once on a machine that has TensorRT and copy {}/{key}/ \
                             into a directory named by TRT_BUILD_PREBUILT_DIR (or Builder::prebuilt_dir) here.",
                            tiers.local.root().display(),
                            tiers.remote.map(|r| format!(", the remote cache {}", r.describe())).unwrap_or_default(),
                            tiers.prebuilt.as_ref().map(|p| format!(" or the prebuilt directory ({})", p.root().display())).unwrap_or_default(),
                            tiers.local.root().display(),
                        ),
                    )
                })?;
                let job = BuildJob {
                    m,
                    model: &model,
                    key: &key,
                    options: &options,
                    sources: calibrator_sources,
                    cache_dir: tiers.local.root(),
                    library: &library,
                };
                let built = self.build_entry(job, cargo, log)?;
                tiers.publish_and_store(name, built, cargo, log)?
            }
        };
        let entry = &found.entry;
        let note = &found.note;

        let manifest_bytes = entry.read(MANIFEST)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| Error::io(entry.path(MANIFEST).display(), e))?;
        let engine_bytes = entry.read(ENGINE)?;
        // Artifacts live in OUT_DIR/trt-build/ so they never collide with the build script's own files.
        let artifacts = out_dir.join("trt-build");
        let engine_path = artifacts.join(format!("{name}.engine"));
        write_if_changed(&engine_path, &engine_bytes)?;
        let onnx_path = if self.embed_onnx {
            let p = artifacts.join(format!("{name}.onnx"));
            write_if_changed(&p, &entry.read(ONNX)?)?;
            Some(p)
        } else {
            None
        };
        // Inside a build script the code names its files relative to OUT_DIR, so the same
        // entry generates the same code on every machine.
        let (engine_rel, onnx_rel) = (
            format!("trt-build/{name}.engine"),
            format!("trt-build/{name}.onnx"),
        );
        let code = if out_dir_is_cargo {
            codegen::generate_with(
                &manifest,
                codegen::FileRef::InOutDir(&engine_rel),
                onnx_path
                    .as_ref()
                    .map(|_| codegen::FileRef::InOutDir(&onnx_rel)),
            )?
        } else {
            codegen::generate(&manifest, &engine_path, onnx_path.as_deref())?
        };
        let code_path = out_dir.join(format!("{name}.rs"));
        write_if_changed(&code_path, code.as_bytes())?;

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
            cache_hit: found.origin != Origin::Built,
            origin: found.origin.clone(),
            entry: entry.dir().to_path_buf(),
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

    fn build_entry(
        &self,
        job: BuildJob<'_>,
        cargo: &Cargo,
        log: &mut String,
    ) -> Result<trt_cache::Entry, Error> {
        let BuildJob {
            m,
            model,
            key,
            options,
            sources,
            cache_dir,
            library,
        } = job;
        let name = m.name.as_str();
        let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
        // `If` nodes decided by shapes the profiles fix are replaced by their branch (TensorRT
        // and tract cannot take some of them).
        let folded = calib::fold::fold_shape_ifs(model, &m.profiles)
            .map_err(|e| Error::calibration(name, e))?;
        let model: &calib::Model = match &folded {
            Some((f, notes)) => {
                for n in notes {
                    log.push_str(&format!("{name}: {n}\n"));
                }
                f
            }
            None => model,
        };
        let (onnx, calibration) = match (&m.precision, sources) {
            (Precision::Int8(int8), Some((calibration_source, held_out, fingerprint))) => {
                let t = Instant::now();
                if cfg!(trt_build_unoptimized) {
                    for line in UNOPTIMIZED_WARNING.lines() {
                        cargo.warning(line);
                    }
                }
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
                                "{label}: calibration: {}/{} samples\n",
                                p.done, p.total
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
                let held = held_out.list().map(|r| r.len()).unwrap_or(0);
                let (calibration, tuning) = if held > 0
                    && (calibration.method == calib::Method::Auto || int8.target.is_some())
                {
                    let mut exclusions = calib::Exclusions::default();
                    for e in &int8.exclude {
                        exclusions.add(model, e);
                    }
                    let options = calib::tune::TuneOptions {
                        target: int8.target.clone(),
                        max_float_share: int8.max_float_share,
                    };
                    let sink = progress.clone();
                    let (c, tuning) = calib::tune::tune(
                        model,
                        &calibration,
                        &exclusions,
                        &held_out,
                        &options,
                        &|step| {
                            let mut text = sink.lock().unwrap_or_else(|e| e.into_inner());
                            text.push_str(&format!("{name}: tuning: {step}\n"));
                        },
                    )
                    .map_err(|e| Error::calibration(name, e))?;
                    log.push_str(&format!("{name}: tuning\n{}\n", tuning.table()));
                    for st in &tuning.steps {
                        cargo.warning(&format!(
                            "trt-build: {name}: kept {} ({}) in float for the accuracy target: {} {:.5}",
                            st.node, st.op_type, tuning.metric, st.after
                        ));
                    }
                    (c, Some(tuning))
                } else if int8.target.is_some() {
                    return Err(Error::declaration(
                        name,
                        "an accuracy target needs held-out samples: keep hold_out_every above 1 or give report_source",
                    ));
                } else {
                    (calibration, None)
                };
                let mut qdq = calibration
                    .apply(model)
                    .map_err(|e| Error::calibration(name, e))?;
                if int8.fp16 {
                    qdq = calib::fp16::convert(&qdq);
                }
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
                if let Some(t) = &tuning {
                    files.push((
                        "tuning.json",
                        serde_json::to_vec_pretty(t).expect("serializable"),
                    ));
                }
                let summary = CalibrationSummary {
                    tuning: tuning.as_ref().map(|t| trt_manifest::TuningSummary {
                        metric: t.metric.clone(),
                        candidates: t.candidates.clone(),
                        chosen: t.chosen.clone(),
                        target: t.target,
                        kept_in_float: t
                            .steps
                            .iter()
                            .map(|s| (s.node.clone(), s.op_type.clone(), s.after))
                            .collect(),
                        achieved: t.achieved,
                    }),
                    method: match &tuning {
                        Some(t) if calibration.method == calib::Method::Auto => {
                            format!("auto: {}", t.chosen)
                        }
                        _ => calibration.method.name(),
                    },
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
                qdq.clear_placeholder_dims();
                (qdq.to_bytes(), Some(summary))
            }
            (Precision::Fp16, _) if always_strongly_typed() => {
                let mut m = calib::fp16::convert(model);
                m.clear_placeholder_dims();
                (m.to_bytes(), None)
            }
            _ => {
                let mut m = model.clone();
                m.clear_placeholder_dims();
                (m.to_bytes(), None)
            }
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
            engine_sha256: trt_cache::sha256(&built.engine),
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
        trt_cache::Entry::new(key, files.into_iter().map(|(n, b)| (n.to_string(), b)))
            .map_err(|e| Error::io(format!("model `{name}`: cache entry"), e))
    }
}

/// TensorRT 11 and TensorRT-RTX take precision from the network only.
fn always_strongly_typed() -> bool {
    tensorrt_sys::header_flavor() == tensorrt_sys::Flavor::Rtx
        || tensorrt_sys::header_version() >= 110000
}

/// `trt-cache` next to Cargo's profile directories (`<target>/trt-cache`), found from
/// `OUT_DIR = <target>/[<triple>/]<profile>/build/<pkg>-<hash>/out`.
pub(crate) fn default_cache_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .map(|target| target.join("trt-cache"))
        .unwrap_or_else(|| out_dir.join("trt-cache"))
}
