//! Raising an opset-11/12 model to opset 13, which per-channel (per-axis) DequantizeLinear
//! needs.
//!
//! Between opsets 11 and 13 most operator revisions only add element types. The ones whose
//! form or meaning changed are rewritten here, in the main graph and in every subgraph:
//!
//! | operator | opset ≤ 12 | opset 13 | rewrite |
//! |---|---|---|---|
//! | `Squeeze`, `Unsqueeze`, `ReduceSum` | `axes` attribute | `axes` input | attribute → int64 initializer |
//! | `Split` | `split` attribute | `split` input | attribute → int64 initializer |
//! | `Softmax`, `LogSoftmax`, `Hardmax` | coerce to 2-D at `axis` (default 1) | one `axis` (default −1) | `axis = −1` unchanged (same meaning); otherwise `Flatten(axis)` → op(axis 1) → `Reshape` to the input's shape, exactly the old meaning |
//! | `Dropout` | `ratio` attribute (opset 10–11) | `ratio` input | attribute dropped: inference ignores it |
//!
//! An operator of the default domain that opset 13 does not define (`Scatter`, `Upsample`) makes
//! [`raise_to_13`] refuse with its name; the caller then quantizes weights per tensor, which
//! every opset supports.

use std::collections::HashSet;

use tract_onnx::pb;

use crate::model::Model;

/// Operators of the default domain removed before opset 13.
const REMOVED: &[&str] = &["Scatter", "Upsample"];

/// Whether a node is in the default ONNX domain.
fn default_domain(node: &pb::NodeProto) -> bool {
    node.domain.is_empty() || node.domain == "ai.onnx"
}

/// Returns the model at opset 13 (unchanged when already there), or why it cannot be raised.
///
/// # Errors
///
/// A sentence naming the node and operator that has no opset-13 form.
pub fn raise_to_13(model: &Model) -> Result<Model, String> {
    if model.opset() >= 13 {
        return Ok(model.clone());
    }
    let mut out = model.clone();
    let proto = out.proto_mut();
    let mut names: HashSet<String> = HashSet::new();
    collect_names(
        proto.graph.as_ref().expect("a model has a graph"),
        &mut names,
    );
    let mut fresh = Fresh { names, next: 0 };
    rewrite_graph(
        proto.graph.as_mut().expect("a model has a graph"),
        &mut fresh,
    )?;
    for o in &mut proto.opset_import {
        if o.domain.is_empty() || o.domain == "ai.onnx" {
            o.version = 13;
        }
    }
    if proto.ir_version < 7 {
        proto.ir_version = 7;
    }
    Ok(out)
}

struct Fresh {
    names: HashSet<String>,
    next: usize,
}

impl Fresh {
    fn name(&mut self, hint: &str) -> String {
        loop {
            self.next += 1;
            let n = format!("{hint}__opset13_{}", self.next);
            if self.names.insert(n.clone()) {
                return n;
            }
        }
    }
}

fn collect_names(g: &pb::GraphProto, names: &mut HashSet<String>) {
    for n in &g.node {
        names.insert(n.name.clone());
        names.extend(n.output.iter().cloned());
        for a in &n.attribute {
            for sub in a.g.iter().chain(&a.graphs) {
                collect_names(sub, names);
            }
        }
    }
    names.extend(g.initializer.iter().map(|t| t.name.clone()));
    names.extend(g.input.iter().map(|t| t.name.clone()));
}

