//! Q/DQ placement (which tensors get QuantizeLinear/DequantizeLinear, following TensorRT's
//! rules) and the rewrite that inserts them into the ONNX graph.
//!
//! # Rule set
//!
//! 1. Symmetric INT8: every zero point is 0; activations use `[-128, 127]`, weights
//!    `[-127, 127]`; quantization divides by the scale, rounds half to even and clamps.
//! 2. Inputs of weighted ops (Conv, ConvTranspose, Gemm, MatMul) are quantized: the activation
//!    per tensor, the weight per output channel (axis 0 for Conv and `[N,K]` Gemm weights,
//!    axis 1 for ConvTranspose, `[K,N]` Gemm/MatMul weights). Weights are stored as INT8
//!    initializers followed by a per-axis DequantizeLinear (ModelOpt's `dq_only`).
//! 3. Outputs of weighted ops are not quantized; biases are not quantized.
//! 4. The residual input of an Add fed by a Conv/ConvTranspose is quantized, so TensorRT can
//!    fuse the Add into the convolution.
//! 5. Inputs that feed the same Concat share one scale (TensorRT compares them).
//! 6. GEMV-shaped MatMul/Gemm (a weight with one output column or row) gets no Q/DQ.
//! 7. Data-movement and non-linear ops (Reshape, Slice, Relu, Softmax…) never get Q/DQ.
//! 8. Nodes excluded by name or operator type keep every input in float.
//!
//! One Q/DQ pair per tensor is shared by every consumer that needs it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tract_onnx::pb;

use crate::error::{Error, Result};
use crate::model::{DType, Model};
use crate::observer::{quantize, scale_for};
use crate::prepared::Prepared;

/// What to keep in float.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Exclusions {
    /// Node names kept in float.
    pub nodes: BTreeSet<String>,
    /// Operator types kept in float.
    pub op_types: BTreeSet<String>,
}

impl Exclusions {
    /// Adds a node name or an operator type: a name that matches an operator type known to the
    /// model (e.g. `Conv`) excludes that type, anything else a node name.
    pub fn add(&mut self, model: &Model, name_or_op: &str) {
        if model.graph().node.iter().any(|n| n.op_type == name_or_op) {
            self.op_types.insert(name_or_op.to_string());
        } else {
            self.nodes.insert(name_or_op.to_string());
        }
    }

    fn excludes(&self, node: &pb::NodeProto) -> bool {
        self.nodes.contains(&node.name) || self.op_types.contains(&node.op_type)
    }
}

/// A tensor quantized per tensor with a calibrated scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationPoint {
    /// Tensor name.
    pub tensor: String,
    /// `(node index, input index)` of every consumer rewired to the dequantized tensor.
    pub consumers: Vec<(usize, usize)>,
}

/// A weight initializer quantized per channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightPoint {
    /// Initializer name.
    pub initializer: String,
    /// Output-channel axis.
    pub axis: usize,
    /// `(node index, input index)` of every consumer.
    pub consumers: Vec<(usize, usize)>,
}

/// Where Q/DQ goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Activations, sorted by tensor name.
    pub activations: Vec<ActivationPoint>,
    /// Weights, sorted by initializer name.
    pub weights: Vec<WeightPoint>,
    /// Groups of activation tensors that must share one scale (Concat inputs).
    pub shared: Vec<Vec<String>>,
    /// Nodes left in float and why (exclusions, GEMV, non-float inputs).
    pub skipped: Vec<(String, String)>,
    /// Set when the model cannot be raised to opset 13 (per-axis DequantizeLinear): weights
    /// then get one scale per tensor, and this says why.
    #[serde(default)]
    pub per_tensor_weights: Option<String>,
    /// [`Prepared::form_id`] of the form whose node indices this placement uses.
    #[serde(default)]
    pub form: String,
}

impl Placement {
    /// Tensor names of every activation point.
    pub fn activation_tensors(&self) -> Vec<String> {
        self.activations.iter().map(|a| a.tensor.clone()).collect()
    }
}

fn node_label(node: &pb::NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index} ({})", node.op_type)
    } else {
        node.name.clone()
    }
}

