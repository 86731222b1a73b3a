//! Converting the float graph to FP16 while keeping the model's input and output types
//! (ModelOpt's default for strongly typed TensorRT, which runs every float op in the
//! precision the ONNX says).
//!
//! - float32 initializers become float16 (Q/DQ scales included, so DequantizeLinear produces
//!   float16), except inputs whose operator requires float32 (Resize scales);
//! - float32 `Constant` / `ConstantOfShape` values become float16 and `Cast(to=float32)`
//!   becomes `Cast(to=float16)`;
//! - a `Cast` to float16 follows every float32 graph input and a `Cast` back to float32
//!   precedes every float32 graph output, so callers see the original types;
//! - intermediate `value_info` is dropped (types changed; runtimes infer them again).

use std::collections::HashSet;

use tract_onnx::pb;
use tract_onnx::prelude::f16;

use trt_cpu::Model;
use trt_cpu::model::initializer_f32;
use trt_cpu::widen::cast;

const F32: i32 = crate::DType::F32.to_onnx();
const F16: i32 = crate::DType::F16.to_onnx();

fn tensor_to_f16(t: &mut pb::TensorProto) {
    if t.data_type != F32 {
        return;
    }
    if let Some(values) = initializer_f32(t) {
        t.raw_data = values
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect();
        t.float_data.clear();
        t.data_type = F16;
    }
}

fn set_elem_type(v: &mut pb::ValueInfoProto, elem: i32) {
    if let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.elem_type = elem;
    }
}

fn elem_type(v: &pb::ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref()?.value.as_ref()? {
        pb::type_proto::Value::TensorType(t) => Some(t.elem_type),
    }
}

/// Returns a copy of `model` whose float computation runs in FP16 and whose inputs and
/// outputs keep their types.
pub fn convert(model: &Model) -> Model {
    let mut out = model.clone();
    let graph = out.graph_mut();

    // Initializers that must stay float32: Resize's `scales` (input 2).
    let keep: HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Resize")
        .filter_map(|n| n.input.get(2).cloned())
        .collect();
    for t in graph
        .initializer
        .iter_mut()
        .filter(|t| !keep.contains(&t.name))
    {
        tensor_to_f16(t);
    }
    for node in &mut graph.node {
        for a in &mut node.attribute {
            if let Some(t) = a.t.as_mut() {
                tensor_to_f16(t);
            }
            if node.op_type == "Cast" && a.name == "to" && a.i == F32 as i64 {
                a.i = F16 as i64;
            }
        }
    }

    let inits: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let mut leading = Vec::new();
    for input in graph
        .input
        .iter()
        .filter(|i| !inits.contains(&i.name) && elem_type(i) == Some(F32))
    {
        let half = format!("{}_fp16", input.name);
        leading.push(cast(
            &format!("{}_to_fp16", input.name),
            &input.name,
            &half,
            F16,
        ));
        for node in &mut graph.node {
            for i in node.input.iter_mut().filter(|i| **i == input.name) {
                *i = half.clone();
            }
        }
    }
    let mut trailing = Vec::new();
    for output in graph.output.iter().filter(|o| elem_type(o) == Some(F32)) {
        let half = format!("{}_fp16", output.name);
        for node in &mut graph.node {
            for o in node.output.iter_mut().filter(|o| **o == output.name) {
                *o = half.clone();
            }
            for i in node.input.iter_mut().filter(|i| **i == output.name) {
                *i = half.clone();
            }
        }
        trailing.push(cast(
            &format!("{}_to_fp32", output.name),
            &half,
            &output.name,
            F32,
        ));
    }
    let body = std::mem::take(&mut graph.node);
    graph.node = leading.into_iter().chain(body).chain(trailing).collect();
    graph.value_info.clear();
    for v in graph
        .input
        .iter_mut()
        .filter(|v| inits.contains(&v.name) && elem_type(v) == Some(F32))
    {
        set_elem_type(v, F16);
    }
    out
}
