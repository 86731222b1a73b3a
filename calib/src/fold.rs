//! Folding `If` nodes whose condition depends only on tensor shapes that the profiles fix.
//!
//! Exporters that trace Python control flow (`torch.onnx.export` of `x.squeeze(-1) if
//! x.shape[-1] == 1 else x`, state-size checks) leave `If` nodes whose condition is computed
//! from `Shape` of some tensor. TensorRT-RTX 1.7 fails on such graphs (an internal assertion
//! in its scope analysis), and tract cannot type an `If` whose branches differ in rank. When
//! the condition's value is the same at every shape the profiles allow, the `If` is replaced by
//! the branch it always takes, which is what the model computes anyway.
//!
//! A condition qualifies when, walking back from it, every path ends in an initializer, a
//! `Constant` or a `Shape`/`Size` node (values of graph inputs never matter). Its value is
//! computed by running the part of the graph it depends on (tract, or onnxruntime where tract
//! cannot) on zero inputs at each profile's min, opt and max shapes; only a condition with one value at all of them is
//! folded. Folding repeats while it exposes further foldable `If` nodes (nested branches).

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

use crate::data::{HostTensor, Sample, TensorData};
use crate::error::Result;
use crate::infer::CpuModel;
use crate::model::{DType, Dim, Model, TensorInfo};
use crate::profile::Profile;

/// Rounds of folding (each may expose `If` nodes nested in the branches it inlined).
const MAX_ROUNDS: usize = 8;

/// The model with every shape-determined `If` replaced by its branch, and a line per folded
/// node. Returns `None` when nothing was folded.
///
/// # Errors
///
/// [`crate::Error::Cpu`] when neither engine can compute a condition.
pub fn fold_shape_ifs(model: &Model, profiles: &[Profile]) -> Result<Option<(Model, Vec<String>)>> {
    let mut current = model.clone();
    let mut notes = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let candidates = shape_only_conditions(current.graph());
        if candidates.is_empty() {
            break;
        }
        // Conditions computed without going through another `If` first: their part of the
        // graph runs on tract. The others wait for a later round, once the `If`s they read
        // are folded (or, when none qualifies, the whole model computes them).
        let direct: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| ancestors(current.graph(), &current.graph().node[i].input[..1]).is_some())
            .collect();
        let candidates = if direct.is_empty() {
            candidates
        } else {
            direct
        };
        let conds: Vec<String> = candidates
            .iter()
            .map(|&i| current.graph().node[i].input[0].clone())
            .collect();
        let Some(values) = evaluate(&current, profiles, &conds)? else {
            break;
        };
        let mut chosen: Vec<(usize, bool)> = Vec::new();
        for (&node, value) in candidates.iter().zip(values) {
            if let Some(v) = value {
                chosen.push((node, v));
            }
        }
        if chosen.is_empty() {
            break;
        }
        let graph = current.graph_mut();
        let mut taken = names(graph);
        // Replace from the back so earlier indices stay valid.
        chosen.sort_by_key(|c| std::cmp::Reverse(c.0));
        for (index, value) in chosen {
            let node = graph.node.remove(index);
            let branch = if value { "then_branch" } else { "else_branch" };
            notes.push(format!(
                "If node '{}' always takes its {branch} at the declared shapes: replaced by it",
                node.name
            ));
            let inlined = inline(&node, branch, &mut taken);
            for (k, n) in inlined.0.into_iter().enumerate() {
                graph.node.insert(index + k, n);
            }
            graph.initializer.extend(inlined.1);
        }
    }
    if !notes.is_empty() {
        // Inlined branches carry their weights as `Constant` nodes.
        crate::opset::constants_to_initializers(current.graph_mut());
    }
    Ok((!notes.is_empty()).then_some((current, notes)))
}

fn names(g: &pb::GraphProto) -> HashSet<String> {
    let mut out: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    out.extend(g.input.iter().map(|v| v.name.clone()));
    for n in &g.node {
        out.insert(n.name.clone());
        out.extend(n.output.iter().cloned());
        for a in &n.attribute {
            for sub in a.g.iter().chain(&a.graphs) {
                out.extend(names(sub));
            }
        }
    }
    out
}

