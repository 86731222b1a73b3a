//! A model's protobuf without a second copy of its weights: decoded as the file is read
//! ([`FileBuf`]), written piece by piece ([`Model::write_to`]: the same bytes as `prost`'s
//! `encode_to_vec`, fields in tag order as `prost` writes them, offloaded weights read from
//! their file one tensor at a time) and hashed in parts ([`Model::content_parts`]).

use std::io::Write;
use std::path::Path;

use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use tract_onnx::pb;

use crate::error::Result;
use crate::model::{Model, PROTOBUF_LIMIT, WeightStorage, write_atomic};

impl Model {
    /// Writes the model, with initializers inline or in `<file name>.data` (see
    /// [`WeightStorage`]). Both files are written to temporary names and renamed into place.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) naming the file.
    pub fn save(&self, path: impl AsRef<Path>, storage: WeightStorage) -> Result<()> {
        let path = path.as_ref();
        let threshold = match storage {
            WeightStorage::Inline => None,
            WeightStorage::External { threshold } => Some(threshold),
            WeightStorage::Auto => {
                // Offloaded weights count at their size in memory.
                let offloaded: usize = self
                    .graph()
                    .initializer
                    .iter()
                    .map(|t| self.restored_shell(t).1.saturating_sub(t.raw_data.len()))
                    .sum();
                (self.proto.encoded_len() + offloaded > PROTOBUF_LIMIT).then_some(1024)
            }
        };
        let Some(threshold) = threshold else {
            return crate::files::write_atomic_with(path, |out, tmp| self.write_to(out, tmp));
        };
        if self.offloaded.is_some() {
            return self.with_weights()?.save(path, storage);
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model.onnx".into());
        let data_name = format!("{file_name}.data");
        let mut proto = pb::ModelProto::clone(&self.proto);
        let mut data = Vec::new();
        for tensor in &mut proto
            .graph
            .as_mut()
            .expect("checked at construction")
            .initializer
        {
            if tensor.raw_data.len() < threshold {
                continue;
            }
            // Align each tensor to 64 bytes, as onnx's external-data writer does.
            while data.len() % 64 != 0 {
                data.push(0);
            }
            let offset = data.len();
            data.extend_from_slice(&tensor.raw_data);
            let length = tensor.raw_data.len();
            tensor.raw_data.clear();
            tensor.data_location = Some(1);
            tensor.external_data = vec![
                pb::StringStringEntryProto {
                    key: "location".into(),
                    value: data_name.clone(),
                },
                pb::StringStringEntryProto {
                    key: "offset".into(),
                    value: offset.to_string(),
                },
                pb::StringStringEntryProto {
                    key: "length".into(),
                    value: length.to_string(),
                },
            ];
        }
        write_atomic(&path.with_file_name(&data_name), &data)?;
        write_atomic(path, &proto.encode_to_vec())
    }

    /// Feeds the model's content to `sink` in parts: the model without its initializers'
    /// raw bytes (encoded), then each initializer's raw bytes in order, each part after its
    /// length. What a hash of the model needs, without encoding the whole model at once (a
    /// second copy of the weights); an offloaded model gives the same parts as in memory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when offloaded weights cannot be read.
    pub fn content_parts(&self, sink: &mut dyn FnMut(&[u8])) -> Result<()> {
        let mut shell = crate::offload::shell(&self.proto);
        let graph = shell.graph.get_or_insert_with(Default::default);
        for t in &self.graph().initializer {
            graph.initializer.push(self.restored_shell(t).0);
        }
        let mut part = |bytes: &[u8]| {
            sink(&(bytes.len() as u64).to_le_bytes());
            sink(bytes);
        };
        part(&shell.encode_to_vec());
        for t in &self.graph().initializer {
            part(&self.initializer_bytes(t)?);
        }
        Ok(())
    }

    /// An initializer without its raw bytes as it is in memory (an offloaded one as it was
    /// before offloading), and the length of its raw bytes.
    pub(crate) fn restored_shell(&self, t: &pb::TensorProto) -> (pb::TensorProto, usize) {
        let mut shell = crate::offload::tensor_shell(t);
        if let Some((location, length)) =
            self.offloaded.as_ref().and_then(|o| o.original_location(t))
        {
            shell.data_location = location;
            shell.external_data.clear();
            return (shell, length);
        }
        (shell, t.raw_data.len())
    }

    /// Writes the model's protobuf to `out`: the bytes of [`Model::to_bytes`] of
    /// [`Model::with_weights`], built piece by piece (never the whole encoding in memory; an
    /// offloaded weight read from its file when its turn comes).
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) naming `dest` (what `out` writes to) when `out` fails, or naming the
    /// offloaded weights' file when it cannot be read.
    pub fn write_to(&self, out: &mut dyn std::io::Write, dest: &Path) -> Result<()> {
        write(self, out, dest)
    }
}

