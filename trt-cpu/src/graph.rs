//! tract's graph of a model: parsed (offloaded weights read from their file), its input facts
//! for one concrete shape or for every shape (symbols), and the form onnxruntime takes.

use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::model::{DType, Dim, Model, TensorInfo};

/// The graph without intermediate shape annotations and with output shapes dropped (element
/// types kept), for onnxruntime, which would check them against its own inference.
pub(crate) fn without_shape_annotations(proto: &pb::ModelProto) -> pb::ModelProto {
    let mut proto = proto.clone();
    if let Some(g) = proto.graph.as_mut() {
        g.value_info.clear();
        for o in &mut g.output {
            if let Some(pb::type_proto::Value::TensorType(t)) =
                o.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                t.shape = None;
            }
        }
    }
    proto
}

/// tract's graph of `model` with these outputs. Intermediate shape annotations
/// (`value_info`) are ignored and output shapes are not read (tract's default): tract infers
/// every shape from the inputs instead of trying to unify them with annotations that
/// exporters often get wrong.
pub(crate) fn parse(model: &Model, outputs: &[String]) -> Result<InferenceModel> {
    let ctx = |step: &str| format!("{}: {step}", model.name());
    // An offloaded model's weights are external data in their own folder.
    let dir = model
        .offload_dir()
        .map(|d| d.to_string_lossy().into_owned());
    let pruned = needed_for(model.proto(), outputs);
    let parsed = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .parse(pruned.as_ref().unwrap_or(model.proto()), dir.as_deref())
        .map_err(|e| Error::inference(ctx("loading into tract"), e))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(Error::inference(
            ctx("loading into tract"),
            format!(
                "inputs no node or initializer provides: {}",
                parsed.unresolved_inputs.join(", ")
            ),
        ));
    }
    let mut template = parsed.model;
    template
        .select_outputs_by_name(outputs)
        .map_err(|e| Error::inference(ctx("selecting outputs"), e))?;
    Ok(template)
}

/// The graph with only the nodes and initializers `outputs` depend on, or `None` when they
/// depend on all of them. Observing a few tensors (calibration) then never loads the weights
/// of the layers after them (`dddd_crnn`'s 34 MB classifier).
fn needed_for(proto: &pb::ModelProto, outputs: &[String]) -> Option<pb::ModelProto> {
    let graph = proto.graph.as_ref()?;
    let mut needed: std::collections::HashSet<&str> = outputs.iter().map(String::as_str).collect();
    // Inputs stay, and so does an initializer listed as one (older models): the inputs'
    // positions must not change.
    needed.extend(graph.input.iter().map(|i| i.name.as_str()));
    let mut keep = vec![false; graph.node.len()];
    for (i, node) in graph.node.iter().enumerate().rev() {
        if node.output.iter().any(|o| needed.contains(o.as_str())) {
            keep[i] = true;
            needed.extend(node.input.iter().map(String::as_str));
            // A subgraph (If, Loop, Scan) may read any name of the enclosing scope.
            for a in &node.attribute {
                for g in a.g.iter().chain(&a.graphs) {
                    names_read(g, &mut needed);
                }
            }
        }
    }
    let unused = |name: &str| !needed.contains(name);
    if keep.iter().all(|&k| k) && !graph.initializer.iter().any(|t| unused(&t.name)) {
        return None;
    }
    let mut pruned = crate::offload::shell(proto);
    let g = pruned.graph.as_mut()?;
    g.node = graph
        .node
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(n, _)| n.clone())
        .collect();
    g.initializer = graph
        .initializer
        .iter()
        .filter(|t| !unused(&t.name))
        .cloned()
        .collect();
    g.output.retain(|o| !unused(&o.name));
    Some(pruned)
}

/// Every name the nodes of `graph` and of its subgraphs read.
fn names_read<'a>(graph: &'a pb::GraphProto, names: &mut std::collections::HashSet<&'a str>) {
    for node in &graph.node {
        names.extend(node.input.iter().map(String::as_str));
        for a in &node.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                names_read(g, names);
            }
        }
    }
}

/// tract's element type for an input.
pub(crate) fn datum_type(info: &TensorInfo) -> TractResult<DatumType> {
    Ok(match info.elem_type {
        DType::F32 => f32::datum_type(),
        DType::F16 => f16::datum_type(),
        DType::F64 => f64::datum_type(),
        DType::I8 => i8::datum_type(),
        DType::U8 => u8::datum_type(),
        DType::I16 => i16::datum_type(),
        DType::U16 => u16::datum_type(),
        DType::I32 => i32::datum_type(),
        DType::U32 => u32::datum_type(),
        DType::I64 => i64::datum_type(),
        DType::U64 => u64::datum_type(),
        DType::Bool => bool::datum_type(),
        DType::Bf16 => return Err(TractError::msg("bfloat16 inputs are not supported")),
    })
}

/// Input facts for one plan of every shape: fixed dimensions as they are, each named
/// dimension one symbol (a name shared by several inputs is one symbol), each unnamed one a
/// symbol of its own.
pub(crate) fn symbolic_facts(
    inputs: &[TensorInfo],
    symbols: &SymbolScope,
) -> TractResult<Vec<InferenceFact>> {
    inputs
        .iter()
        .map(|info| {
            let dims: TVec<TDim> = info
                .dims
                .iter()
                .enumerate()
                .map(|(axis, d)| match d {
                    Dim::Fixed(v) => TDim::Val(*v),
                    Dim::Symbolic(s) => symbols.sym(s).into(),
                    Dim::Unknown => symbols.sym(&format!("{}_{axis}", info.name)).into(),
                })
                .collect();
            Ok(InferenceFact::dt_shape(datum_type(info)?, dims))
        })
        .collect()
}

/// Whether input shapes agree with [`symbolic_facts`]: the right rank, fixed dimensions as
/// declared, one extent per dimension name across inputs.
pub(crate) fn fits_symbols(inputs: &[TensorInfo], sig: &[Vec<usize>]) -> bool {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (info, shape) in inputs.iter().zip(sig) {
        if shape.len() != info.dims.len() {
            return false;
        }
        for (d, &extent) in info.dims.iter().zip(shape) {
            match d {
                Dim::Fixed(v) if *v != extent as i64 => return false,
                Dim::Symbolic(s) if *seen.entry(s.as_str()).or_insert(extent) != extent => {
                    return false;
                }
                _ => {}
            }
        }
    }
    true
}