/// Indices of `If` nodes whose condition is computed from shapes and constants only.
fn shape_only_conditions(g: &pb::GraphProto) -> Vec<usize> {
    let producer: HashMap<&str, &pb::NodeProto> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let constants: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let shape_only = |start: &str| {
        let mut stack = vec![start];
        let mut seen = HashSet::new();
        while let Some(t) = stack.pop() {
            if !seen.insert(t) || constants.contains(t) {
                continue;
            }
            let Some(n) = producer.get(t) else {
                return false; // a graph input's value
            };
            match n.op_type.as_str() {
                "Shape" | "Size" | "Constant" => {}
                "If" | "Loop" | "Scan" => return false,
                _ => stack.extend(n.input.iter().map(String::as_str).filter(|i| !i.is_empty())),
            }
        }
        true
    };
    g.node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "If" && n.domain.is_empty() && shape_only(&n.input[0]))
        .map(|(i, _)| i)
        .collect()
}

/// Values of the conditions at every profile's min/opt/max (`None` where they differ), or
/// `None` when the inputs cannot be shaped from the profiles.
fn evaluate(
    model: &Model,
    profiles: &[Profile],
    conds: &[String],
) -> Result<Option<Vec<Option<bool>>>> {
    let inputs = model.inputs()?;
    let mut shapes: Vec<Vec<(String, Vec<usize>)>> = Vec::new();
    let profiles: Vec<Profile> = if profiles.is_empty() {
        vec![Profile::new()]
    } else {
        profiles.to_vec()
    };
    for p in &profiles {
        for pick in 0..3 {
            let mut call = Vec::new();
            for i in &inputs {
                let shape = match p.inputs.get(&i.name) {
                    Some(r) => [&r.min, &r.opt, &r.max][pick]
                        .iter()
                        .map(|&d| d as usize)
                        .collect(),
                    None => match fixed(i) {
                        Some(s) => s,
                        None => return Ok(None),
                    },
                };
                call.push((i.name.clone(), shape));
            }
            shapes.push(call);
        }
    }
    let pruned = condition_model(model, conds)?;
    let cpu = match &pruned {
        Some(m) => CpuModel::new(m, &[])?,
        None => CpuModel::new(model, conds)?,
    };
    let first = cpu.output_names().len() - conds.len();
    let mut values: Vec<Option<bool>> = Vec::new();
    for (k, call) in shapes.iter().enumerate() {
        let sample = call.iter().fold(
            Sample::new(format!("shape probe {k}")),
            |s, (name, shape)| {
                let info = inputs
                    .iter()
                    .find(|i| &i.name == name)
                    .expect("listed input");
                s.with(name.clone(), zeros(info, shape))
            },
        );
        let out = cpu.run(sample.id(), sample.inputs())?;
        for (j, t) in out[first..].iter().enumerate() {
            let v = t.cast_to::<bool>().ok().and_then(|b| {
                b.to_plain_array_view::<bool>()
                    .ok()
                    .and_then(|v| v.iter().next().copied())
            });
            if k == 0 {
                values.push(v);
            } else if values[j] != v {
                values[j] = None;
            }
        }
    }
    Ok(Some(values))
}

/// The part of the graph that computes `conds`, with them as its outputs: the nodes they
/// depend on (usually a few `Shape`, `Gather`, `Equal`), the initializers those read and every
/// graph input. Running that instead of the whole model needs no weights and avoids the
/// nodes tract cannot type (the `If`s being folded), so no second engine is loaded for it.
/// `None` when a needed node has a subgraph (its outer-scope references are not followed).
fn condition_model(model: &Model, conds: &[String]) -> Result<Option<Model>> {
    let g = model.graph();
    let Some(keep) = ancestors(g, conds) else {
        return Ok(None);
    };
    let nodes: Vec<pb::NodeProto> = g
        .node
        .iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, n)| n.clone())
        .collect();
    // A condition may be an initializer itself: it is read too.
    let read: HashSet<&str> = nodes
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .chain(conds.iter().map(String::as_str))
        .collect();
    let bool_output = |name: &String| pb::ValueInfoProto {
        name: name.clone(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Bool as i32,
                shape: None,
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let initializer: Vec<pb::TensorProto> = g
        .initializer
        .iter()
        .filter(|t| read.contains(t.name.as_str()))
        .cloned()
        .collect();
    // Old models also list initializers as inputs: keep only those still present.
    let dropped: HashSet<&str> = g
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !read.contains(n))
        .collect();
    let graph = pb::GraphProto {
        name: format!("{}: If conditions", g.name),
        node: nodes,
        initializer,
        input: g
            .input
            .iter()
            .filter(|i| !dropped.contains(i.name.as_str()))
            .cloned()
            .collect(),
        output: conds.iter().map(bool_output).collect(),
        ..Default::default()
    };
    let original = model.proto();
    let proto = pb::ModelProto {
        ir_version: original.ir_version,
        opset_import: original.opset_import.clone(),
        graph: Some(graph),
        ..Default::default()
    };
    Model::from_proto(proto, model.name())
        .map(Some)
        .map_err(Into::into)
}

