//! The per-model pipeline behind [`Builder::try_build`]: validate the declaration, compute the
//! cache key, look up the cache and the prebuilt directory, and on a miss calibrate, write
//! Q/DQ, measure accuracy, build the engine and store the entry; then write the artifacts and
//! the generated code into `OUT_DIR`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use trt_manifest::{CalibrationSummary, Manifest};

use trt_cache::{ENGINE, MANIFEST, ONNX};

use crate::artifacts::write_if_changed;
use crate::cache::{Found, Origin, Tiers};
use crate::cargo::CargoOutput;
use crate::engine::{self, EngineOptions};
use crate::error::{Error, Kind};
use crate::{Builder, BuiltModel, Int8, ModelConfig, Precision, Source, codegen, key};

/// Printed (as Cargo warnings) before calibrating when this crate was compiled at opt-level 0.
const UNOPTIMIZED_WARNING: &str = "trt-build: calibration runs unoptimised: Cargo compiles build scripts and their dependencies at opt-level 0 unless told otherwise, which makes INT8 calibration about 6-8x slower (measured in BENCHMARKS.md).
trt-build: add this to the application's Cargo.toml (the workspace root's, in a workspace) and rebuild:
trt-build:     [profile.dev.build-override]
trt-build:     opt-level = 3";

/// What one build gives every model: Cargo's output and the build log, the cache tiers and
/// where the artifacts go.
pub(crate) struct Context<'a> {
    pub(crate) cargo: &'a CargoOutput,
    pub(crate) tiers: &'a Tiers<'a>,
    pub(crate) out_dir: &'a Path,
    /// Whether `out_dir` is Cargo's `OUT_DIR` (generated code then names files relative to it).
    pub(crate) out_dir_is_cargo: bool,
}

/// A model as declared and checked: loaded, constants bound, profiles validated.
struct Declared {
    model: calib::Model,
    /// The quantization job (INT8 only).
    job: Option<calib::Job>,
    options: EngineOptions,
    /// Whether the remaining float graph becomes FP16 in the ONNX.
    fp16: bool,
}

impl Builder {
    pub(crate) fn build_model(
        &self,
        m: &ModelConfig,
        cx: &Context<'_>,
    ) -> Result<BuiltModel, Error> {
        let start = Instant::now();
        let name = m.name.as_str();
        let declared = self.declare(m, cx.cargo)?;
        let key = key::cache_key(
            m,
            &declared.model,
            &declared.options,
            declared.fp16,
            declared.job.as_ref(),
        )?;
        let found = match cx.tiers.lookup(name, &key, cx.cargo)? {
            Some(found) => found,
            None => {
                let library = self.library_for(name, &key, cx.tiers)?;
                let built = build_entry(m, declared, &key, cx, &library)?;
                cx.tiers.publish_and_store(name, built, cx.cargo)?
            }
        };
        self.emit(m, &found, cx, start)
    }

    /// Loads and checks the declaration, asks Cargo to rerun when an input changes, and makes
    /// the quantization job.
    fn declare(&self, m: &ModelConfig, cargo: &CargoOutput) -> Result<Declared, Error> {
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
        let fp16 = match &m.precision {
            Precision::Int8(int8) => int8.fp16,
            Precision::Fp16 => always_strongly_typed(),
            Precision::Fp32 => false,
        };
        let job = match &m.precision {
            Precision::Int8(int8) => Some(self.job(m, int8, &model, cargo)?),
            Precision::Fp16 | Precision::Fp32 => None,
        };
        Ok(Declared {
            model,
            job,
            options,
            fp16,
        })
    }