fn attr_i(node: &pb::NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// Decides the placement for a model.
///
/// # Errors
///
/// [`Error::Model`] for weights that are not float32.
///
/// Q/DQ is placed in the prepared form ([`Prepared::form`]: opset 13 where the model is
/// older); where raising is impossible, weights are quantized per tensor and
/// [`Placement::per_tensor_weights`] says why.
pub fn place(prepared: &Prepared, exclusions: &Exclusions) -> Result<Placement> {
    let model = prepared.form();
    // An exclusion that names nothing is a typo that would silently quantize the node.
    let mut unknown: Vec<&String> = exclusions
        .nodes
        .iter()
        .filter(|n| !model.graph().node.iter().any(|node| &node.name == *n))
        .collect();
    unknown.sort();
    if let Some(first) = unknown.first() {
        return Err(Error::options(format!(
            "exclude '{first}' matches no node name and no operator type of model {}",
            model.name()
        )));
    }
    let mut placement = place_in(model, exclusions)?;
    placement.per_tensor_weights = prepared.per_tensor_weights().map(str::to_string);
    placement.form = prepared.form_id().to_string();
    Ok(placement)
}

fn place_in(model: &Model, exclusions: &Exclusions) -> Result<Placement> {
    let graph = model.graph();
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let float_inits = |name: &str| {
        inits
            .get(name)
            .is_some_and(|t| t.data_type == DType::F32.to_onnx())
    };

    let mut acts: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    let mut weights: BTreeMap<String, (usize, Vec<(usize, usize)>)> = BTreeMap::new();
    let mut skipped = Vec::new();

    for (i, node) in graph.node.iter().enumerate() {
        let weighted = matches!(
            node.op_type.as_str(),
            "Conv" | "ConvTranspose" | "Gemm" | "MatMul"
        );
        if !weighted && node.op_type != "Add" {
            continue;
        }
        if exclusions.excludes(node) {
            skipped.push((node_label(node, i), "excluded".to_string()));
            continue;
        }
        match node.op_type.as_str() {
            "Conv" | "ConvTranspose" => {
                let (Some(x), Some(w)) = (node.input.first(), node.input.get(1)) else {
                    continue;
                };
                if inits.contains_key(x.as_str()) {
                    skipped.push((node_label(node, i), "its data input is a constant".into()));
                    continue;
                }
                acts.entry(x.clone()).or_default().push((i, 0));
                if float_inits(w) {
                    let axis = if node.op_type == "Conv" { 0 } else { 1 };
                    weights
                        .entry(w.clone())
                        .or_insert((axis, Vec::new()))
                        .1
                        .push((i, 1));
                } else if !inits.contains_key(w.as_str()) {
                    acts.entry(w.clone()).or_default().push((i, 1));
                }
            }
            "Gemm" | "MatMul" => {
                let (Some(a), Some(b)) = (node.input.first(), node.input.get(1)) else {
                    continue;
                };
                let trans_b = node.op_type == "Gemm" && attr_i(node, "transB") == Some(1);
                // Output channels of B: [K,N] -> axis 1 (N); transposed [N,K] -> axis 0.
                let b_axis = if trans_b { 0 } else { 1 };
                if let Some(w) = inits.get(b.as_str()) {
                    let n = w.dims.get(b_axis).copied().unwrap_or(1);
                    if w.dims.len() < 2 || n == 1 {
                        skipped.push((
                            node_label(node, i),
                            "GEMV-shaped (one output column)".into(),
                        ));
                        continue;
                    }
                }
                if inits.contains_key(a.as_str()) {
                    skipped.push((node_label(node, i), "its data input is a constant".into()));
                    continue;
                }
                acts.entry(a.clone()).or_default().push((i, 0));
                if float_inits(b) && inits[b.as_str()].dims.len() == 2 {
                    weights
                        .entry(b.clone())
                        .or_insert((b_axis, Vec::new()))
                        .1
                        .push((i, 1));
                } else if !inits.contains_key(b.as_str()) {
                    acts.entry(b.clone()).or_default().push((i, 1));
                }
            }
            "Add" => {
                let from_conv = |t: &str| {
                    producer.get(t).is_some_and(|&p| {
                        matches!(graph.node[p].op_type.as_str(), "Conv" | "ConvTranspose")
                    })
                };
                if node.input.len() != 2 {
                    continue;
                }
                for (k, other) in [(1usize, 0usize), (0, 1)] {
                    let (conv_side, residual) = (&node.input[other], &node.input[k]);
                    if from_conv(conv_side)
                        && !from_conv(residual)
                        && !inits.contains_key(residual.as_str())
                    {
                        acts.entry(residual.clone()).or_default().push((i, k));
                        break;
                    }
                }
            }
            _ => {}
        }
    }

    // Concat inputs that are quantized share one scale.
    let mut shared = Vec::new();
    for node in graph.node.iter().filter(|n| n.op_type == "Concat") {
        let group: Vec<String> = node
            .input
            .iter()
            .filter(|t| acts.contains_key(*t))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if group.len() > 1 {
            shared.push(group);
        }
    }

    Ok(Placement {
        activations: acts
            .into_iter()
            .map(|(tensor, consumers)| ActivationPoint { tensor, consumers })
            .collect(),
        weights: weights
            .into_iter()
            .map(|(initializer, (axis, consumers))| WeightPoint {
                initializer,
                axis,
                consumers,
            })
            .collect(),
        shared,
        skipped,
        per_tensor_weights: None,
        form: String::new(),
    })
}

/// Per-channel symmetric quantization of a weight along `axis`: (int8 values, scales).
pub fn quantize_weight(values: &[f32], dims: &[i64], axis: usize) -> (Vec<i8>, Vec<f32>) {
    let channels = dims.get(axis).copied().unwrap_or(1).max(1) as usize;
    let inner: usize = dims.iter().skip(axis + 1).product::<i64>().max(1) as usize;
    let mut amax = vec![0f32; channels];
    for (i, v) in values.iter().enumerate() {
        let c = (i / inner) % channels;
        amax[c] = amax[c].max(v.abs());
    }
    let scales: Vec<f32> = amax.iter().map(|&a| scale_for(a)).collect();
    let q = values
        .iter()
        .enumerate()
        .map(|(i, &v)| quantize(v, scales[(i / inner) % channels], -127))
        .collect();
    (q, scales)
}

fn scalar(name: &str, elem: DType, raw: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        data_type: elem.to_onnx(),
        raw_data: raw,
        ..Default::default()
    }
}

