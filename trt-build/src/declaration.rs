//! What `build.rs` declares for one model: its ONNX, profiles, constant inputs, precision and
//! INT8 calibration settings ([`ModelConfig`], [`Precision`], [`Int8`]).

use std::path::PathBuf;

use crate::{HostTensor, Method, Profile, Sample, Source};

/// INT8 calibration settings of a model.
#[derive(Debug, Clone)]
pub struct Int8 {
    pub(crate) source: Source,
    pub(crate) report: Option<Source>,
    pub(crate) method: Method,
    pub(crate) exclude: Vec<String>,
    pub(crate) hold_out_every: usize,
    pub(crate) fp16: bool,
    // Boxed: they are rarely set, and `Precision` stays small.
    pub(crate) target: Option<Box<calib::tune::Target>>,
    pub(crate) criterion: Option<Box<calib::tune::Criterion>>,
    pub(crate) max_float_share: f64,
    pub(crate) best_effort: bool,
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
            method: Method::Auto,
            exclude: Vec::new(),
            hold_out_every: 5,
            fp16: false,
            target: None,
            criterion: None,
            max_float_share: 0.25,
            best_effort: false,
        }
    }

    /// Requires every output's cosine similarity to FP32 on the held-out samples to be at
    /// least `min`: when it is not, the most sensitive quantized nodes are kept in float one at
    /// a time until it is (see `calib::tune`), and the build fails with the table when more
    /// than [`Int8::max_float_share`] of them would have to be.
    pub fn min_cosine(self, min: f64) -> Self {
        self.target(calib::tune::Target::MinCosine(min))
    }

    /// As [`Int8::min_cosine`], with every output's SNR in dB.
    pub fn min_snr_db(self, min: f64) -> Self {
        self.target(calib::tune::Target::MinSnrDb(min))
    }

    /// As [`Int8::min_cosine`], with any target, e.g. a task metric through a closure over
    /// (FP32 outputs, INT8 outputs).
    pub fn target(mut self, target: calib::tune::Target) -> Self {
        self.target = Some(Box::new(target));
        self
    }

    /// What [`Method::Auto`] ranks the candidate methods by on the held-out samples: a task
    /// metric built in (`Criterion::parse("top1")`, `"iou:0:0.3"`, `"ctc"`, `"decision"`), the
    /// application's own (`Criterion::Custom`), the worst output's cosine, or the default:
    /// the target's metric when there is a target, else the mean SNR over outputs.
    pub fn auto_criterion(mut self, criterion: calib::tune::Criterion) -> Self {
        self.criterion = Some(Box::new(criterion));
        self
    }

    /// Largest share of the quantized nodes the accuracy target may keep in float (default
    /// 0.25).
    pub fn max_float_share(mut self, share: f64) -> Self {
        self.max_float_share = share;
        self
    }

    /// Keeps the closest result when the accuracy target cannot be met, instead of failing
    /// the build (the manifest's tuning summary then shows the target and what was achieved).
    pub fn best_effort(mut self, best_effort: bool) -> Self {
        self.best_effort = best_effort;
        self
    }

    /// The observer (default [`Method::Auto`]: the method with the best held-out accuracy).
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
    pub(crate) fn name(&self) -> &'static str {
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
    pub(crate) name: String,
    pub(crate) onnx: PathBuf,
    pub(crate) profiles: Vec<Profile>,
    pub(crate) precision: Precision,
    pub(crate) optimization_level: Option<i32>,
    pub(crate) workspace_limit: Option<usize>,
    pub(crate) constants: Vec<(String, HostTensor)>,
}

impl ModelConfig {
    /// Binds an input to a constant value (a sample rate, a mode flag the application never
    /// changes): the input leaves the engine, and `If` nodes that test it are replaced by the
    /// branch taken. The value must have the input's element type and rank.
    pub fn constant_input(&mut self, name: impl Into<String>, value: HostTensor) -> &mut Self {
        self.constants.push((name.into(), value));
        self
    }

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