    /// The quantization job of an INT8 model; its data files become rerun triggers.
    fn job(
        &self,
        m: &ModelConfig,
        int8: &Int8,
        model: &calib::Model,
        cargo: &CargoOutput,
    ) -> Result<calib::Job, Error> {
        let name = m.name.as_str();
        if let Source::Path(p) = &int8.source {
            if !p.exists() {
                return Err(Error::declaration(
                    name,
                    format!("calibration data {} does not exist", p.display()),
                ));
            }
            cargo.rerun_if_changed(p);
        }
        for source in std::iter::once(&int8.source).chain(&int8.report) {
            for f in source.files().map_err(|e| Error::declaration(name, e))? {
                cargo.rerun_if_changed(&f);
            }
        }
        int8.source
            .list()
            .map_err(|e| Error::declaration(name, e))?;
        let mut job = calib::Job::new(model, int8.source.clone())
            .method(int8.method)
            .profiles(m.profiles.clone())
            .hold_out_every(int8.hold_out_every)
            .target(int8.target.as_deref().cloned())
            .criterion(int8.criterion.as_deref().cloned())
            .max_float_share(int8.max_float_share)
            .best_effort(int8.best_effort)
            .fp16(int8.fp16);
        if let Some(r) = &int8.report {
            job = job.held_out(r.clone());
        }
        for e in &int8.exclude {
            job = job.exclude(e);
        }
        Ok(job)
    }

    /// The TensorRT library, or the error that says where an engine could come from instead.
    fn library_for(
        &self,
        name: &str,
        key: &str,
        tiers: &Tiers<'_>,
    ) -> Result<std::sync::Arc<tensorrt_sys::Library>, Error> {
        engine::library(self.tensorrt_lib_dir.as_deref()).map_err(|e| {
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
        })
    }

