//! Checks every call's inputs against the manifest before anything runs: names, element
//! types, ranks, fixed dims, and the dynamic dims against the optimization profiles.

use trt_manifest::{DType, Interface, shape_text};

use crate::error::{Error, ErrorCode, Result};
use crate::tensor::TensorRef;

/// What validation needs of a tensor: its element type and shape (host or device).
pub trait TensorMeta {
    /// Element type.
    fn dtype(&self) -> DType;
    /// Shape.
    fn shape(&self) -> &[usize];
}

impl TensorMeta for TensorRef<'_> {
    fn dtype(&self) -> DType {
        TensorRef::dtype(self)
    }
    fn shape(&self) -> &[usize] {
        TensorRef::shape(self)
    }
}

impl<T: TensorMeta> TensorMeta for &T {
    fn dtype(&self) -> DType {
        (**self).dtype()
    }
    fn shape(&self) -> &[usize] {
        (**self).shape()
    }
}

/// Validates `inputs` and returns the index of the first profile they all fit.
///
/// # Errors
///
/// [`ErrorCode::InvalidInput`] naming the input, the dimension, the value and the allowed
/// range (of every profile, when there are several).
pub fn select_profile<T: TensorMeta>(interface: &Interface, inputs: &[(&str, T)]) -> Result<usize> {
    check_inputs(interface, inputs)?;
    if interface.profiles.is_empty() {
        return Ok(0);
    }
    fit(
        interface,
        inputs,
        &(0..interface.profiles.len()).collect::<Vec<_>>(),
    )
}

/// Validates `inputs` against one given profile.
///
/// # Errors
///
/// [`ErrorCode::InvalidInput`] as [`select_profile`], or for a profile the engine does not
/// have.
pub fn check_profile<T: TensorMeta>(
    interface: &Interface,
    inputs: &[(&str, T)],
    profile: usize,
) -> Result<()> {
    check_inputs(interface, inputs)?;
    if profile >= interface.profiles.len().max(1) {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            format!(
                "profile {profile} does not exist; the engine has {}",
                interface.profiles.len()
            ),
        ));
    }
    if interface.profiles.is_empty() {
        return Ok(());
    }
    fit(interface, inputs, &[profile]).map(|_| ())
}

/// Names, element types, ranks and fixed dims.
fn check_inputs<T: TensorMeta>(interface: &Interface, inputs: &[(&str, T)]) -> Result<()> {
    let invalid = |m: String| Error::new(ErrorCode::InvalidInput, m);
    for (name, _) in inputs {
        if interface.inputs().all(|t| t.name != *name) {
            let known: Vec<&str> = interface.inputs().map(|t| t.name.as_str()).collect();
            return Err(invalid(format!(
                "unknown input '{name}'; the model's inputs are: {}",
                known.join(", ")
            )));
        }
    }
    for spec in interface.inputs() {
        let Some((_, t)) = inputs.iter().find(|(n, _)| *n == spec.name) else {
            return Err(invalid(format!("input '{}' is missing", spec.name)));
        };
        if t.dtype() != spec.dtype {
            return Err(invalid(format!(
                "input '{}' is {} but the engine expects {}",
                spec.name,
                t.dtype(),
                spec.dtype
            )));
        }
        let shape = t.shape();
        if shape.len() != spec.dims.len() {
            return Err(invalid(format!(
                "input '{}' has rank {} (shape {shape:?}) but the engine expects rank {}",
                spec.name,
                shape.len(),
                spec.dims.len()
            )));
        }
        for (axis, (&d, &s)) in spec.dims.iter().zip(shape).enumerate() {
            if d >= 0 && d as usize != s {
                return Err(invalid(format!(
                    "input '{}' dimension {axis} is {s} but the engine fixes it to {d}",
                    spec.name
                )));
            }
        }
    }
    Ok(())
}

