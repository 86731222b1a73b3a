//! The one input validator of the workspace: calibration samples (`calib`) and run-time calls
//! (`trt-runtime`) both go through it, so both refuse the same things with the same words.
//!
//! [`check_inputs`] checks names, element types, ranks and fixed dims against the declared
//! inputs; [`fit_profile`] finds the first optimization profile every dynamic dim fits (or
//! checks one given profile). A refusal is a [`Violation`]: structured, naming the input, the
//! dimension, the value and what was allowed; [`Violation::describe`] words it for "the model"
//! or "the engine".

use std::fmt;

use crate::{DType, ProfileSpec, TensorSpec, shape_text};

/// What validation needs of a tensor: its element type and shape (host or device).
pub trait TensorMeta {
    /// Element type.
    fn dtype(&self) -> DType;
    /// Shape.
    fn shape(&self) -> &[usize];
}

impl<T: TensorMeta> TensorMeta for &T {
    fn dtype(&self) -> DType {
        (**self).dtype()
    }
    fn shape(&self) -> &[usize] {
        (**self).shape()
    }
}

/// The range of one profile for a refused dim: (profile, min, max, min shape, max shape).
pub type AllowedRange = (usize, i64, i64, Vec<i64>, Vec<i64>);

/// Why inputs were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A name that is not an input.
    Unknown {
        /// The name given.
        input: String,
        /// The real inputs.
        known: Vec<String>,
    },
    /// An input without a tensor.
    Missing {
        /// The input.
        input: String,
    },
    /// The wrong element type.
    DType {
        /// The input.
        input: String,
        /// Given.
        actual: DType,
        /// Declared.
        expected: DType,
    },
    /// The wrong rank.
    Rank {
        /// The input.
        input: String,
        /// The shape given.
        shape: Vec<usize>,
        /// Declared dims (`-1` dynamic).
        expected: Vec<i64>,
    },
    /// A fixed dim with another value.
    FixedDim {
        /// The input.
        input: String,
        /// Axis.
        axis: usize,
        /// Given.
        value: usize,
        /// Declared.
        fixed: i64,
    },
    /// A dynamic dim outside every candidate profile (the first one found).
    OutsideProfiles {
        /// The input.
        input: String,
        /// Axis.
        axis: usize,
        /// Given.
        value: usize,
        /// The allowed range of every candidate profile.
        allowed: Vec<AllowedRange>,
    },
    /// A profile index the engine does not have.
    NoSuchProfile {
        /// Asked for.
        profile: usize,
        /// Profiles there are.
        count: usize,
    },
}

impl Violation {
    /// The input at fault, when there is one.
    pub fn input(&self) -> Option<&str> {
        match self {
            Violation::Unknown { input, .. }
            | Violation::Missing { input }
            | Violation::DType { input, .. }
            | Violation::Rank { input, .. }
            | Violation::FixedDim { input, .. }
            | Violation::OutsideProfiles { input, .. } => Some(input),
            Violation::NoSuchProfile { .. } => None,
        }
    }