/// Indices of the nodes `tensors` depend on, or `None` when one of them has a subgraph.
fn ancestors(g: &pb::GraphProto, tensors: &[String]) -> Option<HashSet<usize>> {
    let producer: HashMap<&str, usize> = g
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut keep = HashSet::new();
    let mut stack: Vec<&str> = tensors.iter().map(String::as_str).collect();
    while let Some(t) = stack.pop() {
        if let Some(&i) = producer.get(t)
            && keep.insert(i)
        {
            let n = &g.node[i];
            if n.attribute
                .iter()
                .any(|a| a.g.is_some() || !a.graphs.is_empty())
            {
                return None;
            }
            stack.extend(n.input.iter().map(String::as_str).filter(|x| !x.is_empty()));
        }
    }
    Some(keep)
}

fn fixed(i: &TensorInfo) -> Option<Vec<usize>> {
    i.dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(v) if *v >= 0 => Some(*v as usize),
            _ => None,
        })
        .collect()
}

fn zeros(info: &TensorInfo, shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    let data = match info.elem_type {
        DType::F32 => TensorData::F32(vec![0.0; n]),
        DType::F16 => TensorData::F16(vec![half::f16::ZERO; n]),
        DType::F64 => TensorData::F64(vec![0.0; n]),
        DType::I8 => TensorData::I8(vec![0; n]),
        DType::U8 => TensorData::U8(vec![0; n]),
        DType::I16 => TensorData::I16(vec![0; n]),
        DType::U16 => TensorData::U16(vec![0; n]),
        DType::I32 => TensorData::I32(vec![0; n]),
        DType::U32 => TensorData::U32(vec![0; n]),
        DType::I64 => TensorData::I64(vec![0; n]),
        DType::U64 => TensorData::U64(vec![0; n]),
        DType::Bool | DType::Bf16 => TensorData::Bool(vec![false; n]),
    };
    HostTensor::new(shape.to_vec(), data)
}

/// The branch's nodes and initializers with every name it defines made unique, its outputs
/// connected to the `If` node's outputs by `Identity` nodes.
fn inline(
    node: &pb::NodeProto,
    branch: &str,
    taken: &mut HashSet<String>,
) -> (Vec<pb::NodeProto>, Vec<pb::TensorProto>) {
    let g = node
        .attribute
        .iter()
        .find(|a| a.name == branch)
        .and_then(|a| a.g.clone())
        .unwrap_or_default();
    let mut rename: HashMap<String, String> = HashMap::new();
    let fresh = |name: &str, taken: &mut HashSet<String>| {
        let base = format!("{}/{branch}/{name}", node.name);
        let mut candidate = base.clone();
        let mut k = 1;
        while !taken.insert(candidate.clone()) {
            candidate = format!("{base}_{k}");
            k += 1;
        }
        candidate
    };
    for t in &g.initializer {
        let n = fresh(&t.name, taken);
        rename.insert(t.name.clone(), n);
    }
    for n in &g.node {
        for o in &n.output {
            if !o.is_empty() {
                let r = fresh(o, taken);
                rename.insert(o.clone(), r);
            }
        }
    }
    let mut nodes: Vec<pb::NodeProto> = g
        .node
        .iter()
        .map(|n| {
            let mut n = n.clone();
            n.name = fresh(
                if n.name.is_empty() {
                    &n.op_type
                } else {
                    &n.name
                },
                taken,
            );
            rename_refs(&mut n, &rename);
            n.output = n
                .output
                .iter()
                .map(|o| rename.get(o).cloned().unwrap_or_else(|| o.clone()))
                .collect();
            n
        })
        .collect();
    let inits = g
        .initializer
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.name = rename[&t.name].clone();
            t
        })
        .collect();
    for (out, target) in g.output.iter().zip(&node.output) {
        let source = rename
            .get(&out.name)
            .cloned()
            .unwrap_or_else(|| out.name.clone());
        nodes.push(pb::NodeProto {
            name: fresh("output", taken),
            op_type: "Identity".into(),
            input: vec![source],
            output: vec![target.clone()],
            ..Default::default()
        });
    }
    (nodes, inits)
}

