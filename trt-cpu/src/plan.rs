//! Concrete tract plans whose intermediate outputs are streamed to an observer.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::model::TensorInfo;

/// A concrete plan whose intermediate outputs are *streamed*: handed to the caller as the
/// node that makes them finishes, then freed by tract as soon as no later node needs them.
/// Selecting them as plan outputs instead would keep every one of them alive until the end
/// of the call (gigabytes for a 1024×1024 segmenter with a hundred observed activations).
#[derive(Debug)]
pub(crate) struct StreamingPlan {
    runnable: Arc<TypedRunnableModel>,
    /// For each output of `runnable`, the indices (in [`CpuModel::output_names`]) it serves:
    /// the graph outputs, then intermediate tensors that cannot be streamed (constants, or
    /// tensors no graph output depends on).
    kept: Vec<Vec<usize>>,
    /// Streamed tensors: node id → (output slot, index in [`CpuModel::output_names`]).
    streamed: HashMap<usize, Vec<(usize, usize)>>,
}

impl StreamingPlan {
    /// Splits the optimised model's outputs (`graph` graph outputs first, then intermediate
    /// tensors) into kept and streamed ones, and builds the plan over the kept ones.
    ///
    /// Graph outputs are kept; an intermediate tensor is streamed when the plan computes it
    /// on its way to another output (its node is an ancestor of another output's node), and
    /// kept otherwise (constants, tensors nothing else asked for depends on).
    pub(crate) fn new(mut typed: TypedModel, graph: usize) -> TractResult<StreamingPlan> {
        use tract_onnx::tract_core::ops::konst::Const;
        let outlets = typed.output_outlets()?.to_vec();
        let graph = graph.min(outlets.len());
        // Nodes the plan's walk evaluates before some output's node: the strict ancestors of
        // every output's node, and the graph outputs' own nodes.
        let mut ancestors: std::collections::HashSet<usize> =
            outlets[..graph].iter().map(|o| o.node).collect();
        let mut stack: Vec<usize> = outlets
            .iter()
            .flat_map(|o| typed.node(o.node).inputs.iter().map(|i| i.node))
            .collect();
        while let Some(n) = stack.pop() {
            if ancestors.insert(n) {
                stack.extend(typed.node(n).inputs.iter().map(|i| i.node));
            }
        }
        let mut kept: Vec<(OutletId, Vec<usize>)> = outlets[..graph]
            .iter()
            .enumerate()
            .map(|(i, o)| (*o, vec![i]))
            .collect();
        let mut streamed: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        for (i, o) in outlets.iter().enumerate().skip(graph) {
            if let Some((_, served)) = kept.iter_mut().find(|(k, _)| k == o) {
                served.push(i);
            } else if !ancestors.contains(&o.node) || typed.node(o.node).op_is::<Const>() {
                // Never evaluated by the plan's walk (constants are seeded, nodes outside
                // the outputs' ancestry are skipped): computed as plan outputs instead.
                kept.push((*o, vec![i]));
            } else {
                streamed.entry(o.node).or_default().push((o.slot, i));
            }
        }
        let kept_outlets: Vec<OutletId> = kept.iter().map(|(o, _)| *o).collect();
        typed.select_output_outlets(&kept_outlets)?;
        Ok(StreamingPlan {
            runnable: typed.into_runnable()?,
            kept: kept.into_iter().map(|(_, served)| served).collect(),
            streamed,
        })
    }

    /// Runs the plan: streamed tensors go to `observe` as they are made; returns the kept
    /// outputs with the indices each serves.
    pub(crate) fn run(
        &self,
        inputs: TVec<TValue>,
        observe: &mut dyn FnMut(usize, &Tensor) -> Result<()>,
    ) -> std::result::Result<Vec<(Vec<usize>, Tensor)>, RunFailure> {
        let mut failure = None;
        let mut state = self.runnable.spawn().map_err(RunFailure::Engine)?;
        let out = state.run_plan_with_eval(inputs, |ctx, op_state, node, inputs| {
            let values = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs)?;
            for &(slot, index) in self.streamed.get(&node.id).into_iter().flatten() {
                if let Err(e) = observe(index, &values[slot]) {
                    failure = Some(e);
                    return Err(TractError::msg("the observer failed"));
                }
            }
            Ok::<_, TractError>(values)
        });
        match (out, failure) {
            (_, Some(e)) => Err(RunFailure::Observer(e)),
            (Err(e), None) => Err(RunFailure::Engine(e)),
            (Ok(values), None) => Ok(self
                .kept
                .iter()
                .cloned()
                .zip(values.into_iter().map(TValue::into_tensor))
                .collect()),
        }
    }
}

/// Why a streamed run stopped: the engine, or the caller's observer.
pub(crate) enum RunFailure {
    Engine(TractError),
    Observer(Error),
}

/// tract's error chain, read for the node it names, turned into an error that says what
/// to do rather than an analysis dump.
pub(crate) fn plan_error(
    name: &str,
    inputs: &[TensorInfo],
    sig: &[Vec<usize>],
    chain: &str,
) -> Error {
    let shapes: Vec<String> = inputs
        .iter()
        .zip(sig)
        .map(|(i, s)| {
            format!(
                "{} {}",
                i.name,
                trt_manifest::shape_text(&s.iter().map(|&d| d as i64).collect::<Vec<_>>())
            )
        })
        .collect();
    let node = node_in_error(chain);
    let cause = chain
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(chain);
    let at = match &node {
        Some((name, op)) => format!("node '{name}' (operator {op})"),
        None => "the graph".to_string(),
    };
    // Only whether it is configured: loading the library just to word a message would
    // cost every caller that handles the failure itself (If folding probes plans).
    let ort = match crate::onnxruntime::configured() {
        Ok(()) => String::new(),
        Err(why) => {
            format!("; onnxruntime, the second engine, would run it but is not available: {why}")
        }
    };
    Error::Inference {
        context: format!("{}: running on {}", name, shapes.join(", ")),
        message: format!("tract cannot run {at}: {cause}{ort}"),
    }
}

/// The innermost `node #N "name" Op` that tract's error chain names, as (name, op).
pub(crate) fn node_in_error(chain: &str) -> Option<(String, String)> {
    let mut found = None;
    let mut rest = chain;
    while let Some(i) = rest.find("node #") {
        rest = &rest[i + 6..];
        let Some(q1) = rest.find('"') else { break };
        let Some(q2) = rest[q1 + 1..].find('"') else {
            break;
        };
        let name = &rest[q1 + 1..q1 + 1 + q2];
        let op: String = rest[q1 + 2 + q2..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        found = Some((name.to_string(), op));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::node_in_error;

    #[test]
    fn innermost_node_of_a_tract_error_chain() {
        let chain = "Failed analyse for node #107 \"/model/decoder/If\" If\n\
                     Caused by: Failed analyse for node #1 \"/model/decoder/Squeeze\" Squeeze13: bad";
        assert_eq!(
            node_in_error(chain),
            Some(("/model/decoder/Squeeze".into(), "Squeeze13".into()))
        );
        assert_eq!(node_in_error("no node here"), None);
    }
}