fn ints_initializer(name: String, values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name,
        dims: vec![values.len() as i64],
        data_type: 7,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn take_attr(node: &mut pb::NodeProto, name: &str) -> Option<pb::AttributeProto> {
    let i = node.attribute.iter().position(|a| a.name == name)?;
    Some(node.attribute.remove(i))
}

fn rewrite_graph(g: &mut pb::GraphProto, fresh: &mut Fresh) -> Result<(), String> {
    let mut nodes = Vec::with_capacity(g.node.len());
    for mut node in std::mem::take(&mut g.node) {
        for a in &mut node.attribute {
            for sub in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                rewrite_graph(sub, fresh)?;
            }
        }
        if !default_domain(&node) {
            nodes.push(node);
            continue;
        }
        let label = || format!("node '{}' ({})", node.name, node.op_type);
        match node.op_type.as_str() {
            op if REMOVED.contains(&op) => {
                return Err(format!(
                    "{} has no opset-13 form (the operator was removed)",
                    label()
                ));
            }
            "Squeeze" | "Unsqueeze" | "ReduceSum" | "Split" => {
                let key = if node.op_type == "Split" {
                    "split"
                } else {
                    "axes"
                };
                if let Some(attr) = take_attr(&mut node, key) {
                    let name = fresh.name(&format!("{}_{key}", node.name));
                    g.initializer
                        .push(ints_initializer(name.clone(), &attr.ints));
                    // The optional input sits right after the data input.
                    node.input.truncate(1);
                    node.input.push(name);
                }
                nodes.push(node);
            }
            "Softmax" | "LogSoftmax" | "Hardmax" => {
                let axis = node
                    .attribute
                    .iter()
                    .find(|a| a.name == "axis")
                    .map_or(1, |a| a.i);
                if axis == -1 {
                    nodes.push(node);
                    continue;
                }
                // Old meaning: flatten to 2-D at `axis`, normalise each row, restore the shape.
                let (Some(x), Some(y)) =
                    (node.input.first().cloned(), node.output.first().cloned())
                else {
                    return Err(format!("{} needs one input and one output", label()));
                };
                let (flat, shape, inner) = (
                    fresh.name(&format!("{}_flat", node.name)),
                    fresh.name(&format!("{}_shape", node.name)),
                    fresh.name(&format!("{}_rows", node.name)),
                );
                nodes.push(pb::NodeProto {
                    name: fresh.name(&format!("{}_Flatten", node.name)),
                    op_type: "Flatten".into(),
                    input: vec![x.clone()],
                    output: vec![flat.clone()],
                    attribute: vec![pb::AttributeProto {
                        name: "axis".into(),
                        r#type: 2,
                        i: axis,
                        ..Default::default()
                    }],
                    ..Default::default()
                });
                nodes.push(pb::NodeProto {
                    name: fresh.name(&format!("{}_Shape", node.name)),
                    op_type: "Shape".into(),
                    input: vec![x],
                    output: vec![shape.clone()],
                    ..Default::default()
                });
                node.attribute.retain(|a| a.name != "axis");
                node.attribute.push(pb::AttributeProto {
                    name: "axis".into(),
                    r#type: 2,
                    i: 1,
                    ..Default::default()
                });
                node.input = vec![flat];
                node.output = vec![inner.clone()];
                let reshape_name = fresh.name(&format!("{}_Reshape", node.name));
                nodes.push(node);
                nodes.push(pb::NodeProto {
                    name: reshape_name,
                    op_type: "Reshape".into(),
                    input: vec![inner, shape],
                    output: vec![y],
                    ..Default::default()
                });
            }
            "Dropout" => {
                take_attr(&mut node, "ratio");
                nodes.push(node);
            }
            _ => nodes.push(node),
        }
    }
    g.node = nodes;
    Ok(())
}

/// Turns main-graph `Constant` nodes that hold a tensor into initializers of the same name, so
/// that weights exported as `Constant` nodes (PaddlePaddle's exporter does this for every conv)
/// are quantized per channel like any other weight. Returns how many were converted.
pub fn constants_to_initializers(g: &mut pb::GraphProto) -> usize {
    let mut kept = Vec::with_capacity(g.node.len());
    let mut converted = 0;
    for n in std::mem::take(&mut g.node) {
        let value = (n.op_type == "Constant" && default_domain(&n) && n.output.len() == 1)
            .then(|| {
                n.attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.clone())
            })
            .flatten();
        match value {
            Some(mut t) => {
                t.name = n.output[0].clone();
                g.initializer.push(t);
                converted += 1;
            }
            None => kept.push(n),
        }
    }
    g.node = kept;
    converted
}

