//! Optimization profiles: min/opt/max shapes of the dynamic inputs, checked against the model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
pub use trt_manifest::ShapeRange;
use trt_manifest::{ProfileSpec, RangeSpec, shape_text};

use crate::error::{Error, Result};
use crate::model::{Dim, TensorInfo};

/// Parses `1x3x224x224` (an empty string is a scalar).
///
/// # Errors
///
/// [`Error::Options`] for anything that is not `x`-separated non-negative integers.
pub fn parse_shape(text: &str) -> Result<Vec<i64>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split('x')
        .map(|d| {
            d.trim()
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| {
                    Error::options(format!(
                        "'{text}' is not a shape like 1x3x224x224 ('{d}' is not a dimension)"
                    ))
                })
        })
        .collect()
}

/// One optimization profile: a [`ShapeRange`] for every dynamic input (fixed inputs may be
/// listed too).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Profile {
    /// Ranges by input name.
    pub inputs: BTreeMap<String, ShapeRange>,
}

impl Profile {
    /// An empty profile.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the range of one input.
    pub fn input(mut self, name: impl Into<String>, range: ShapeRange) -> Self {
        self.inputs.insert(name.into(), range);
        self
    }

    /// Parses `name:min:opt:max` (e.g. `x:1x3x64x64:4x3x128x128:8x3x256x256`) and adds it.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] for a malformed specification.
    pub fn parse_input(mut self, spec: &str) -> Result<Self> {
        let parts: Vec<&str> = spec.rsplitn(4, ':').collect();
        if parts.len() != 4 {
            return Err(Error::options(format!(
                "profile '{spec}' must be NAME:MIN:OPT:MAX with shapes like 1x3x224x224"
            )));
        }
        let range = ShapeRange::new(
            parse_shape(parts[2])?,
            parse_shape(parts[1])?,
            parse_shape(parts[0])?,
        );
        if self.inputs.contains_key(parts[3]) {
            return Err(Error::options(format!(
                "profile '{spec}': input '{}' already has a range in this profile; give each input once",
                parts[3]
            )));
        }
        self.inputs.insert(parts[3].to_string(), range);
        Ok(self)
    }

    /// The profile in the manifest's terms (ranges in name order), for the shared validator.
    pub fn spec(&self) -> ProfileSpec {
        ProfileSpec {
            inputs: self
                .inputs
                .iter()
                .map(|(name, range)| RangeSpec {
                    name: name.clone(),
                    range: range.clone(),
                })
                .collect(),
        }
    }
}

/// Fails when the model has dynamic inputs but no profile is declared (an engine needs one).
///
/// # Errors
///
/// [`Error::Profile`] listing the dynamic inputs.
pub fn require_profiles(inputs: &[TensorInfo], profiles: &[Profile]) -> Result<()> {
    let dynamic: Vec<&TensorInfo> = inputs.iter().filter(|i| i.is_dynamic()).collect();
    if profiles.is_empty() && !dynamic.is_empty() {
        let names: Vec<&str> = dynamic.iter().map(|i| i.name.as_str()).collect();
        return Err(Error::Profile {
            input: names.join(", "),
            message: "these inputs are dynamic, so at least one optimization profile must give their min/opt/max"
                .into(),
        });
    }
    Ok(())
}

