//! Golden test of the generated code: a fixed manifest (the seed decoder's interface) against
//! `tests/golden/seed_decoder.rs`. Refresh with `TRT_BUILD_OVERWRITE_EXPECTED=1`, then review
//! the diff. Also: tensor names that collide as Rust fields are refused, naming both.

use std::path::Path;

use trt_manifest::{DType, Interface, Manifest, Mode, ProfileSpec, RangeSpec, TensorSpec};

fn tensor(name: &str, mode: Mode, dims: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        mode,
        dtype: DType::F32,
        dims: dims.to_vec(),
    }
}

fn manifest(tensors: Vec<TensorSpec>) -> Manifest {
    let range = |name: &str, min: [i64; 4], max: [i64; 4]| RangeSpec {
        name: name.into(),
        range: trt_manifest::ShapeRange::new(min.to_vec(), min.to_vec(), max.to_vec()),
    };
    Manifest {
        format_version: trt_manifest::FORMAT_VERSION,
        name: "seed_decoder".into(),
        interface: Interface {
            tensors,
            profiles: vec![ProfileSpec {
                inputs: vec![
                    range("y_hat", [1, 8, 4, 4], [4, 8, 16, 16]),
                    range("q", [1, 8, 1, 1], [4, 8, 1, 1]),
                    range("dummy_input", [1, 3, 13, 13], [4, 3, 61, 61]),
                ],
            }],
        },
        engine_sha256: "0".repeat(64),
        cache_key: "1".repeat(64),
        flavor: "tensorrt-rtx".into(),
        tensorrt_version: 10701,
        precision: "int8".into(),
        calibration: None,
    }
}

#[test]
fn generated_code_matches_the_golden_file() {
    let m = manifest(vec![
        tensor("y_hat", Mode::Input, &[-1, 8, -1, -1]),
        tensor("q", Mode::Input, &[-1, 8, 1, 1]),
        tensor("dummy_input", Mode::Input, &[-1, 3, -1, -1]),
        tensor("x_hat", Mode::Output, &[-1, 3, -1, -1]),
    ]);
    let code = trt_build::codegen::generate(
        &m,
        Path::new("/out/seed_decoder.engine"),
        Some(Path::new("/out/seed_decoder.onnx")),
    )
    .unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/seed_decoder.rs");
    #[allow(clippy::disallowed_methods)]
    if std::env::var_os("TRT_BUILD_OVERWRITE_EXPECTED").is_some() {
        std::fs::write(&golden, &code).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        code, expected,
        "generated code changed; rerun with TRT_BUILD_OVERWRITE_EXPECTED=1 and review"
    );
}

#[test]
fn colliding_field_names_are_refused() {
    let m = manifest(vec![
        tensor("input.1", Mode::Input, &[1, 8]),
        tensor("input_1", Mode::Input, &[1, 8]),
    ]);
    let e = trt_build::codegen::generate(&m, Path::new("/e"), None).unwrap_err();
    assert!(
        e.message()
            .contains("'input.1' and 'input_1' both become the Rust field `input_1`"),
        "{e}"
    );
}