/// Inserts Q/DQ into a copy of the prepared form: activation scales come from `scales`
/// (tensor name → scale), weight scales from the weights themselves.
///
/// # Errors
///
/// [`Error::Options`] when `placement` was made for another form; [`Error::Model`] when an
/// activation point has no scale or a weight is not float32.
pub fn insert(
    prepared: &Prepared,
    placement: &Placement,
    scales: &BTreeMap<String, f32>,
) -> Result<Model> {
    // The placement's node indices refer to one form of one model.
    if placement.form != prepared.form_id() {
        return Err(Error::options(format!(
            "the Q/DQ placement was made for another model (form {}) than {} (form {}); place and insert with the same `Prepared`",
            if placement.form.is_empty() {
                "unknown"
            } else {
                &placement.form
            },
            prepared.original().name(),
            prepared.form_id()
        )));
    }
    let per_tensor = placement.per_tensor_weights.is_some();
    // Shares the form's protobuf until the first change, which copies it once.
    let mut out = prepared.form().clone();
    let name = out.name().to_string();
    let graph = out.graph_mut();
    let mut taken: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| {
            n.output
                .iter()
                .cloned()
                .chain(std::iter::once(n.name.clone()))
        })
        .chain(graph.initializer.iter().map(|t| t.name.clone()))
        .chain(graph.input.iter().map(|v| v.name.clone()))
        .collect();
    let mut unique = |base: String| {
        let mut candidate = base.clone();
        let mut k = 1;
        while taken.contains(&candidate) {
            candidate = format!("{base}_{k}");
            k += 1;
        }
        taken.insert(candidate.clone());
        candidate
    };

    // New nodes to emit after the producer of each tensor (or first, for graph inputs and
    // initializers).
    let mut after: HashMap<String, Vec<pb::NodeProto>> = HashMap::new();
    let mut leading = Vec::new();
    let producers: HashSet<String> = graph.node.iter().flat_map(|n| n.output.clone()).collect();
    let mut new_inits = Vec::new();
    let mut rewires: Vec<(usize, usize, String)> = Vec::new();

    for point in &placement.activations {
        let scale = *scales.get(&point.tensor).ok_or_else(|| {
            Error::model(
                &name,
                format!("no calibrated scale for activation '{}'", point.tensor),
            )
        })?;
        let t = &point.tensor;
        let (s, z, q, dq) = (
            unique(format!("{t}_scale")),
            unique(format!("{t}_zero_point")),
            unique(format!("{t}_quantized")),
            unique(format!("{t}_dequantized")),
        );
        new_inits.push(scalar(&s, DType::F32, scale.to_le_bytes().to_vec()));
        new_inits.push(scalar(&z, DType::I8, vec![0]));
        let nodes = vec![
            pb::NodeProto {
                name: unique(format!("{t}_QuantizeLinear")),
                op_type: "QuantizeLinear".into(),
                input: vec![t.clone(), s.clone(), z.clone()],
                output: vec![q.clone()],
                ..Default::default()
            },
            pb::NodeProto {
                name: unique(format!("{t}_DequantizeLinear")),
                op_type: "DequantizeLinear".into(),
                input: vec![q, s, z],
                output: vec![dq.clone()],
                ..Default::default()
            },
        ];
        if producers.contains(t) {
            after.entry(t.clone()).or_default().extend(nodes)
        } else {
            leading.extend(nodes)
        }
        rewires.extend(point.consumers.iter().map(|&(n, i)| (n, i, dq.clone())));
    }

    for point in &placement.weights {
        let w = graph
            .initializer
            .iter()
            .find(|t| t.name == point.initializer)
            .ok_or_else(|| {
                Error::model(
                    &name,
                    format!("weight '{}' is not an initializer", point.initializer),
                )
            })?;
        // An offloaded form's weights are read from their file, one at a time.
        let values = prepared.form().initializer_f32(w)?.ok_or_else(|| {
            Error::model(
                &name,
                format!("weight '{}' is not float32", point.initializer),
            )
        })?;
        let (q, wscales) = if per_tensor {
            quantize_weight(&values, &[1, values.len() as i64], 0)
        } else {
            quantize_weight(&values, &w.dims, point.axis)
        };
        drop(values);
        let base = &point.initializer;
        let (qn, s, z, dq) = (
            unique(format!("{base}_quantized")),
            unique(format!("{base}_scale")),
            unique(format!("{base}_zero_point")),
            unique(format!("{base}_dequantized")),
        );
        let channels = wscales.len() as i64;
        new_inits.push(pb::TensorProto {
            name: qn.clone(),
            dims: w.dims.clone(),
            data_type: DType::I8.to_onnx(),
            // In place (same size): the quantized weight is not copied.
            raw_data: q.into_iter().map(|v| v as u8).collect(),
            ..Default::default()
        });
        // Per tensor: scalar scale and zero point, no axis.
        let param_dims = if per_tensor { vec![] } else { vec![channels] };
        new_inits.push(pb::TensorProto {
            name: s.clone(),
            dims: param_dims.clone(),
            data_type: DType::F32.to_onnx(),
            raw_data: wscales.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        new_inits.push(pb::TensorProto {
            name: z.clone(),
            dims: param_dims,
            data_type: DType::I8.to_onnx(),
            raw_data: vec![0; channels as usize],
            ..Default::default()
        });
        leading.push(pb::NodeProto {
            name: unique(format!("{base}_DequantizeLinear")),
            op_type: "DequantizeLinear".into(),
            input: vec![qn, s, z],
            output: vec![dq.clone()],
            attribute: if per_tensor {
                Vec::new()
            } else {
                vec![pb::AttributeProto {
                    name: "axis".into(),
                    r#type: 2,
                    i: point.axis as i64,
                    ..Default::default()
                }]
            },
            ..Default::default()
        });
        rewires.extend(point.consumers.iter().map(|&(n, i)| (n, i, dq.clone())));
    }

    for (n, i, tensor) in rewires {
        graph.node[n].input[i] = tensor;
    }
    // Drop float weights nobody reads any more.
    let used: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.clone())
        .chain(leading.iter().flat_map(|n| n.input.clone()))
        .chain(graph.output.iter().map(|o| o.name.clone()))
        .collect();
    graph.initializer.retain(|t| {
        used.contains(&t.name) || !placement.weights.iter().any(|w| w.initializer == t.name)
    });
    graph.initializer.extend(new_inits);

    let mut nodes = leading;
    for node in std::mem::take(&mut graph.node) {
        let outputs = node.output.clone();
        nodes.push(node);
        for o in outputs {
            if let Some(extra) = after.remove(&o) {
                nodes.extend(extra);
            }
        }
    }
    graph.node = nodes;
    Ok(out)
}