/// Checks profiles against the model's inputs before any heavy work: every name is an input
/// (otherwise the real inputs are listed with their shapes), every dynamic input has a range
/// in every profile, ranks match, fixed dims are declared as fixed, `0 <= min <= opt <= max`,
/// and no two profiles are identical. No profile at all passes (see [`require_profiles`]).
///
/// # Errors
///
/// [`Error::Profile`] naming the input, the profile, the dimension and what was expected.
pub fn validate_profiles(inputs: &[TensorInfo], profiles: &[Profile]) -> Result<()> {
    let listing = || {
        inputs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let dynamic: Vec<&TensorInfo> = inputs.iter().filter(|i| i.is_dynamic()).collect();
    for (p, profile) in profiles.iter().enumerate() {
        for (name, range) in &profile.inputs {
            let Some(info) = inputs.iter().find(|i| &i.name == name) else {
                return Err(Error::Profile {
                    input: name.clone(),
                    message: format!(
                        "profile {p} names an input the model does not have; its inputs are: {}",
                        listing()
                    ),
                });
            };
            for (which, dims) in [
                ("min", &range.min),
                ("opt", &range.opt),
                ("max", &range.max),
            ] {
                if dims.len() != info.dims.len() {
                    return Err(Error::Profile {
                        input: name.clone(),
                        message: format!(
                            "profile {p} {which} shape {} has rank {} but the model declares rank {} {}",
                            shape_text(dims),
                            dims.len(),
                            info.dims.len(),
                            info.shape_string()
                        ),
                    });
                }
            }
            for (axis, dim) in info.dims.iter().enumerate() {
                let (min, opt, max) = (range.min[axis], range.opt[axis], range.max[axis]);
                if let Dim::Fixed(fixed) = dim
                    && (min, opt, max) != (*fixed, *fixed, *fixed)
                {
                    return Err(Error::Profile {
                        input: name.clone(),
                        message: format!(
                            "profile {p} dimension {axis} is declared {min}/{opt}/{max} but the model fixes it to {fixed}"
                        ),
                    });
                }
                if min < 0 || !(min <= opt && opt <= max) {
                    return Err(Error::Profile {
                        input: name.clone(),
                        message: format!(
                            "profile {p} dimension {axis} needs 0 <= min <= opt <= max, got min {min}, opt {opt}, max {max}"
                        ),
                    });
                }
                if max == 0 && dim.fixed().is_none() {
                    return Err(Error::Profile {
                        input: name.clone(),
                        message: format!("profile {p} dimension {axis} is empty (max 0)"),
                    });
                }
            }
            // What the declared max implies for one input, before anything runs.
            let item = info.elem_type.size() as u64;
            let bytes = range
                .max
                .iter()
                .try_fold(item, |n, &d| n.checked_mul(d.max(0) as u64));
            if bytes.is_none_or(|b| b > crate::MAX_ARRAY_BYTES) {
                return Err(Error::Profile {
                    input: name.clone(),
                    message: format!(
                        "profile {p}'s max shape {} is {} of {}, above the {}-byte limit of one input",
                        shape_text(&range.max),
                        bytes.map_or("more than 2^64 bytes".to_string(), |b| format!("{b} bytes")),
                        info.elem_type,
                        crate::MAX_ARRAY_BYTES
                    ),
                });
            }
        }
        for info in &dynamic {
            if !profile.inputs.contains_key(&info.name) {
                return Err(Error::Profile {
                    input: info.name.clone(),
                    message: format!(
                        "dynamic input {} has no min/opt/max in profile {p}; every dynamic input needs one",
                        info.shape_string()
                    ),
                });
            }
        }
        if let Some(q) = profiles[..p].iter().position(|other| other == profile) {
            return Err(Error::Profile {
                input: profile
                    .inputs
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                message: format!("profile {p} is identical to profile {q}"),
            });
        }
    }
    Ok(())
}

/// Pairs of profiles whose ranges overlap on every input (legal in TensorRT, but a call that
/// fits both always takes the lower index, so the other profile's kernels never see it).
pub fn overlapping_profiles(profiles: &[Profile]) -> Vec<(usize, usize)> {
    let overlaps = |a: &Profile, b: &Profile| {
        a.inputs.iter().all(|(name, ra)| {
            b.inputs.get(name).is_none_or(|rb| {
                ra.min
                    .iter()
                    .zip(&ra.max)
                    .zip(rb.min.iter().zip(&rb.max))
                    .all(|((amin, amax), (bmin, bmax))| amin <= bmax && bmin <= amax)
            })
        })
    };
    let mut out = Vec::new();
    for i in 0..profiles.len() {
        for j in i + 1..profiles.len() {
            if overlaps(&profiles[i], &profiles[j]) {
                out.push((i, j));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_profiles_are_found() {
        let p = |min: i64, max: i64| {
            Profile::new().input("x", ShapeRange::new([min, 8], [min, 8], [max, 8]))
        };
        assert_eq!(overlapping_profiles(&[p(1, 4), p(5, 8)]), vec![]);
        assert_eq!(
            overlapping_profiles(&[p(1, 4), p(4, 8), p(9, 9)]),
            vec![(0, 1)]
        );
    }
}
