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

pub(crate) const PROTOBUF_LIMIT: usize = (2 << 30) - 1;

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
    pub(crate) proto: Arc<pb::ModelProto>,
    pub(crate) name: String,
    pub(crate) path: Option<PathBuf>,
    pub(crate) external_files: Vec<PathBuf>,
    /// Where the initializers moved out of memory are ([`Model::offload_weights`]).
    pub(crate) offloaded: Option<Arc<Offloaded>>,
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
        let mut reader = crate::codec::FileBuf::new(&mut file, len);
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