    /// Writes the engine (and ONNX) into `OUT_DIR` and the generated code, and reports.
    fn emit(
        &self,
        m: &ModelConfig,
        found: &Found,
        cx: &Context<'_>,
        start: Instant,
    ) -> Result<BuiltModel, Error> {
        let name = m.name.as_str();
        let out_dir = cx.out_dir;
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
        let code = if cx.out_dir_is_cargo {
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
        cx.cargo.warning(&summary);
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
}

/// Quantizes (INT8) or folds (float) the model, builds the engine and assembles the entry.
fn build_entry(
    m: &ModelConfig,
    declared: Declared,
    key: &str,
    cx: &Context<'_>,
    library: &std::sync::Arc<tensorrt_sys::Library>,
) -> Result<trt_cache::Entry, Error> {
    let name = m.name.as_str();
    let cargo = cx.cargo;
    let Declared {
        model,
        job,
        options,
        fp16,
    } = declared;
    let onnx_path = model.path().map(Path::to_path_buf);
    let (onnx, calibration, mut files) = match job {
        Some(job) => {
            drop(model);
            let q = quantize(name, job, cx)?;
            (q.onnx, Some(q.summary), q.files)
        }
        None => {
            // `If` nodes decided by the profiles' shapes are replaced by their branch.
            let model = match calib::fold::fold_shape_ifs(&model, &m.profiles)
                .map_err(|e| Error::calibration(name, e))?
            {
                Some((folded, notes)) => {
                    for n in notes {
                        cargo.log(&format!("{name}: {n}"));
                    }
                    folded
                }
                None => model,
            };
            let mut model = if fp16 {
                calib::fp16::convert(&model)
            } else {
                model
            };
            model.clear_placeholder_dims();
            (model.to_bytes(), None, Vec::new())
        }
    };
    let t = Instant::now();
    let built = engine::build(
        name,
        &onnx,
        onnx_path.as_deref(),
        &m.profiles,
        &options,
        library,
    )?;
    for w in &built.warnings {
        cargo.warning(&format!("trt-build: {name}: {w}"));
    }
    cargo.log(&format!("{name}: engine build log\n{}", built.log));
    cargo.log(&format!(
        "{name}: engine built in {:.2} s",
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

/// What [`quantize`] gives the entry.
struct Quantization {
    onnx: Vec<u8>,
    summary: CalibrationSummary,
    /// `calibration.json`, `report.json`, `tuning.json`.
    files: Vec<(&'static str, Vec<u8>)>,
}

/// Runs the quantization job: the Q/DQ ONNX, the manifest's summary and the entry's
/// calibration, tuning and report files. Calibration results persist in the local cache's
/// `calibrations/` (keyed by their fingerprint), so a change that only affects the engine
/// does not calibrate again.
fn quantize(name: &str, job: calib::Job, cx: &Context<'_>) -> Result<Quantization, Error> {
    let cargo = cx.cargo;
    if cfg!(trt_build_unoptimized) {
        for line in UNOPTIMIZED_WARNING.lines() {
            cargo.warning(line);
        }
    }
    // Progress goes to the build log: the first sample and every tenth of them.
    let progress = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (sink, steps, label) = (progress.clone(), progress.clone(), name.to_string());
    let label2 = label.clone();
    // Calibrations persist in the local cache by the fingerprint of what decides them alone.
    let fingerprint = job
        .calibration_fingerprint()
        .map_err(|e| Error::calibration(name, e))?;
    let calib_dir = cx.tiers.local.root().join("calibrations");
    let job = job
        .calibration_cache(calib_dir.join(format!("{fingerprint}.json")))
        .on_progress(move |p| {
            let step = (p.total / 10).max(1);
            if p.done == 1 || p.done % step == 0 || p.done == p.total {
                let mut text = sink.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&format!(
                    "{label}: calibration: {}/{} samples\n",
                    p.done, p.total
                ));
            }
        })
        .on_tuning_step(move |step| {
            let mut text = steps.lock().unwrap_or_else(|e| e.into_inner());
            text.push_str(&format!("{label2}: tuning: {step}\n"));
        });
    let q = job.run().map_err(|e| Error::calibration(name, e))?;
    for n in &q.notes {
        cargo.log(&format!("{name}: {n}"));
    }
    for w in &q.calibration.warnings {
        cargo.warning(&format!("trt-build: {name}: {w}"));
    }
    cargo.log(&progress.lock().unwrap_or_else(|e| e.into_inner()));
    let mut files: Vec<(&'static str, Vec<u8>)> = Vec::new();
    if let Some(tuning) = &q.tuning {
        cargo.log(&format!("{name}: tuning\n{}", tuning.table()));
        for st in &tuning.steps {
            cargo.warning(&format!(
                "trt-build: {name}: kept {} ({}) in float for the accuracy target: {} {:.5}",
                st.node, st.op_type, tuning.metric, st.after
            ));
        }
        files.push(("tuning.json", json(tuning)));
    }
    cargo.log(&format!(
        "{name}: calibration ({}) on {} samples {} in {:.2} s",
        q.calibration.method.name(),
        q.calibration.samples,
        if q.reused { "reused" } else { "computed" },
        q.seconds
    ));
    if let Some(r) = &q.report {
        cargo.log(&format!("{name}: accuracy report\n{}", r.table()));
        files.push(("report.json", json(r)));
    }
    files.push(("calibration.json", json(&q.calibration)));
    Ok(Quantization {
        onnx: q.model.to_bytes(),
        summary: summary_of(&q),
        files,
    })
}

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("serializable")
}

/// What the manifest says about a quantization.
fn summary_of(q: &calib::Quantized) -> CalibrationSummary {
    let worst = |f: fn(&calib::report::OutputMetrics) -> f64| {
        q.report
            .as_ref()
            .map(|r| r.outputs.iter().map(f).fold(f64::INFINITY, f64::min))
    };
    CalibrationSummary {
        tuning: q.tuning.as_ref().map(|t| trt_manifest::TuningSummary {
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
        method: q.method_name(),
        samples: q.calibration.samples,
        activations: q.calibration.placement.activations.len(),
        weights: q.calibration.placement.weights.len(),
        report_samples: q.report.as_ref().map_or(0, |r| r.samples),
        min_cosine: worst(|o| o.cosine),
        min_snr_db: worst(|o| o.snr_db),
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