/// The model Q/DQ is placed in: `model` itself at opset ≥ 13 without `Constant` weights, else
/// its opset-13 form with `Constant` nodes turned into initializers; when raising the opset
/// is impossible, the model without raising plus the reason, and weights are then quantized
/// per tensor (one scale per weight, which every opset's DequantizeLinear supports).
pub fn for_qdq(model: &Model) -> (std::borrow::Cow<'_, Model>, Option<String>) {
    let has_constants = model
        .graph()
        .node
        .iter()
        .any(|n| n.op_type == "Constant" && default_domain(n));
    let normalized = |mut m: Model| {
        constants_to_initializers(m.graph_mut());
        m
    };
    if model.opset() >= 13 {
        return if has_constants {
            (std::borrow::Cow::Owned(normalized(model.clone())), None)
        } else {
            (std::borrow::Cow::Borrowed(model), None)
        };
    }
    match raise_to_13(model) {
        Ok(raised) => (std::borrow::Cow::Owned(normalized(raised)), None),
        Err(why) => (
            std::borrow::Cow::Owned(normalized(model.clone())),
            Some(format!(
                "model {} stays at opset {} because {why}; weights get one scale per tensor instead of per output channel (less accurate)",
                model.name(),
                model.opset()
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        ints: Option<(&str, Vec<i64>)>,
    ) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: ints
                .map(|(n, v)| pb::AttributeProto {
                    name: n.into(),
                    r#type: 7,
                    ints: v,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    fn model(opset: i64, nodes: Vec<pb::NodeProto>) -> Model {
        let proto = pb::ModelProto {
            ir_version: 6,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            graph: Some(pb::GraphProto {
                node: nodes,
                ..Default::default()
            }),
            ..Default::default()
        };
        Model::from_proto(proto, "m").unwrap()
    }

    #[test]
    fn attributes_become_inputs_and_softmax_keeps_its_old_meaning() {
        let m = model(
            11,
            vec![
                node("Unsqueeze", "u", &["x"], &["a"], Some(("axes", vec![0, 2]))),
                node(
                    "Split",
                    "s",
                    &["a"],
                    &["b", "c"],
                    Some(("split", vec![1, 2])),
                ),
                node("Softmax", "sm", &["b"], &["y"], None),
                node(
                    "Softmax",
                    "last",
                    &["c"],
                    &["z"],
                    Some(("axes_unused", vec![])),
                ),
            ],
        );
        let r = raise_to_13(&m).unwrap();
        assert_eq!(r.opset(), 13);
        let g = r.graph();
        let u = &g.node[0];
        assert!(u.attribute.is_empty());
        assert_eq!(u.input.len(), 2);
        let axes = g.initializer.iter().find(|t| t.name == u.input[1]).unwrap();
        assert_eq!(axes.dims, vec![2]);
        assert_eq!(axes.raw_data.len(), 16);
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        // Softmax with the default axis 1: Flatten, Shape, Softmax(axis 1), Reshape to y.
        assert_eq!(&ops[2..6], &["Flatten", "Shape", "Softmax", "Reshape"]);
        assert_eq!(g.node[5].output, vec!["y".to_string()]);
        assert!(
            g.node[4]
                .attribute
                .iter()
                .any(|a| a.name == "axis" && a.i == 1)
        );
    }

    /// Found by `tests/tests/fuzz.rs` (a node mutated into a `Softmax` without inputs).
    #[test]
    fn a_softmax_without_input_is_an_error_not_a_panic() {
        let m = model(11, vec![node("Softmax", "sm", &[], &["y"], None)]);
        let e = raise_to_13(&m).unwrap_err();
        assert!(e.contains("'sm' (Softmax) needs one input"), "{e}");
    }

    #[test]
    fn removed_operators_refuse_with_their_name_and_per_tensor_is_the_fallback() {
        let m = model(
            11,
            vec![node("Scatter", "sc", &["x", "i", "u"], &["y"], None)],
        );
        let e = raise_to_13(&m).unwrap_err();
        assert!(e.contains("'sc' (Scatter)"), "{e}");
        let (kept, why) = for_qdq(&m);
        assert_eq!(kept.opset(), 11);
        assert!(why.unwrap().contains("one scale per tensor"));
    }
}
