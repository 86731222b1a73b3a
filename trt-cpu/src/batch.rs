//! Convolutions over a batch run item by item when tract would otherwise materialise the
//! whole batch's im2col buffer.
//!
//! tract lowers a convolution either to an *eager* im2col (a `k × positions` scratch per
//! batch item, written then read by the matrix product) or to a *lazy* one that gathers the
//! patches as the product needs them and allocates nothing; the lazy form is built for one
//! batch item only (tract 0.23, `should_use_lazy`: "offset tables are built for a single
//! batch"). A batched call to a model with large convolutions therefore holds every item's
//! scratch at once: Basic Pitch's constant-Q convolution over 43,844 audio samples takes
//! ~190 MiB per batch item beyond the first (BENCHMARKS.md). Each item of a convolution is
//! independent of the others by definition, so such a convolution is rewritten as one
//! convolution per item over a slice of the batch, concatenated back: the same arithmetic,
//! nothing assumed about the rest of the model.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::{Slice, TypedConcat};
use tract_onnx::tract_core::ops::cnn::Conv;

/// Batched eager im2col scratch (bytes) from which a convolution is split by item: tract's
/// own threshold for preferring the lazy form of a single item (4 MiB on native targets).
const EAGER_SCRATCH_LIMIT: usize = 4 << 20;

/// Rewrites every convolution of `model` (concrete shapes) whose batched eager im2col
/// scratch would reach [`EAGER_SCRATCH_LIMIT`] as one convolution per batch item. A split
/// convolution packs its kernel once per item, so only those whose kernel is no larger than
/// one item's scratch are split. Returns how many were split.
pub(crate) fn split_batched_convs(model: &mut TypedModel) -> TractResult<usize> {
    let mut split = 0;
    while let Some((id, items)) = next_candidate(model)? {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>().cloned() else {
            break;
        };
        let name = node.name.clone();
        let inputs = node.inputs.clone();
        let mut patch = TypedModelPatch::new("conv-per-batch-item");
        let taps = patch.taps(model, &inputs)?;
        let mut outs = TVec::new();
        for i in 0..items {
            let item = patch.wire_node(
                format!("{name}.batch-item-{i}"),
                Slice::new(0, i, i + 1),
                &[taps[0]],
            )?[0];
            let mut conv_inputs = taps.clone();
            conv_inputs[0] = item;
            outs.push(patch.wire_node(format!("{name}.item-{i}"), conv.clone(), &conv_inputs)?[0]);
        }
        let joined = patch.wire_node(format!("{name}.batch"), TypedConcat::new(0), &outs)?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), joined)?;
        patch.obliterate(id)?;
        patch.apply(model)?;
        split += 1;
    }
    Ok(split)
}

