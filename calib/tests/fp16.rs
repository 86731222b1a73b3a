//! The FP16 conversion keeps I/O types and agrees with FP32.

use calib::fp16::*;
use calib::report::compare_samples;
use test_support::synth::{seed_decoder, seed_samples};

#[test]
fn fp16_graph_keeps_io_types_and_agrees_with_fp32() {
    let model = seed_decoder(1);
    let half = convert(&model);
    assert_eq!(half.inputs().unwrap(), model.inputs().unwrap());
    assert_eq!(half.outputs().unwrap(), model.outputs().unwrap());
    assert!(
        half.graph()
            .initializer
            .iter()
            .filter(|t| t.name.ends_with("weight"))
            .all(|t| t.data_type == tract_onnx::pb::tensor_proto::DataType::Float16 as i32)
    );
    let casts = half
        .graph()
        .node
        .iter()
        .filter(|n| n.op_type == "Cast")
        .count();
    assert_eq!(casts, 4, "three inputs and one output are cast");
    let report =
        compare_samples(&model, &half, &seed_samples(2, &[(1, 4, 4), (2, 6, 6)], 1)).unwrap();
    assert!(report.outputs[0].snr_db > 40.0, "{}", report.table());
}