/// A file read through a small window, for decoding a protobuf as it is read. A read error
/// ends the input early (the decoder then fails) and is kept for the caller to report.
pub(crate) struct FileBuf<'a> {
    file: &'a mut std::fs::File,
    window: Vec<u8>,
    start: usize,
    end: usize,
    remaining: usize,
    pub(crate) error: Option<std::io::Error>,
}

impl<'a> FileBuf<'a> {
    const WINDOW: usize = 1 << 20;

    pub(crate) fn new(file: &'a mut std::fs::File, len: u64) -> FileBuf<'a> {
        let mut buf = FileBuf {
            file,
            window: vec![0; Self::WINDOW],
            start: 0,
            end: 0,
            remaining: usize::try_from(len).unwrap_or(usize::MAX),
            error: None,
        };
        buf.refill();
        buf
    }

    /// Reads the next window once the current one is used up.
    fn refill(&mut self) {
        while self.start == self.end && self.remaining > 0 {
            let want = self.remaining.min(self.window.len());
            match std::io::Read::read(self.file, &mut self.window[..want]) {
                Ok(0) => {
                    self.error = Some(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file became shorter while it was read",
                    ));
                    self.remaining = 0;
                }
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(e);
                    self.remaining = 0;
                }
            }
        }
    }
}

impl prost::bytes::Buf for FileBuf<'_> {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        &self.window[self.start..self.end]
    }

    fn advance(&mut self, mut cnt: usize) {
        while cnt > 0 && self.remaining > 0 {
            let step = cnt.min(self.end - self.start);
            self.start += step;
            self.remaining -= step;
            cnt -= step;
            self.refill();
        }
    }
}

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
    use std::mem::take;
    let mut tail = crate::offload::without_graph(m);
    let head = pb::ModelProto {
        ir_version: take(&mut tail.ir_version),
        producer_name: take(&mut tail.producer_name),
        producer_version: take(&mut tail.producer_version),
        domain: take(&mut tail.domain),
        model_version: take(&mut tail.model_version),
        doc_string: take(&mut tail.doc_string),
        ..Default::default()
    };
    (head, tail)
}

/// The graph's fields before `initializer` (tags 1–2) and after it (10 and up).
fn split_graph(g: &pb::GraphProto) -> (pb::GraphProto, pb::GraphProto) {
    use std::mem::take;
    let mut tail = crate::offload::graph_shell(g);
    let head = pb::GraphProto {
        node: take(&mut tail.node),
        name: take(&mut tail.name),
        ..Default::default()
    };
    (head, tail)
}

/// A tensor's fields before `raw_data` (tags 1–8) and after it (10 and up).
fn split_tensor(t: &pb::TensorProto) -> (pb::TensorProto, pb::TensorProto) {
    use std::mem::take;
    let mut head = crate::offload::tensor_shell(t);
    let tail = pb::TensorProto {
        doc_string: take(&mut head.doc_string),
        double_data: take(&mut head.double_data),
        uint64_data: take(&mut head.uint64_data),
        data_location: head.data_location.take(),
        external_data: take(&mut head.external_data),
        ..Default::default()
    };
    (head, tail)
}
