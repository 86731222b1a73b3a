//! Per-tensor method mixing: the tensors whose extremes carry the signal, which Auto's mixed
//! candidates keep at their minmax range (see the module above).

use std::collections::{BTreeMap, BTreeSet};

use crate::prepared::Prepared;

/// Tensors a clipping threshold hurts most: outputs of `Softmax` (attention probabilities,
/// whose few large values carry the signal) and of normalizations (`LayerNormalization`,
/// and `x / sqrt(var + eps)` written out as `Div` by a `Sqrt`, or `Mul` by its `Reciprocal`),
/// followed through the affine `Mul`/`Add` by constants right after.
pub(super) fn range_sensitive(model: &Prepared) -> BTreeSet<String> {
    let g = model.form().graph();
    let producer: BTreeMap<&str, &tract_onnx::pb::NodeProto> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let made_by = |t: &str, ops: &[&str]| {
        producer
            .get(t)
            .is_some_and(|n| ops.contains(&n.op_type.as_str()))
    };
    let constant = |t: &str| g.initializer.iter().any(|i| i.name == t) || made_by(t, &["Constant"]);
    let mut out = BTreeSet::new();
    for n in &g.node {
        let normalized = match n.op_type.as_str() {
            "Softmax" | "LayerNormalization" => true,
            "Div" => n.input.get(1).is_some_and(|d| made_by(d, &["Sqrt"])),
            "Mul" => n.input.iter().any(|d| {
                producer.get(d.as_str()).is_some_and(|r| {
                    r.op_type == "Reciprocal" && r.input.iter().any(|x| made_by(x, &["Sqrt"]))
                })
            }),
            _ => false,
        };
        if normalized && let Some(o) = n.output.first() {
            out.insert(o.clone());
        }
    }
    // The affine part after a normalization (γ·x + β).
    loop {
        let before = out.len();
        for n in &g.node {
            if matches!(n.op_type.as_str(), "Mul" | "Add")
                && n.input.len() == 2
                && n.input.iter().any(|i| out.contains(i))
                && n.input.iter().any(|i| constant(i))
                && let Some(o) = n.output.first()
            {
                out.insert(o.clone());
            }
        }
        if out.len() == before {
            break;
        }
    }
    out
}
