//! Writing a model's protobuf piece by piece: the same bytes as `prost`'s `encode_to_vec`
//! (fields in tag order, as `prost` writes them), without building them in memory first (a
//! second copy of the weights), and with offloaded weights read from their file one tensor at
//! a time.

use std::io::Write;
use std::path::Path;

use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use tract_onnx::pb;

use crate::error::Result;
use crate::model::Model;

/// `ModelProto.graph`, `GraphProto.initializer`, `TensorProto.raw_data`.
const MODEL_GRAPH: u32 = 7;
const GRAPH_INITIALIZER: u32 = 5;
const TENSOR_RAW_DATA: u32 = 9;

/// Writes `model` as `model.proto().encode_to_vec()` would (offloaded initializers as they
/// were in memory).
/// I/O errors name `dest`.
pub(crate) fn write(model: &Model, out: &mut dyn Write, dest: &Path) -> Result<()> {
    let put = |out: &mut dyn Write, bytes: &[u8]| {
        out.write_all(bytes)
            .map_err(|e| crate::error::Error::io(dest, e))
    };
    let proto = model.proto();
    let Some(graph) = proto.graph.as_ref() else {
        return put(out, &proto.encode_to_vec());
    };
    // Each initializer as it would be in memory: its shell and its raw bytes' length.
    let mut tensors = Vec::with_capacity(graph.initializer.len());
    for t in &graph.initializer {
        let (shell, raw_len) = model.restored_shell(t);
        tensors.push((shell, raw_len));
    }
    let tensor_len = |(shell, raw_len): &(pb::TensorProto, usize)| {
        shell.encoded_len()
            + if *raw_len > 0 {
                key_len(TENSOR_RAW_DATA) + encoded_len_varint(*raw_len as u64) + raw_len
            } else {
                0
            }
    };
    let (graph_head, graph_tail) = split_graph(graph);
    let graph_len = graph_head.encoded_len()
        + graph_tail.encoded_len()
        + tensors
            .iter()
            .map(|t| {
                let len = tensor_len(t);
                key_len(GRAPH_INITIALIZER) + encoded_len_varint(len as u64) + len
            })
            .sum::<usize>();
    let (model_head, model_tail) = split_model(proto);
    put(out, &model_head.encode_to_vec())?;
    put(out, &delimited_key(MODEL_GRAPH, graph_len))?;
    put(out, &graph_head.encode_to_vec())?;
    for (t, entry) in graph.initializer.iter().zip(&tensors) {
        let (shell, raw_len) = entry;
        put(out, &delimited_key(GRAPH_INITIALIZER, tensor_len(entry)))?;
        let (head, tail) = split_tensor(shell);
        put(out, &head.encode_to_vec())?;
        if *raw_len > 0 {
            put(out, &delimited_key(TENSOR_RAW_DATA, *raw_len))?;
            put(out, &model.initializer_bytes(t)?)?;
        }
        put(out, &tail.encode_to_vec())?;
    }
    put(out, &graph_tail.encode_to_vec())?;
    put(out, &model_tail.encode_to_vec())
}

/// The key of a length-delimited field and the length.
fn delimited_key(tag: u32, len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    encode_key(tag, WireType::LengthDelimited, &mut b);
    encode_varint(len as u64, &mut b);
    b
}

/// The model's fields before `graph` (tags 1–6) and after it (8 and up).
fn split_model(m: &pb::ModelProto) -> (pb::ModelProto, pb::ModelProto) {
    let pb::ModelProto {
        ir_version,
        opset_import,
        producer_name,
        producer_version,
        domain,
        model_version,
        doc_string,
        graph: _,
        metadata_props,
        training_info,
        functions,
    } = m;
    (
        pb::ModelProto {
            ir_version: *ir_version,
            producer_name: producer_name.clone(),
            producer_version: producer_version.clone(),
            domain: domain.clone(),
            model_version: *model_version,
            doc_string: doc_string.clone(),
            ..Default::default()
        },
        pb::ModelProto {
            opset_import: opset_import.clone(),
            metadata_props: metadata_props.clone(),
            training_info: training_info.clone(),
            functions: functions.clone(),
            ..Default::default()
        },
    )
}

/// The graph's fields before `initializer` (tags 1–2) and after it (10 and up).
fn split_graph(g: &pb::GraphProto) -> (pb::GraphProto, pb::GraphProto) {
    let pb::GraphProto {
        node,
        name,
        initializer: _,
        sparse_initializer,
        doc_string,
        input,
        output,
        value_info,
        quantization_annotation,
    } = g;
    (
        pb::GraphProto {
            node: node.clone(),
            name: name.clone(),
            ..Default::default()
        },
        pb::GraphProto {
            sparse_initializer: sparse_initializer.clone(),
            doc_string: doc_string.clone(),
            input: input.clone(),
            output: output.clone(),
            value_info: value_info.clone(),
            quantization_annotation: quantization_annotation.clone(),
            ..Default::default()
        },
    )
}

/// A tensor's fields before `raw_data` (tags 1–8) and after it (10 and up).
fn split_tensor(t: &pb::TensorProto) -> (pb::TensorProto, pb::TensorProto) {
    let pb::TensorProto {
        dims,
        data_type,
        segment,
        float_data,
        int32_data,
        string_data,
        int64_data,
        name,
        doc_string,
        raw_data: _,
        double_data,
        uint64_data,
        data_location,
        external_data,
    } = t;
    (
        pb::TensorProto {
            dims: dims.clone(),
            data_type: *data_type,
            segment: segment.clone(),
            float_data: float_data.clone(),
            int32_data: int32_data.clone(),
            string_data: string_data.clone(),
            int64_data: int64_data.clone(),
            name: name.clone(),
            ..Default::default()
        },
        pb::TensorProto {
            doc_string: doc_string.clone(),
            double_data: double_data.clone(),
            uint64_data: uint64_data.clone(),
            data_location: *data_location,
            external_data: external_data.clone(),
            ..Default::default()
        },
    )
}
