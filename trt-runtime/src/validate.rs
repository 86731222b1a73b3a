//! Checks every call's inputs against the manifest before anything runs, with the
//! workspace's one validator (`trt_manifest::check_inputs` / `fit_profile`, which calibration
//! uses too): names, element types, ranks, fixed dims, and the dynamic dims against the
//! optimization profiles.

pub use trt_manifest::TensorMeta;
use trt_manifest::{Interface, Violation, check_inputs, fit_profile};

use crate::error::{Error, ErrorCode, Result};
#[cfg(test)]
use crate::tensor::TensorRef;

impl TensorMeta for crate::tensor::TensorRef<'_> {
    fn dtype(&self) -> trt_manifest::DType {
        crate::tensor::TensorRef::dtype(self)
    }
    fn shape(&self) -> &[usize] {
        crate::tensor::TensorRef::shape(self)
    }
}

fn invalid(v: Violation) -> Error {
    let message = match v.input() {
        Some(input) => format!("input '{input}': {}", v.describe("the engine")),
        None => v.describe("the engine"),
    };
    Error::new(ErrorCode::InvalidInput, message)
}

/// Validates `inputs` and returns the index of the first profile they all fit.
///
/// # Errors
///
/// [`ErrorCode::InvalidInput`] naming the input, the dimension, the value and the allowed
/// range (of every profile, when there are several).
pub fn select_profile<T: TensorMeta>(interface: &Interface, inputs: &[(&str, T)]) -> Result<usize> {
    check_inputs(interface.inputs(), inputs).map_err(invalid)?;
    fit_profile(&interface.profiles, inputs, None).map_err(invalid)
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
    check_inputs(interface.inputs(), inputs).map_err(invalid)?;
    fit_profile(&interface.profiles, inputs, Some(profile))
        .map(|_| ())
        .map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;
    use trt_manifest::{DType, Mode, ProfileSpec, RangeSpec, TensorSpec};

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
            "input 'x': dimension 0 is 20, outside the allowed range: profile 0: 1..=4 (min 1x8, max 4x8); \
             profile 1: 5..=16 (min 5x8, max 16x8)"
        );
    }

    #[test]
    fn wrong_names_types_ranks_and_fixed_dims_are_rejected() {
        let i = interface();
        let e =
            |inputs: &[(&str, TensorRef<'_>)]| select_profile(&i, inputs).unwrap_err().to_string();
        let ints = ArrayD::<i64>::zeros(vec![2, 8]);
        assert!(e(&[]).contains("input 'x': missing"));
        assert!(
            e(&[
                ("x", x(&[2, 8]).view().into()),
                ("z", x(&[1]).view().into())
            ])
            .contains("input 'z': not an input of the engine; its inputs are: x")
        );
        assert!(
            e(&[("x", ints.view().into())])
                .contains("input 'x': element type int64 but the engine expects float32")
        );
        assert!(
            e(&[("x", x(&[2, 8, 1]).view().into())])
                .contains("rank 3 (shape [2, 8, 1]) but the engine declares rank 2 ([dynamic, 8])")
        );
        assert!(
            e(&[("x", x(&[2, 7]).view().into())])
                .contains("dimension 1 is 7 but the engine fixes it to 8")
        );
    }
}
