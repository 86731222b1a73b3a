//! Reading and writing ONNX models (the `prost` types `tract-onnx` exposes), external data,
//! and listing a model's inputs and outputs with symbolic dimensions kept symbolic.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use serde::{Deserialize, Serialize};
use tract_onnx::pb;

use crate::error::{Error, Result};
use crate::files::confined;
pub use crate::files::{folder_of, open_regular, replaceable, write_atomic};
use crate::offload::Offloaded;
pub use trt_manifest::DType;

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed extent.
    Fixed(i64),
    /// A named symbolic extent (`N`, `batch`…).
    Symbolic(String),
    /// Unnamed and unknown.
    Unknown,
}

impl Dim {
    /// The fixed extent, if any.
    pub fn fixed(&self) -> Option<i64> {
        match self {
            Dim::Fixed(v) => Some(*v),
            _ => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Symbolic(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// Name, element type and declared shape of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub elem_type: DType,
    /// Declared shape.
    pub dims: Vec<Dim>,
}

impl TensorInfo {
    /// The tensor in the manifest's terms (dims `-1` where not fixed), for the shared
    /// validator and the manifest.
    pub fn spec(&self, mode: trt_manifest::Mode) -> trt_manifest::TensorSpec {
        trt_manifest::TensorSpec {
            name: self.name.clone(),
            mode,
            dtype: self.elem_type,
            dims: self.dims.iter().map(|d| d.fixed().unwrap_or(-1)).collect(),
        }
    }

    /// Whether any dimension is not fixed.
    pub fn is_dynamic(&self) -> bool {
        self.dims.iter().any(|d| d.fixed().is_none())
    }

    /// The shape as text, e.g. `[N, 3, 224, 224]`.
    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(ToString::to_string).collect();
        format!("[{}]", dims.join(", "))
    }
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {}",
            self.name,
            self.elem_type,
            self.shape_string()
        )
    }
}

/// How [`Model::save`] stores initializers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightStorage {
    /// Inline when the model fits protobuf's 2 GiB limit, external otherwise.
    #[default]
    Auto,
    /// Always inline.
    Inline,
    /// Initializers of at least `threshold` bytes go to `<file name>.data` next to the model.
    External {
        /// Minimum size in bytes of an initializer written externally.
        threshold: usize,
    },
}

const PROTOBUF_LIMIT: usize = (2 << 30) - 1;

/// Whether a dimension name is a real symbol rather than a placeholder (`?`, an expression).
pub fn is_symbol(p: &str) -> bool {
    !p.is_empty()
        && p != "?"
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
}

/// An ONNX model in memory, with external data already read in.
///
/// Cloning is cheap: clones share the protobuf (weights included) until one is changed
/// (copy on write), so an engine can keep the model it was made from without a second copy
/// of the weights.
#[derive(Debug, Clone)]
pub struct Model {
    proto: Arc<pb::ModelProto>,
    name: String,
    path: Option<PathBuf>,
    external_files: Vec<PathBuf>,
    /// Where the initializers moved out of memory are ([`Model::offload_weights`]).
    offloaded: Option<Arc<Offloaded>>,
}