    /// What is wrong, without the input's name, for `subject` ("the model", "the engine").
    pub fn describe(&self, subject: &str) -> String {
        match self {
            Violation::Unknown { known, .. } => {
                format!(
                    "not an input of {subject}; its inputs are: {}",
                    known.join(", ")
                )
            }
            Violation::Missing { .. } => {
                format!("missing: every input of {subject} needs a tensor")
            }
            Violation::DType {
                actual, expected, ..
            } => format!("element type {actual} but {subject} expects {expected}"),
            Violation::Rank {
                shape, expected, ..
            } => format!(
                "rank {} (shape {shape:?}) but {subject} declares rank {} ({})",
                shape.len(),
                expected.len(),
                crate::dims_text(expected)
            ),
            Violation::FixedDim {
                axis, value, fixed, ..
            } => format!("dimension {axis} is {value} but {subject} fixes it to {fixed}"),
            Violation::OutsideProfiles {
                axis,
                value,
                allowed,
                ..
            } => {
                let ranges: Vec<String> = allowed
                    .iter()
                    .map(|(p, lo, hi, min, max)| {
                        format!(
                            "profile {p}: {lo}..={hi} (min {}, max {})",
                            shape_text(min),
                            shape_text(max)
                        )
                    })
                    .collect();
                format!(
                    "dimension {axis} is {value}, outside the allowed range: {}",
                    ranges.join("; ")
                )
            }
            Violation::NoSuchProfile { profile, count } => {
                format!("profile {profile} does not exist; {subject} has {count}")
            }
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.input() {
            Some(input) => write!(f, "input '{input}': {}", self.describe("the model")),
            None => f.write_str(&self.describe("the model")),
        }
    }
}

/// Checks names, element types, ranks and fixed dims of `inputs` against the declared input
/// `specs` (dims `-1` where dynamic): no unknown name, no missing input.
///
/// # Errors
///
/// The first [`Violation`] found.
pub fn check_inputs<'s, T: TensorMeta>(
    specs: impl IntoIterator<Item = &'s TensorSpec> + Clone,
    inputs: &[(&str, T)],
) -> Result<(), Violation> {
    for (name, _) in inputs {
        if !specs.clone().into_iter().any(|s| s.name == *name) {
            return Err(Violation::Unknown {
                input: name.to_string(),
                known: specs.into_iter().map(|s| s.name.clone()).collect(),
            });
        }
    }
    for spec in specs {
        let input = || spec.name.clone();
        let Some((_, t)) = inputs.iter().find(|(n, _)| *n == spec.name) else {
            return Err(Violation::Missing { input: input() });
        };
        if t.dtype() != spec.dtype {
            return Err(Violation::DType {
                input: input(),
                actual: t.dtype(),
                expected: spec.dtype,
            });
        }
        let shape = t.shape();
        if shape.len() != spec.dims.len() {
            return Err(Violation::Rank {
                input: input(),
                shape: shape.to_vec(),
                expected: spec.dims.clone(),
            });
        }
        for (axis, (&d, &value)) in spec.dims.iter().zip(shape).enumerate() {
            if d >= 0 && d as usize != value {
                return Err(Violation::FixedDim {
                    input: input(),
                    axis,
                    value,
                    fixed: d,
                });
            }
        }
    }
    Ok(())
}

/// The first profile every input with a range fits (`only`: that profile alone). No profile
/// at all accepts anything (index 0): inputs without ranges are fixed and were checked by
/// [`check_inputs`].
///
/// # Errors
///
/// [`Violation::OutsideProfiles`] with the first refused dim and the ranges of every
/// candidate; [`Violation::NoSuchProfile`] for an `only` out of range.
pub fn fit_profile<T: TensorMeta>(
    profiles: &[ProfileSpec],
    inputs: &[(&str, T)],
    only: Option<usize>,
) -> Result<usize, Violation> {
    if let Some(p) = only
        && p >= profiles.len().max(1)
    {
        return Err(Violation::NoSuchProfile {
            profile: p,
            count: profiles.len(),
        });
    }
    if profiles.is_empty() {
        return Ok(0);
    }
    let candidates: Vec<usize> = match only {
        Some(p) => vec![p],
        None => (0..profiles.len()).collect(),
    };
    let mut first = None;
    for &p in &candidates {
        let violation = inputs.iter().find_map(|(name, t)| {
            let range = profiles[p].range(name)?;
            t.shape().iter().enumerate().find_map(|(axis, &v)| {
                let (min, max) = (*range.min.get(axis)?, *range.max.get(axis)?);
                (!(min..=max).contains(&(v as i64))).then(|| (name.to_string(), axis, v))
            })
        });
        match violation {
            None => return Ok(p),
            Some(v) => {
                first.get_or_insert(v);
            }
        }
    }
    let (input, axis, value) = first.expect("at least one candidate profile");
    let allowed = candidates
        .iter()
        .filter_map(|&p| {
            let r = profiles[p].range(&input)?;
            Some((p, r.min[axis], r.max[axis], r.min.clone(), r.max.clone()))
        })
        .collect();
    Err(Violation::OutsideProfiles {
        input,
        axis,
        value,
        allowed,
    })
}