/// The first convolution worth splitting, with its batch size.
fn next_candidate(model: &TypedModel) -> TractResult<Option<(usize, usize)>> {
    for node in model.nodes() {
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        let spec = &conv.pool_spec;
        if !spec.data_format.has_n() || conv.q_params.is_some() {
            continue;
        }
        let depthwise = conv.group > 1
            && conv.group == spec.input_channels
            && conv.group == spec.output_channels;
        let input = model.outlet_fact(node.inputs[0])?;
        let output = model.outlet_fact(OutletId::new(node.id, 0))?;
        let (Some(in_shape), Some(out_shape)) =
            (input.shape.as_concrete(), output.shape.as_concrete())
        else {
            continue;
        };
        let items = in_shape[0];
        if depthwise || items < 2 {
            continue;
        }
        let positions: usize = spec
            .data_format
            .shape(out_shape)?
            .hw_dims()
            .iter()
            .product();
        let k = spec.input_channels * spec.kernel_shape.iter().product::<usize>() / conv.group;
        let item_scratch = k.saturating_mul(positions) * input.datum_type.size_of();
        let kernel = k.saturating_mul(spec.output_channels) * input.datum_type.size_of();
        if item_scratch.saturating_mul(items) >= EAGER_SCRATCH_LIMIT && kernel <= item_scratch {
            return Ok(Some((node.id, items)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::split_batched_convs;
    use crate::infer::{CpuModel, to_f32};
    use crate::model::Model;
    use tract_onnx::pb;
    use tract_onnx::prelude::*;

    const TAPS: usize = 64;
    const CHANNELS: usize = 8;

    /// `y = Relu(Conv(x, w, b))` over `x: [N, 1, L]` with a 64-tap kernel (a 1-D filter
    /// bank like an in-graph spectrogram's).
    fn filter_bank() -> (pb::ModelProto, Vec<f32>, Vec<f32>) {
        let w: Vec<f32> = (0..CHANNELS * TAPS)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 200.0)
            .collect();
        let b: Vec<f32> = (0..CHANNELS).map(|c| c as f32 / 10.0 - 0.3).collect();
        let tensor = |name: &str, dims: &[i64], data: &[f32]| pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 1,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        };
        let value = |name: &str| pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: 1,
                    shape: None,
                })),
                denotation: String::new(),
            }),
            ..Default::default()
        };
        let node = |name: &str, op: &str, inputs: &[&str], attribute| pb::NodeProto {
            name: name.into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.into()],
            attribute,
            ..Default::default()
        };
        let kernel = pb::AttributeProto {
            name: "kernel_shape".into(),
            ints: vec![TAPS as i64],
            r#type: pb::attribute_proto::AttributeType::Ints as i32,
            ..Default::default()
        };
        let proto = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(pb::GraphProto {
                name: "filter_bank".into(),
                node: vec![
                    node("conv", "Conv", &["x", "w", "b"], vec![kernel]),
                    node("y", "Relu", &["conv"], vec![]),
                ],
                initializer: vec![
                    tensor("w", &[CHANNELS as i64, 1, TAPS as i64], &w),
                    tensor("b", &[CHANNELS as i64], &b),
                ],
                input: vec![value("x")],
                output: vec![value("y")],
                ..Default::default()
            }),
            ..Default::default()
        };
        (proto, w, b)
    }

    fn splits(batch: usize, len: usize) -> usize {
        let (proto, _, _) = filter_bank();
        let mut m = tract_onnx::onnx().model_for_proto_model(&proto).unwrap();
        m.set_input_fact(0, f32::fact([batch, 1, len]).into())
            .unwrap();
        let mut typed = m.into_typed().unwrap().into_decluttered().unwrap();
        split_batched_convs(&mut typed).unwrap()
    }

    #[test]
    fn only_batched_convolutions_with_a_large_scratch_are_split() {
        // 64 taps × 19,937 positions × 4 bytes = 5.1 MB of scratch per item.
        assert_eq!(splits(3, 20_000), 1);
        assert_eq!(splits(1, 20_000), 0, "one item: tract goes lazy by itself");
        assert_eq!(splits(3, 200), 0, "a small scratch is cheaper eager");
    }

    #[test]
    fn a_split_batch_computes_each_item_exactly_as_alone() {
        let (proto, w, b) = filter_bank();
        let model = CpuModel::new(&Model::from_proto(proto, "filter_bank").unwrap(), &[]).unwrap();
        let len = 20_000;
        let x: Vec<f32> = (0..3 * len)
            .map(|i| ((i as f32) * 0.001).sin() * (1.0 + (i / len) as f32))
            .collect();
        let batch = Tensor::from_shape(&[3, 1, len], &x).unwrap();
        let y = to_f32(&model.run("batch", vec![("x", batch)]).unwrap()[0]).unwrap();
        let out = len - TAPS + 1;
        assert_eq!(y.len(), 3 * CHANNELS * out);
        for item in 0..3 {
            let alone = Tensor::from_shape(&[1, 1, len], &x[item * len..(item + 1) * len]).unwrap();
            let one = to_f32(&model.run("item", vec![("x", alone)]).unwrap()[0]).unwrap();
            let part = &y[item * CHANNELS * out..(item + 1) * CHANNELS * out];
            assert_eq!(one, part, "item {item} differs from its batch-1 run");
            // Against the definition of the convolution, at a few positions per channel.
            for c in 0..CHANNELS {
                for p in [0, 1, out / 2, out - 1] {
                    let mut acc = b[c] as f64;
                    for t in 0..TAPS {
                        acc += w[c * TAPS + t] as f64 * x[item * len + p + t] as f64;
                    }
                    let want = acc.max(0.0) as f32;
                    let got = part[c * out + p];
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{got} vs {want}"
                    );
                }
            }
        }
    }
}
