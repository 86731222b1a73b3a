//! The manifest `trt-build` writes next to every engine and embeds in generated code, and that
//! `trt-runtime` checks the deserialized engine against: the I/O tensors (names, modes,
//! element types, dims with `-1` for dynamic), every optimization profile's min/opt/max, and
//! where the engine came from (hash, TensorRT flavor and version, precision, calibration).
//!
//! [`Interface::differences`] lists every mismatch between two interfaces, so a runtime can
//! refuse an engine that does not match the bindings generated for it. [`check_inputs`] and
//! [`fit_profile`] are the one validator of inputs against declared tensors and profiles,
//! used by calibration and at run time.

use std::fmt;

mod dtype;
mod validate;
pub use dtype::DType;
pub use validate::{AllowedRange, TensorMeta, Violation, check_inputs, fit_profile};

use serde::{Deserialize, Serialize};

/// Version of the manifest format.
pub const FORMAT_VERSION: u32 = 1;

/// Direction of an I/O tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Engine input.
    Input,
    /// Engine output.
    Output,
}

/// One I/O tensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Direction.
    pub mode: Mode,
    /// Element type (serialized as ONNX/numpy names it: `float32`, `int64`, …).
    pub dtype: DType,
    /// Dims; `-1` marks a dynamic dimension.
    pub dims: Vec<i64>,
}

impl TensorSpec {
    /// A tensor as TensorRT lists it (a parsed network at build time, a deserialized engine
    /// at run time), its element type given by TensorRT's name for it (`float32`, `int64`…).
    ///
    /// # Errors
    ///
    /// A sentence naming the tensor and the element type when the manifest cannot describe
    /// that type.
    pub fn from_tensorrt(
        name: String,
        mode: Mode,
        element_type: &str,
        dims: Vec<i64>,
    ) -> Result<TensorSpec, String> {
        let dtype = DType::from_name(element_type).ok_or_else(|| {
            format!("tensor '{name}' has element type {element_type}, which the manifest cannot describe")
        })?;
        Ok(TensorSpec {
            name,
            mode,
            dtype,
            dims,
        })
    }
}

/// min/opt/max shape of one input: the one shape-range type of the workspace (declared in
/// `build.rs`, checked by calibration, recorded in the manifest, matched at run time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShapeRange {
    /// Smallest shape.
    pub min: Vec<i64>,
    /// Shape kernels are tuned for.
    pub opt: Vec<i64>,
    /// Largest shape.
    pub max: Vec<i64>,
}

impl ShapeRange {
    /// A range.
    pub fn new(
        min: impl Into<Vec<i64>>,
        opt: impl Into<Vec<i64>>,
        max: impl Into<Vec<i64>>,
    ) -> Self {
        ShapeRange {
            min: min.into(),
            opt: opt.into(),
            max: max.into(),
        }
    }

    /// A range of one fixed shape.
    pub fn fixed(shape: impl Into<Vec<i64>>) -> Self {
        let s = shape.into();
        ShapeRange {
            min: s.clone(),
            opt: s.clone(),
            max: s,
        }
    }
}

/// The range of one named input in one profile (serialized flat: `name`, `min`, `opt`, `max`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeSpec {
    /// Input name.
    pub name: String,
    /// Its min/opt/max.
    #[serde(flatten)]
    pub range: ShapeRange,
}

/// One optimization profile: a range for every input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProfileSpec {
    /// Ranges, in input order.
    pub inputs: Vec<RangeSpec>,
}

impl ProfileSpec {
    /// The range of one input.
    pub fn range(&self, name: &str) -> Option<&ShapeRange> {
        self.inputs
            .iter()
            .find(|r| r.name == name)
            .map(|r| &r.range)
    }
}

/// The engine's interface: what generated bindings rely on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Interface {
    /// I/O tensors, inputs first, each group in model order.
    pub tensors: Vec<TensorSpec>,
    /// Optimization profiles.
    pub profiles: Vec<ProfileSpec>,
}

impl Interface {
    /// Inputs in order.
    pub fn inputs(&self) -> impl Iterator<Item = &TensorSpec> + Clone {
        self.tensors.iter().filter(|t| t.mode == Mode::Input)
    }