/// Renames references (inputs, and inputs of nested subgraphs that are not shadowed there).
fn rename_refs(n: &mut pb::NodeProto, rename: &HashMap<String, String>) {
    for i in &mut n.input {
        if let Some(r) = rename.get(i) {
            *i = r.clone();
        }
    }
    for a in &mut n.attribute {
        for sub in a.g.iter_mut().chain(a.graphs.iter_mut()) {
            let local: HashSet<String> = sub
                .node
                .iter()
                .flat_map(|m| m.output.iter().cloned())
                .chain(sub.initializer.iter().map(|t| t.name.clone()))
                .chain(sub.input.iter().map(|v| v.name.clone()))
                .collect();
            let outer: HashMap<String, String> = rename
                .iter()
                .filter(|(k, _)| !local.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for m in &mut sub.node {
                rename_refs(m, &outer);
            }
            for o in &mut sub.output {
                if let Some(r) = outer.get(&o.name) {
                    o.name = r.clone();
                }
            }
        }
    }
}

/// The model with graph inputs replaced by constant initializers (a sample rate, a mode flag
/// the deployment never changes), so `If` nodes that test them can be folded. Values must
/// have the input's element type.
///
/// # Errors
///
/// [`crate::Error::Model`] naming an input the model does not have, or a value of another
/// element type or rank.
pub fn bind_inputs(model: &Model, values: &[(String, HostTensor)]) -> Result<Model> {
    let inputs = model.inputs()?;
    let mut out = model.clone();
    for (i, (name, value)) in values.iter().enumerate() {
        if values[..i].iter().any(|(other, _)| other == name) {
            return Err(crate::Error::Model {
                model: model.name().into(),
                message: format!(
                    "constant input '{name}' is bound twice; give each input one value"
                ),
            });
        }
        let Some(info) = inputs.iter().find(|i| &i.name == name) else {
            let known: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(crate::Error::Model {
                model: model.name().into(),
                message: format!(
                    "constant input '{name}' is not an input (inputs: {})",
                    known.join(", ")
                ),
            });
        };
        if info.elem_type != value.elem_type() || info.dims.len() != value.shape().len() {
            return Err(crate::Error::Model {
                model: model.name().into(),
                message: format!(
                    "constant input '{name}' is {} {:?} but the model declares {} {}",
                    value.elem_type(),
                    value.shape(),
                    info.elem_type,
                    info.shape_string()
                ),
            });
        }
        let g = out.graph_mut();
        g.input.retain(|v| &v.name != name);
        g.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: value.shape().iter().map(|&d| d as i64).collect(),
            data_type: value.elem_type().to_onnx(),
            raw_data: value.to_le_bytes(),
            ..Default::default()
        });
    }
    Ok(out)
}

/// Parses `NAME=VALUE` into a scalar of the named input's element type.
///
/// # Errors
///
/// [`crate::Error::Options`] for text that is not `NAME=number`, a name that is not an
/// input, or a value that does not parse as the input's type.
pub fn parse_constant(model: &Model, spec: &str) -> Result<(String, HostTensor)> {
    let bad = |why: String| crate::Error::Options {
        message: format!("constant '{spec}': {why}"),
    };
    let (name, value) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=VALUE, e.g. sr=16000".into()))?;
    let inputs = model.inputs()?;
    let info = inputs
        .iter()
        .find(|i| i.name == name)
        .ok_or_else(|| bad(format!("'{name}' is not an input of the model")))?;
    let shape = vec![1; info.dims.len()];
    let int = || value.trim().parse::<i64>().map_err(|e| bad(e.to_string()));
    let float = || {
        let v = value
            .trim()
            .parse::<f64>()
            .map_err(|e| bad(e.to_string()))?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(bad(format!("{v} is not a finite number")))
        }
    };
    let n: usize = 1;
    let data = match info.elem_type {
        DType::F32 => {
            let v = float()?;
            if v.abs() > f32::MAX as f64 {
                return Err(bad(format!("{v} is out of float32's range")));
            }
            TensorData::F32(vec![v as f32; n])
        }
        DType::F64 => TensorData::F64(vec![float()?; n]),
        DType::I64 => TensorData::I64(vec![int()?; n]),
        DType::I32 => {
            let v = int()?;
            let v = i32::try_from(v).map_err(|_| {
                bad(format!(
                    "{v} is out of int32's range (input '{name}' is int32)"
                ))
            })?;
            TensorData::I32(vec![v; n])
        }
        DType::Bool => match int()? {
            0 => TensorData::Bool(vec![false; n]),
            1 => TensorData::Bool(vec![true; n]),
            v => return Err(bad(format!("{v} is not a bool (0 or 1)"))),
        },
        other => return Err(bad(format!("inputs of type {other} cannot be bound"))),
    };
    Ok((name.to_string(), HostTensor::new(shape, data)))
}
