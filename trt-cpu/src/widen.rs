//! The float32-scale form of float16 Q/DQ, for tract.

use std::collections::HashSet;

use tract_onnx::pb;
use tract_onnx::prelude::f16;

use crate::model::{DType, Model};

const F32: i32 = DType::F32.to_onnx();
const F16: i32 = DType::F16.to_onnx();

/// A `Cast` node called `name` from `input` to `output`, of ONNX element type `to`.
pub fn cast(name: &str, input: &str, output: &str, to: i32) -> pb::NodeProto {
    pb::NodeProto {
        name: name.into(),
        op_type: "Cast".into(),
        input: vec![input.into()],
        output: vec![output.into()],
        attribute: vec![pb::AttributeProto {
            name: "to".into(),
            r#type: 2,
            i: to as i64,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// For tract, whose QuantizeLinear/DequantizeLinear take float32 scales only: rewrites Q/DQ
/// with float16 scales into float32-scale Q/DQ wrapped in Casts (float16 → float32 is exact,
/// so the quantized values are the same). Returns `None` when the model has none.
pub fn widen_qdq_for_tract(model: &Model) -> Option<Model> {
    let graph = model.graph();
    let f16_scales: HashSet<String> = graph
        .node
        .iter()
        .filter(|n| matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear"))
        .filter_map(|n| n.input.get(1))
        .filter(|s| {
            graph
                .initializer
                .iter()
                .any(|t| &t.name == *s && t.data_type == F16)
        })
        .cloned()
        .collect();
    if f16_scales.is_empty() {
        return None;
    }
    let mut out = model.clone();
    let graph = out.graph_mut();
    for t in graph
        .initializer
        .iter_mut()
        .filter(|t| f16_scales.contains(&t.name))
    {
        let values: Vec<f32> = t
            .raw_data
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        t.data_type = F32;
    }
    let inits: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let mut nodes = Vec::with_capacity(graph.node.len());
    for mut node in std::mem::take(&mut graph.node) {
        let widened = node.input.get(1).is_some_and(|s| f16_scales.contains(s));
        match node.op_type.as_str() {
            "QuantizeLinear" if widened && !inits.contains(&node.input[0]) => {
                let wide = format!("{}_f32", node.input[0]);
                nodes.push(cast(
                    &format!("{}_to_f32", node.name),
                    &node.input[0],
                    &wide,
                    F32,
                ));
                node.input[0] = wide;
                nodes.push(node);
            }
            "DequantizeLinear" if widened => {
                let original = node.output[0].clone();
                let wide = format!("{original}_f32");
                node.output[0] = wide.clone();
                let name = format!("{}_to_f16", node.name);
                nodes.push(node);
                nodes.push(cast(&name, &wide, &original, F16));
            }
            _ => nodes.push(node),
        }
    }
    graph.node = nodes;
    Some(out)
}