    /// Outputs in order.
    pub fn outputs(&self) -> impl Iterator<Item = &TensorSpec> {
        self.tensors.iter().filter(|t| t.mode == Mode::Output)
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorSpec> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Every difference between `self` (expected) and `actual`, one sentence each; empty
    /// when they match. Tensor order does not matter, names do.
    pub fn differences(&self, actual: &Interface) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.tensors {
            let Some(a) = actual.tensor(&e.name) else {
                out.push(format!(
                    "tensor '{}' is expected but the engine has no such tensor",
                    e.name
                ));
                continue;
            };
            if a.mode != e.mode {
                out.push(format!(
                    "tensor '{}' is expected as {:?} but the engine has it as {:?}",
                    e.name, e.mode, a.mode
                ));
            }
            if a.dtype != e.dtype {
                out.push(format!(
                    "tensor '{}' is expected as {} but the engine has {}",
                    e.name, e.dtype, a.dtype
                ));
            }
            if a.dims.len() != e.dims.len() {
                out.push(format!(
                    "tensor '{}' is expected with rank {} {:?} but the engine has rank {} {:?}",
                    e.name,
                    e.dims.len(),
                    e.dims,
                    a.dims.len(),
                    a.dims
                ));
            } else {
                for (axis, (x, y)) in e.dims.iter().zip(&a.dims).enumerate() {
                    if x != y {
                        out.push(format!(
                            "tensor '{}' dimension {axis} is expected to be {} but the engine has {}",
                            e.name,
                            dim_text(*x),
                            dim_text(*y)
                        ));
                    }
                }
            }
        }
        for a in &actual.tensors {
            if self.tensor(&a.name).is_none() {
                out.push(format!(
                    "the engine has tensor '{}' which is not expected",
                    a.name
                ));
            }
        }
        if self.profiles.len() != actual.profiles.len() {
            out.push(format!(
                "{} optimization profile(s) are expected but the engine has {}",
                self.profiles.len(),
                actual.profiles.len()
            ));
        }
        for (p, (e, a)) in self.profiles.iter().zip(&actual.profiles).enumerate() {
            for r in &e.inputs {
                let Some(ar) = a.range(&r.name) else {
                    out.push(format!(
                        "profile {p} has no range for input '{}' in the engine",
                        r.name
                    ));
                    continue;
                };
                for (which, x, y) in [
                    ("min", &r.range.min, &ar.min),
                    ("opt", &r.range.opt, &ar.opt),
                    ("max", &r.range.max, &ar.max),
                ] {
                    if x != y {
                        out.push(format!(
                            "profile {p} input '{}' {which} is expected to be {} but the engine has {}",
                            r.name,
                            shape_text(x),
                            shape_text(y)
                        ));
                    }
                }
            }
        }
        out
    }
}

fn dim_text(d: i64) -> String {
    if d < 0 {
        "dynamic".into()
    } else {
        d.to_string()
    }
}

/// Formats declared dims as `[dynamic, 3, 224, 224]`.
fn dims_text(dims: &[i64]) -> String {
    let dims: Vec<String> = dims.iter().map(|&d| dim_text(d)).collect();
    format!("[{}]", dims.join(", "))
}

/// Formats a shape as `1x3x224x224`.
pub fn shape_text(dims: &[i64]) -> String {
    dims.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// Summary of the INT8 calibration behind an engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSummary {
    /// Observer (`entropy`, `minmax`, …).
    pub method: String,
    /// Calibration samples.
    pub samples: usize,
    /// Activation tensors quantized.
    pub activations: usize,
    /// Weights quantized per channel.
    pub weights: usize,
    /// Held-out samples of the accuracy report (0 when none were held out).
    pub report_samples: usize,
    /// Worst cosine similarity over the outputs (FP32 vs INT8-simulated).
    pub min_cosine: Option<f64>,
    /// Worst SNR over the outputs, in dB.
    pub min_snr_db: Option<f64>,
    /// What `Method::Auto` and the accuracy target chose, when they ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<TuningSummary>,
}

/// The method choice and the nodes kept in float to meet an accuracy target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningSummary {
    /// The metric (`min cosine`, `min SNR dB` or a task metric's name).
    pub metric: String,
    /// Every candidate method's metric on the held-out samples.
    pub candidates: Vec<(String, f64)>,
    /// The method whose scales the engine uses.
    pub chosen: String,
    /// The target, if one was declared.
    pub target: Option<f64>,
    /// Nodes kept in float, in order, with operator type and the metric after each.
    pub kept_in_float: Vec<(String, String, f64)>,
    /// The metric achieved.
    pub achieved: f64,
}

/// Everything known about one engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Model name (the generated module's name).
    pub name: String,
    /// The engine's interface.
    pub interface: Interface,
    /// SHA-256 of the serialized engine.
    pub engine_sha256: String,
    /// Cache key the engine is stored under.
    pub cache_key: String,
    /// `tensorrt` or `tensorrt-rtx`.
    pub flavor: String,
    /// `NV_TENSORRT_VERSION` of the builder.
    pub tensorrt_version: i32,
    /// `int8`, `fp16` or `fp32`.
    pub precision: String,
    /// Calibration summary for INT8 engines.
    pub calibration: Option<CalibrationSummary>,
}