/// The first of `candidates` that every input fits, or an error listing their ranges.
fn fit<T: TensorMeta>(
    interface: &Interface,
    inputs: &[(&str, T)],
    candidates: &[usize],
) -> Result<usize> {
    let mut first = None;
    for &p in candidates {
        let profile = &interface.profiles[p];
        let violation = inputs.iter().find_map(|(name, t)| {
            let range = profile.range(name)?;
            t.shape().iter().enumerate().find_map(|(axis, &v)| {
                let (min, max) = (range.min[axis], range.max[axis]);
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
    let (name, axis, value) = first.expect("at least one candidate profile");
    let ranges: Vec<String> = candidates
        .iter()
        .filter_map(|&p| {
            interface.profiles[p].range(&name).map(|r| {
                format!(
                    "profile {p}: {}..={} (min {}, max {})",
                    r.min[axis],
                    r.max[axis],
                    shape_text(&r.min),
                    shape_text(&r.max)
                )
            })
        })
        .collect();
    Err(Error::new(
        ErrorCode::InvalidInput,
        format!(
            "input '{name}' dimension {axis} is {value}, outside the allowed range: {}",
            ranges.join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;
    use trt_manifest::{Mode, ProfileSpec, RangeSpec, TensorSpec};

    fn interface() -> Interface {
        let x = |min: [i64; 2], max: [i64; 2]| ProfileSpec {
            inputs: vec![RangeSpec {
                name: "x".into(),
                range: trt_manifest::ShapeRange::new(min.to_vec(), min.to_vec(), max.to_vec()),
            }],
        };
        Interface {
            tensors: vec![
                TensorSpec {
                    name: "x".into(),
                    mode: Mode::Input,
                    dtype: DType::F32,
                    dims: vec![-1, 8],
                },
                TensorSpec {
                    name: "y".into(),
                    mode: Mode::Output,
                    dtype: DType::F32,
                    dims: vec![-1, 8],
                },
            ],
            profiles: vec![x([1, 8], [4, 8]), x([5, 8], [16, 8])],
        }
    }

    fn x(shape: &[usize]) -> ArrayD<f32> {
        ArrayD::zeros(shape)
    }

    #[test]
    fn inputs_select_the_profile_they_fit() {
        let i = interface();
        assert_eq!(
            select_profile::<TensorRef<'_>>(&i, &[("x", x(&[2, 8]).view().into())]).unwrap(),
            0
        );
        assert_eq!(
            select_profile::<TensorRef<'_>>(&i, &[("x", x(&[9, 8]).view().into())]).unwrap(),
            1
        );
    }

    #[test]
    fn out_of_profile_names_input_dimension_value_and_ranges() {
        let e = select_profile::<TensorRef<'_>>(&interface(), &[("x", x(&[20, 8]).view().into())])
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
        assert_eq!(
            e.message(),
            "input 'x' dimension 0 is 20, outside the allowed range: profile 0: 1..=4 (min 1x8, max 4x8); \
             profile 1: 5..=16 (min 5x8, max 16x8)"
        );
    }

    #[test]
    fn wrong_names_types_ranks_and_fixed_dims_are_rejected() {
        let i = interface();
        let e =
            |inputs: &[(&str, TensorRef<'_>)]| select_profile(&i, inputs).unwrap_err().to_string();
        let ints = ArrayD::<i64>::zeros(vec![2, 8]);
        assert!(e(&[]).contains("input 'x' is missing"));
        assert!(
            e(&[
                ("x", x(&[2, 8]).view().into()),
                ("z", x(&[1]).view().into())
            ])
            .contains("unknown input 'z'")
        );
        assert!(
            e(&[("x", ints.view().into())])
                .contains("input 'x' is int64 but the engine expects float32")
        );
        assert!(e(&[("x", x(&[2, 8, 1]).view().into())]).contains("rank 3"));
        assert!(
            e(&[("x", x(&[2, 7]).view().into())])
                .contains("dimension 1 is 7 but the engine fixes it to 8")
        );
    }
}