impl Model {
    /// Reads an ONNX file and every external data file it refers to.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the model or data file; [`Error::Decode`] for invalid protobuf;
    /// [`Error::Model`] for a missing graph, an external-data reference outside its file or
    /// outside the model's folder, or a graph that fails [`crate::check::check`].
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let mut file = open_regular(path)?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len > PROTOBUF_LIMIT as u64 {
            return Err(Error::model(
                path.display().to_string(),
                format!(
                    "the file is {len} bytes but an ONNX protobuf is at most {PROTOBUF_LIMIT} bytes (larger weights belong in external data)"
                ),
            ));
        }
        // Decoded as it is read: the file's bytes are never all in memory next to the
        // decoded model (twice the weights at once).
        let mut reader = FileBuf::new(&mut file, len);
        let decoded = Self::decode(&mut reader, path);
        if let Some(e) = reader.error.take() {
            return Err(Error::io(path, e));
        }
        let mut model = decoded?;
        model.name = path.display().to_string();
        model.path = Some(path.to_path_buf());
        let dir = folder_of(path).to_path_buf();
        model.resolve_external(&dir)?;
        crate::check::check(&model)?;
        Ok(model)
    }

    /// Decodes ONNX bytes (without external data).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for invalid protobuf; [`Error::Model`] without a graph.
    pub fn from_bytes(bytes: &[u8], name: impl Into<String>) -> Result<Model> {
        let name = name.into();
        let mut model = Self::decode(bytes, Path::new(&name))?;
        model.name = name;
        crate::check::check(&model)?;
        Ok(model)
    }

    /// Wraps a protobuf model.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] without a graph.
    pub fn from_proto(proto: pb::ModelProto, name: impl Into<String>) -> Result<Model> {
        let name = name.into();
        if proto.graph.is_none() {
            return Err(Error::model(name, "has no graph"));
        }
        Ok(Model {
            proto: Arc::new(proto),
            name,
            path: None,
            external_files: Vec::new(),
            offloaded: None,
        })
    }

    fn decode(bytes: impl prost::bytes::Buf, path: &Path) -> Result<Model> {
        let proto = pb::ModelProto::decode(bytes).map_err(|e| Error::Decode {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if proto.graph.is_none() {
            return Err(Error::Decode {
                path: path.to_path_buf(),
                message: "the model has no graph".into(),
            });
        }
        Ok(Model {
            proto: Arc::new(proto),
            name: path.display().to_string(),
            path: None,
            external_files: Vec::new(),
            offloaded: None,
        })
    }

    fn resolve_external(&mut self, dir: &Path) -> Result<()> {
        let name = self.name.clone();
        use std::io::{Read, Seek};
        let mut files = Vec::new();
        let mut opened: std::collections::HashMap<PathBuf, (std::fs::File, u64)> =
            std::collections::HashMap::new();
        for tensor in &mut self.graph_mut().initializer {
            if tensor.data_location != Some(1) {
                continue;
            }
            let field = |key: &str| {
                tensor
                    .external_data
                    .iter()
                    .find(|e| e.key == key)
                    .map(|e| e.value.clone())
            };
            let location = field("location").ok_or_else(|| {
                Error::model(
                    &name,
                    format!(
                        "initializer '{}' is external but has no location",
                        tensor.name
                    ),
                )
            })?;
            // A present but malformed offset or length (`0x40`, `-64`, past usize) is refused:
            // reading it as 0 would take the weights from the wrong bytes.
            let number = |key: &str| -> Result<Option<usize>> {
                field(key)
                    .map(|v| {
                        v.trim().parse::<usize>().map_err(|_| {
                            Error::model(
                                &name,
                                format!(
                                    "initializer '{}' has external data {key} '{v}', which is not a whole number of bytes (decimal, at most {})",
                                    tensor.name,
                                    usize::MAX
                                ),
                            )
                        })
                    })
                    .transpose()
            };
            let offset = number("offset")?.unwrap_or(0);
            let given_length = number("length")?;
            let file = confined(dir, &location).map_err(|why| {
                Error::model(
                    &name,
                    format!(
                        "initializer '{}' has external data at '{location}', {why}; external data must stay inside the model's folder {}",
                        tensor.name,
                        dir.display()
                    ),
                )
            })?;
            // Each file is opened once and only each tensor's own bytes are read (reading the
            // whole file per tensor made a 176 MB model read 40 GB).
            // A file that cannot be read is reported with the initializer that names it.
            let unreadable = |e: Error| {
                Error::model(
                    &name,
                    format!(
                        "initializer '{}' has external data at '{location}' that cannot be read: {e}",
                        tensor.name
                    ),
                )
            };
            if !opened.contains_key(&file) {
                let f = open_regular(&file).map_err(unreadable)?;
                let len = f
                    .metadata()
                    .map_err(|e| unreadable(Error::io(&file, e)))?
                    .len();
                opened.insert(file.clone(), (f, len));
                files.push(file.clone());
            }
            let (f, len) = opened.get_mut(&file).expect("opened above");
            let len = usize::try_from(*len).unwrap_or(usize::MAX);
            let length: usize = given_length.unwrap_or(len.saturating_sub(offset));
            // The bytes the tensor's type and dims need, when they are known: a length that
            // disagrees is refused before anything is allocated.
            if let Some(expected) = tensor_bytes(tensor)
                && expected != length
            {
                return Err(Error::model(
                    &name,
                    format!(
                        "initializer '{}' is {:?} of type {} ({expected} bytes) but its external data in {} is {length} bytes",
                        tensor.name,
                        tensor.dims,
                        tensor.data_type,
                        file.display()
                    ),
                ));
            }
            offset
                .checked_add(length)
                .filter(|&end| end <= len)
                .ok_or_else(|| {
                    Error::model(
                        &name,
                        format!(
                            "initializer '{}' wants bytes {offset}..{} of {} which has {len} bytes",
                            tensor.name,
                            offset.saturating_add(length),
                            file.display(),
                        ),
                    )
                })?;
            let mut data = Vec::new();
            data.try_reserve_exact(length).map_err(|e| {
                Error::model(
                    &name,
                    format!(
                        "initializer '{}': {length} bytes of external data cannot be allocated ({e})",
                        tensor.name
                    ),
                )
            })?;
            data.resize(length, 0);
            f.seek(std::io::SeekFrom::Start(offset as u64))
                .and_then(|_| f.read_exact(&mut data))
                .map_err(|e| unreadable(Error::io(&file, e)))?;
            tensor.raw_data = data;
            tensor.external_data.clear();
            tensor.data_location = None;
        }
        self.external_files = files;
        Ok(())
    }

    /// The model's display name (path or given name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path it was loaded from.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// External data files read by [`Model::load`].
    pub fn external_files(&self) -> &[PathBuf] {
        &self.external_files
    }

    /// The protobuf.
    pub fn proto(&self) -> &pb::ModelProto {
        &self.proto
    }

    /// The protobuf, mutably (copied first if a clone of this model shares it).
    pub fn proto_mut(&mut self) -> &mut pb::ModelProto {
        Arc::make_mut(&mut self.proto)
    }

    /// The graph.
    pub fn graph(&self) -> &pb::GraphProto {
        self.proto.graph.as_ref().expect("checked at construction")
    }

    /// The graph, mutably.
    pub fn graph_mut(&mut self) -> &mut pb::GraphProto {
        self.proto_mut()
            .graph
            .as_mut()
            .expect("checked at construction")
    }

    /// Default-domain opset version.
    pub fn opset(&self) -> i64 {
        self.proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(0, |o| o.version)
    }

    /// Graph inputs that are not initializers.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] for an input without a tensor type or with an unsupported element type.
    pub fn inputs(&self) -> Result<Vec<TensorInfo>> {
        let inits: HashSet<&str> = self
            .graph()
            .initializer
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        self.graph()
            .input
            .iter()
            .filter(|v| !inits.contains(v.name.as_str()))
            .map(|v| self.value_info(v))
            .collect()
    }

    /// Graph outputs.
    ///
    /// # Errors
    ///
    /// As [`Model::inputs`].
    pub fn outputs(&self) -> Result<Vec<TensorInfo>> {
        self.graph()
            .output
            .iter()
            .map(|v| self.value_info(v))
            .collect()
    }

    fn value_info(&self, v: &pb::ValueInfoProto) -> Result<TensorInfo> {
        let Some(pb::type_proto::Value::TensorType(t)) =
            v.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(Error::model(
                &self.name,
                format!("'{}' is not a tensor", v.name),
            ));
        };
        let elem_type = DType::from_onnx(t.elem_type).ok_or_else(|| {
            Error::model(
                &self.name,
                format!(
                    "'{}' has unsupported ONNX element type {}",
                    v.name, t.elem_type
                ),
            )
        })?;
        let dims = t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        // Exporters (paddle2onnx among them) write -1 for a dynamic dim.
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v >= 0 => {
                            Dim::Fixed(*v)
                        }
                        Some(pb::tensor_shape_proto::dimension::Value::DimParam(p))
                            if !p.is_empty() =>
                        {
                            Dim::Symbolic(p.clone())
                        }
                        _ => Dim::Unknown,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(TensorInfo {
            name: v.name.clone(),
            elem_type,
            dims,
        })
    }

    /// Clears dimension names of graph inputs and outputs that are placeholders rather than
    /// symbols: `?` (which exporters write for "unknown" and which TensorRT would read as one
    /// symbol shared by every such dim, contradicting a profile whose H and W differ) and
    /// expressions such as `floor(height/2 - 1/2) + 1`. Returns how many were cleared.
    pub fn clear_placeholder_dims(&mut self) -> usize {
        let mut cleared = 0;
        let graph = self.graph_mut();
        for v in graph.input.iter_mut().chain(graph.output.iter_mut()) {
            let Some(pb::type_proto::Value::TensorType(t)) =
                v.r#type.as_mut().and_then(|t| t.value.as_mut())
            else {
                continue;
            };
            for d in t.shape.iter_mut().flat_map(|s| s.dim.iter_mut()) {
                if let Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) = &d.value
                    && !is_symbol(p)
                {
                    d.value = None;
                    cleared += 1;
                }
            }
        }
        cleared
    }

    /// Serializes the model with every initializer inline. The initializers of an
    /// [offloaded](Model::offload_weights) model stay references to its temporary file:
    /// serialize [`Model::with_weights`] to write a complete model.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// Feeds the model's content to `sink` in parts: the model without its initializers'
    /// raw bytes (encoded), then each initializer's raw bytes in order, each part after its
    /// length. What a hash of the model needs, without encoding the whole model at once (a
    /// second copy of the weights); an offloaded model gives the same parts as in memory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when offloaded weights cannot be read.
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
    /// [`Error::Io`] naming `dest` (what `out` writes to) when `out` fails, or naming the
    /// offloaded weights' file when it cannot be read.
    pub fn write_to(&self, out: &mut dyn std::io::Write, dest: &Path) -> Result<()> {
        crate::encode::write(self, out, dest)
    }

    /// The model with every main-graph initializer of at least `min_bytes` moved to a
    /// temporary file (see [`crate::offload`]): the same graph, a fraction of the memory.
    /// tract reads the weights from that file ([`crate::CpuModel`] takes such a model);
    /// [`Model::with_weights`] brings them back; clones share the file, which is deleted with
    /// the last of them. Returns a clone when no initializer is that large (or the model is
    /// already offloaded).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the temporary file cannot be written (nothing changes then).
    pub fn offload_weights(&self, min_bytes: usize) -> Result<Model> {
        if self.offloaded.is_some() {
            return Ok(self.clone());
        }
        Ok(match crate::offload::offload(&self.proto, min_bytes)? {
            Some((light, offloaded)) => Model {
                proto: Arc::new(light),
                name: self.name.clone(),
                path: self.path.clone(),
                external_files: self.external_files.clone(),
                offloaded: Some(Arc::new(offloaded)),
            },
            None => self.clone(),
        })
    }

    /// Whether some initializers are in a temporary file ([`Model::offload_weights`]).
    pub fn is_offloaded(&self) -> bool {
        self.offloaded.is_some()
    }

    /// The folder of the offloaded weights' file (for an engine that reads ONNX external
    /// data relative to a folder), `None` when nothing is offloaded.
    pub fn offload_dir(&self) -> Option<&Path> {
        self.offloaded.as_deref().map(Offloaded::dir)
    }

    /// The model with every initializer in memory: offloaded ones read back from their file
    /// (a clone when nothing is offloaded).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the temporary file cannot be read.
    pub fn with_weights(&self) -> Result<Model> {
        let Some(offloaded) = &self.offloaded else {
            return Ok(self.clone());
        };
        let mut proto = crate::offload::shell(&self.proto);
        let graph = proto.graph.get_or_insert_with(Default::default);
        for t in &self.graph().initializer {
            let mut copy = crate::offload::tensor_shell(t);
            copy.raw_data = t.raw_data.clone();
            offloaded.restore(&mut copy)?;
            graph.initializer.push(copy);
        }
        Ok(Model {
            proto: Arc::new(proto),
            name: self.name.clone(),
            path: self.path.clone(),
            external_files: self.external_files.clone(),
            offloaded: None,
        })
    }

    /// The raw bytes of an initializer of this model, read from the temporary file when it
    /// is offloaded (`t.raw_data` otherwise, which is empty for typed-field tensors).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the temporary file cannot be read.
    pub fn initializer_bytes<'a>(
        &self,
        t: &'a pb::TensorProto,
    ) -> Result<std::borrow::Cow<'a, [u8]>> {
        if let Some(offloaded) = &self.offloaded
            && let Some(bytes) = offloaded.read(t)?
        {
            return Ok(std::borrow::Cow::Owned(bytes));
        }
        Ok(std::borrow::Cow::Borrowed(&t.raw_data))
    }

    /// Float32 values of an initializer of this model ([`initializer_f32`], reading an
    /// offloaded one from its file).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the temporary file cannot be read.
    pub fn initializer_f32(&self, t: &pb::TensorProto) -> Result<Option<Vec<f32>>> {
        let bytes = self.initializer_bytes(t)?;
        if let std::borrow::Cow::Owned(raw) = bytes {
            let mut full = crate::offload::tensor_shell(t);
            full.raw_data = raw;
            full.data_location = None;
            return Ok(initializer_f32(&full));
        }
        Ok(initializer_f32(t))
    }

    /// Bytes of the main graph's initializers, offloaded ones included.
    pub fn weight_bytes(&self) -> usize {
        self.graph()
            .initializer
            .iter()
            .map(|t| {
                let offloaded = t
                    .external_data
                    .iter()
                    .find(|e| e.key == "length")
                    .and_then(|e| e.value.parse::<usize>().ok())
                    .filter(|_| self.offloaded.is_some());
                offloaded.unwrap_or(t.raw_data.len() + 4 * t.float_data.len())
            })
            .sum()
    }

    /// Writes the model, with initializers inline or in `<file name>.data` (see
    /// [`WeightStorage`]). Both files are written to temporary names and renamed into place.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file.
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
}

/// A file read through a small window, for decoding a protobuf as it is read. A read error
/// ends the input early (the decoder then fails) and is kept for the caller to report.
struct FileBuf<'a> {
    file: &'a mut std::fs::File,
    window: Vec<u8>,
    start: usize,
    end: usize,
    remaining: usize,
    error: Option<std::io::Error>,
}

impl<'a> FileBuf<'a> {
    const WINDOW: usize = 1 << 20;

    fn new(file: &'a mut std::fs::File, len: u64) -> FileBuf<'a> {
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

/// Bytes an initializer of fixed-size elements needs (`None` for strings or unknown types).
fn tensor_bytes(t: &pb::TensorProto) -> Option<usize> {
    let elem = DType::from_onnx(t.data_type)?.size();
    t.dims.iter().try_fold(elem, |acc, &d| {
        usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    })
}

/// Float32 values of an initializer.
pub fn initializer_f32(t: &pb::TensorProto) -> Option<Vec<f32>> {
    if t.data_type != DType::F32.to_onnx() {
        return None;
    }
    if !t.float_data.is_empty() {
        return Some(t.float_data.clone());
    }
    if !t.raw_data.len().is_multiple_of(4) {
        return None;
    }
    Some(
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}
