//! Building a serialized engine with `tensorrt-sys`, recording TensorRT's log and progress.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tensorrt_sys::{Builder as TrtBuilder, Library, Logger, ProgressMonitor, Severity};
use trt_manifest::{Interface, Mode, ProfileSpec, RangeSpec, TensorSpec};

use crate::error::{Error, Kind};
use calib::Profile;

/// Builder options that change the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct EngineOptions {
    pub(crate) optimization_level: Option<i32>,
    pub(crate) workspace_limit: Option<usize>,
    pub(crate) fp16_flag: bool,
}

/// A built engine and what was learned while building it.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) engine: Vec<u8>,
    pub(crate) interface: Interface,
    /// TensorRT warnings and errors (for cargo warnings).
    pub(crate) warnings: Vec<String>,
    /// Full log: every TensorRT message and progress phase, with timestamps.
    pub(crate) log: String,
}

#[derive(Clone)]
struct Log {
    start: Instant,
    text: Arc<Mutex<String>>,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl Log {
    fn line(&self, line: &str) {
        let t = self.start.elapsed().as_secs_f64();
        let _ = writeln!(
            self.text.lock().unwrap_or_else(|e| e.into_inner()),
            "[{t:8.3}s] {line}"
        );
    }
}

struct Progress(Log);

impl ProgressMonitor for Progress {
    fn phase_start(&mut self, phase: &str, parent: Option<&str>, steps: i32) {
        let parent = parent.map(|p| format!(" (in {p})")).unwrap_or_default();
        self.0
            .line(&format!("phase start: {phase}{parent}, {steps} steps"));
    }
    fn step_complete(&mut self, phase: &str, step: i32) -> bool {
        self.0.line(&format!("phase {phase}: step {step} done"));
        true
    }
    fn phase_finish(&mut self, phase: &str) {
        self.0.line(&format!("phase finish: {phase}"));
    }
}

/// Opens TensorRT: from `dir` only, or once per process from the default search path.
pub(crate) fn library(dir: Option<&Path>) -> Result<Arc<Library>, tensorrt_sys::Error> {
    match dir {
        Some(dir) => Library::load_from(dir),
        None => Library::load(),
    }
}

/// Parses `onnx`, adds the profiles, builds and serializes the engine.
pub(crate) fn build(
    model: &str,
    onnx: &[u8],
    onnx_path: Option<&Path>,
    profiles: &[Profile],
    options: &EngineOptions,
    library: &Arc<Library>,
) -> Result<Built, Error> {
    let log = Log {
        start: Instant::now(),
        text: Arc::default(),
        warnings: Arc::default(),
    };
    let sink = log.clone();
    let logger = Logger::new(Severity::VERBOSE, move |severity, message| {
        sink.line(&format!("{severity}: {message}"));
        if severity <= Severity::WARNING {
            sink.warnings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("TensorRT {severity}: {message}"));
        }
    })
    .map_err(|e| engine_error(model, "creating the logger", e))?;
    let builder = TrtBuilder::new(library, &logger)
        .map_err(|e| engine_error(model, "creating the builder", e))?;
    log.line(&format!("parsing {} bytes of ONNX", onnx.len()));
    let network = builder
        .network_from_onnx(onnx, onnx_path)
        .map_err(|e| engine_error(model, "TensorRT's ONNX parser rejected the model", e))?;

    let mut tensors = Vec::new();
    for (mode, list) in [
        (Mode::Input, network.inputs()),
        (Mode::Output, network.outputs()),
    ] {
        let list = list.map_err(|e| engine_error(model, "listing the network's tensors", e))?;
        for t in list {
            let spec = TensorSpec::from_tensorrt(t.name, mode, t.data_type.name(), t.dims)
                .map_err(|m| Error::new(Kind::Engine, format!("model `{model}`: {m}")))?;
            tensors.push(spec);
        }
    }
    let mut config = builder
        .config()
        .map_err(|e| engine_error(model, "creating the builder config", e))?;
    let mut specs = Vec::new();
    for (p, profile) in profiles.iter().enumerate() {
        let mut trt_profile = builder
            .profile()
            .map_err(|e| engine_error(model, "creating a profile", e))?;
        let mut spec = ProfileSpec { inputs: Vec::new() };
        // Inputs in network order; fixed inputs the declaration left out get their fixed shape.
        for t in tensors.iter().filter(|t| t.mode == Mode::Input) {
            let range = match profile.inputs.get(&t.name) {
                Some(r) => r.clone(),
                None if t.dims.iter().all(|&d| d >= 0) => calib::ShapeRange::fixed(t.dims.clone()),
                None => {
                    return Err(Error::declaration(
                        model,
                        format!("profile {p} has no range for dynamic input '{}'", t.name),
                    ));
                }
            };
            trt_profile
                .set(&t.name, &range.min, &range.opt, &range.max)
                .map_err(|e| engine_error(model, &format!("profile {p}, input '{}'", t.name), e))?;
            spec.inputs.push(RangeSpec {
                name: t.name.clone(),
                range,
            });
        }
        config
            .add_profile(&trt_profile)
            .map_err(|e| engine_error(model, &format!("adding profile {p}"), e))?;
        specs.push(spec);
    }
    if let Some(level) = options.optimization_level {
        config
            .set_optimization_level(level)
            .map_err(|e| engine_error(model, "optimization level", e))?;
    }
    if let Some(limit) = options.workspace_limit {
        config
            .set_workspace_limit(limit)
            .map_err(|e| engine_error(model, "workspace limit", e))?;
    }
    if options.fp16_flag {
        config
            .set_fp16(true)
            .map_err(|e| engine_error(model, "FP16", e))?;
    }
    config
        .set_progress_monitor(Progress(log.clone()))
        .map_err(|e| engine_error(model, "progress monitor", e))?;
    log.line("building the serialized engine");
    let engine = builder
        .build_serialized(&network, &config)
        .map_err(|e| engine_error(model, "building the engine", e))?;
    log.line(&format!("engine built: {} bytes", engine.len()));
    drop(config);
    drop(network);
    let warnings = log
        .warnings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let text = log.text.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Built {
        engine,
        interface: Interface {
            tensors,
            profiles: specs,
        },
        warnings,
        log: text,
    })
}

fn engine_error(model: &str, step: &str, e: tensorrt_sys::Error) -> Error {
    Error::new(Kind::Engine, format!("model `{model}`: {step}: {e}"))
}