impl Manifest {
    /// Parses JSON.
    ///
    /// # Errors
    ///
    /// serde_json's error for malformed JSON.
    pub fn from_json(json: &str) -> Result<Manifest, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serializes")
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "model {} ({}, {} {}, engine sha256 {}…)",
            self.name,
            self.precision,
            self.flavor,
            self.tensorrt_version,
            // By characters: a manifest from untrusted bytes may hold any text here.
            self.engine_sha256.chars().take(12).collect::<String>()
        )?;
        for t in &self.interface.tensors {
            let dims: Vec<String> = t
                .dims
                .iter()
                .map(|&d| if d < 0 { "?".into() } else { d.to_string() })
                .collect();
            writeln!(
                f,
                "  {:?} {}: {} [{}]",
                t.mode,
                t.name,
                t.dtype,
                dims.join(", ")
            )?;
        }
        for (p, profile) in self.interface.profiles.iter().enumerate() {
            writeln!(f, "  profile {p}:")?;
            for r in &profile.inputs {
                writeln!(
                    f,
                    "    {}: min {} opt {} max {}",
                    r.name,
                    shape_text(&r.range.min),
                    shape_text(&r.range.opt),
                    shape_text(&r.range.max)
                )?;
            }
        }
        if let Some(c) = &self.calibration {
            write!(
                f,
                "  calibration: {} on {} samples, {} activations, {} weights",
                c.method, c.samples, c.activations, c.weights
            )?;
            if let Some(cos) = c.min_cosine {
                write!(f, ", cosine {cos:.5}")?;
            }
            writeln!(f)?;
            if let Some(t) = &c.tuning {
                let tried: Vec<String> = t
                    .candidates
                    .iter()
                    .map(|(m, v)| format!("{m} {v:.5}"))
                    .collect();
                writeln!(
                    f,
                    "  tuning: {} chosen ({} on held-out samples: {}); {} = {:.5}{}",
                    t.chosen,
                    t.metric,
                    if tried.is_empty() {
                        "-".into()
                    } else {
                        tried.join(", ")
                    },
                    t.metric,
                    t.achieved,
                    t.target.map_or(String::new(), |x| format!(" (target {x})"))
                )?;
                for (node, op, after) in &t.kept_in_float {
                    writeln!(f, "    kept in float: {node} ({op}), then {after:.5}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `tests/tests/fuzz.rs`: the summary cut the hash by bytes, inside a character.
    #[test]
    fn display_never_cuts_a_character() {
        let m = Manifest {
            format_version: FORMAT_VERSION,
            name: "m".into(),
            interface: iface(),
            engine_sha256: "ab\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}cd".into(),
            cache_key: String::new(),
            flavor: "tensorrt-rtx".into(),
            tensorrt_version: 10701,
            precision: "int8".into(),
            calibration: None,
        };
        assert!(m.to_string().contains("ab\u{fffd}"));
    }

    fn iface() -> Interface {
        Interface {
            tensors: vec![
                TensorSpec {
                    name: "x".into(),
                    mode: Mode::Input,
                    dtype: DType::F32,
                    dims: vec![-1, 3, -1, -1],
                },
                TensorSpec {
                    name: "y".into(),
                    mode: Mode::Output,
                    dtype: DType::F32,
                    dims: vec![-1, 8],
                },
            ],
            profiles: vec![ProfileSpec {
                inputs: vec![RangeSpec {
                    name: "x".into(),
                    range: ShapeRange::new(
                        vec![1, 3, 8, 8],
                        vec![2, 3, 16, 16],
                        vec![4, 3, 32, 32],
                    ),
                }],
            }],
        }
    }

    #[test]
    fn identical_interfaces_have_no_difference() {
        assert!(iface().differences(&iface()).is_empty());
    }

    #[test]
    fn every_difference_is_listed() {
        let mut other = iface();
        other.tensors[0].dtype = DType::F16;
        other.tensors[0].dims[1] = 4;
        other.tensors[1].name = "z".into();
        other.profiles[0].inputs[0].range.max = vec![8, 3, 32, 32];
        let d = iface().differences(&other);
        assert_eq!(d.len(), 5, "{d:#?}");
        assert!(
            d.iter()
                .any(|s| s.contains("'x' is expected as float32 but the engine has float16"))
        );
        assert!(
            d.iter()
                .any(|s| s.contains("'x' dimension 1 is expected to be 3 but the engine has 4"))
        );
        assert!(
            d.iter()
                .any(|s| s.contains("'y' is expected but the engine has no such tensor"))
        );
        assert!(d.iter().any(|s| s.contains("the engine has tensor 'z'")));
        assert!(d.iter().any(|s| s.contains(
            "profile 0 input 'x' max is expected to be 4x3x32x32 but the engine has 8x3x32x32"
        )));
    }
}
