//! Weights moved out of memory into a temporary file while a model is worked on without
//! them (calibration reads every weight once, into tract's graph; the protobuf's copy would
//! only double the peak memory).
//!
//! An offloaded initializer is standard ONNX external data (`data_location = EXTERNAL`,
//! `location`/`offset`/`length`) pointing at [`WEIGHTS_FILE`] in a private temporary folder,
//! so tract reads it straight from there; [`Model::with_weights`](crate::Model::with_weights)
//! reads it back, and [`Model::initializer_bytes`](crate::Model::initializer_bytes) reads one
//! tensor when a caller needs its values. The folder goes when the last model that refers to
//! it is dropped. It is made under the system's temporary folder (`TMPDIR`): where that is a
//! RAM file system, the weights leave the process's memory but not the machine's.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::pb;

use crate::error::{Error, Result};
use crate::model::{Model, initializer_f32};

/// The file name of the offloaded weights inside their temporary folder.
pub const WEIGHTS_FILE: &str = "weights.bin";

/// The temporary file that holds a model's offloaded weights.
#[derive(Debug)]
pub(crate) struct Offloaded {
    dir: TempFolder,
    /// `data_location` of each offloaded initializer before it was offloaded.
    locations: HashMap<String, Option<i32>>,
}

impl Offloaded {
    /// The folder that holds [`WEIGHTS_FILE`].
    pub(crate) fn dir(&self) -> &Path {
        &self.dir.0
    }

    fn file(&self) -> PathBuf {
        self.dir.0.join(WEIGHTS_FILE)
    }

    /// The bytes of an initializer this file holds (`None` for one it does not).
    pub(crate) fn read(&self, t: &pb::TensorProto) -> Result<Option<Vec<u8>>> {
        self.read_with(t, |f, length| {
            let mut bytes = vec![0; length];
            f.read_exact(&mut bytes)?;
            Ok(bytes)
        })
    }

    /// Float32 values of an initializer offloaded here, converted as they are read (never its
    /// bytes and its values at once: `dddd_crnn`'s 34 MB classifier weight).
    pub(crate) fn read_f32(&self, t: &pb::TensorProto) -> Result<Option<Vec<f32>>> {
        let values = self.read_with(t, |f, length| {
            if !length.is_multiple_of(4) {
                return Ok(None);
            }
            let count = length / 4;
            let mut values = Vec::with_capacity(count);
            let mut chunk = vec![0u8; length.min(1 << 20)];
            while values.len() < count {
                let want = (4 * (count - values.len())).min(chunk.len());
                f.read_exact(&mut chunk[..want])?;
                values.extend(
                    chunk[..want]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
            Ok(Some(values))
        })?;
        Ok(values.flatten())
    }

    /// `read` on the file positioned at an initializer offloaded here, with its length.
    fn read_with<T>(
        &self,
        t: &pb::TensorProto,
        read: impl FnOnce(&mut std::fs::File, usize) -> std::io::Result<T>,
    ) -> Result<Option<T>> {
        use std::io::{Seek, SeekFrom};
        let Some((offset, length)) = self.place_of(t) else {
            return Ok(None);
        };
        let path = self.file();
        let open = || -> std::io::Result<T> {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            read(&mut f, length)
        };
        open().map(Some).map_err(|e| Error::io(&path, e))
    }

    /// Offset and length of an initializer offloaded here.
    fn place_of(&self, t: &pb::TensorProto) -> Option<(u64, usize)> {
        if t.data_location != Some(pb::tensor_proto::DataLocation::External as i32)
            || !self.locations.contains_key(&t.name)
        {
            return None;
        }
        let value = |key: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.as_str())
        };
        if value("location") != Some(WEIGHTS_FILE) {
            return None;
        }
        Some((
            value("offset")?.parse().ok()?,
            value("length")?.parse().ok()?,
        ))
    }

    /// The `data_location` an initializer offloaded here had before, and its length in bytes
    /// (`None` when it is not one of them).
    pub(crate) fn original_location(&self, t: &pb::TensorProto) -> Option<(Option<i32>, usize)> {
        let (_, length) = self.place_of(t)?;
        Some((*self.locations.get(&t.name)?, length))
    }

    /// Puts an offloaded initializer's bytes back in place.
    pub(crate) fn restore(&self, t: &mut pb::TensorProto) -> Result<()> {
        if let Some(bytes) = self.read(t)? {
            t.raw_data = bytes;
            t.data_location = self.locations.get(&t.name).copied().flatten();
            t.external_data.clear();
        }
        Ok(())
    }
}

impl Model {
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
        Ok(match offload(&self.proto, min_bytes)? {
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
        let mut proto = shell(&self.proto);
        let graph = proto.graph.get_or_insert_with(Default::default);
        for t in &self.graph().initializer {
            let mut copy = tensor_shell(t);
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
        if let Some(offloaded) = &self.offloaded
            && t.data_type == crate::DType::F32.to_onnx()
            && let Some(values) = offloaded.read_f32(t)?
        {
            return Ok(Some(values));
        }
        let bytes = self.initializer_bytes(t)?;
        if let std::borrow::Cow::Owned(raw) = bytes {
            let mut full = tensor_shell(t);
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
}

/// A new private folder under the system's temporary folder, removed with what it holds when
/// dropped.
#[derive(Debug)]
struct TempFolder(PathBuf);

impl TempFolder {
    fn new() -> std::io::Result<TempFolder> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = base.join(format!("trt-weights-{}-{n}-{nanos}", std::process::id()));
            let mut builder = std::fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            match builder.create(&path) {
                Ok(()) => return Ok(TempFolder(path)),
                // Another process's folder of the same name: take the next number.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1 << 20 => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `proto` with every main-graph initializer of at least `min_bytes` of raw data moved to a
/// new temporary file; `None` when no initializer is that large.
pub(crate) fn offload(
    proto: &pb::ModelProto,
    min_bytes: usize,
) -> Result<Option<(pb::ModelProto, Offloaded)>> {
    let Some(graph) = proto.graph.as_ref() else {
        return Ok(None);
    };
    if !graph
        .initializer
        .iter()
        .any(|t| t.raw_data.len() >= min_bytes.max(1))
    {
        return Ok(None);
    }
    let dir = TempFolder::new().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let path = dir.0.join(WEIGHTS_FILE);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let mut out = std::io::BufWriter::new(file);
    let mut offset = 0usize;
    let mut locations = HashMap::new();
    let mut light = shell(proto);
    let light_graph = light.graph.get_or_insert_with(Default::default);
    for t in &graph.initializer {
        let mut copy = tensor_shell(t);
        if t.raw_data.len() >= min_bytes.max(1) && !locations.contains_key(&t.name) {
            out.write_all(&t.raw_data)
                .map_err(|e| Error::io(&path, e))?;
            locations.insert(t.name.clone(), t.data_location);
            copy.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
            copy.external_data = [
                ("location", WEIGHTS_FILE.to_string()),
                ("offset", offset.to_string()),
                ("length", t.raw_data.len().to_string()),
            ]
            .into_iter()
            .map(|(key, value)| pb::StringStringEntryProto {
                key: key.into(),
                value,
            })
            .collect();
            offset += t.raw_data.len();
        } else {
            copy.raw_data = t.raw_data.clone();
        }
        light_graph.initializer.push(copy);
    }
    out.flush().map_err(|e| Error::io(&path, e))?;
    drop(out);
    Ok(Some((light, Offloaded { dir, locations })))
}

/// A copy of `proto` whose main graph has no initializers (everything else is copied).
pub(crate) fn shell(proto: &pb::ModelProto) -> pb::ModelProto {
    pb::ModelProto {
        graph: proto.graph.as_ref().map(graph_shell),
        ..without_graph(proto)
    }
}

/// A copy of `proto` without its graph.
pub(crate) fn without_graph(proto: &pb::ModelProto) -> pb::ModelProto {
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
    } = proto;
    pb::ModelProto {
        ir_version: *ir_version,
        opset_import: opset_import.clone(),
        producer_name: producer_name.clone(),
        producer_version: producer_version.clone(),
        domain: domain.clone(),
        model_version: *model_version,
        doc_string: doc_string.clone(),
        graph: None,
        metadata_props: metadata_props.clone(),
        training_info: training_info.clone(),
        functions: functions.clone(),
    }
}

/// A copy of a graph without its initializers.
pub(crate) fn graph_shell(g: &pb::GraphProto) -> pb::GraphProto {
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
    pb::GraphProto {
        node: node.clone(),
        name: name.clone(),
        initializer: Vec::new(),
        sparse_initializer: sparse_initializer.clone(),
        doc_string: doc_string.clone(),
        input: input.clone(),
        output: output.clone(),
        value_info: value_info.clone(),
        quantization_annotation: quantization_annotation.clone(),
    }
}

/// A copy of an initializer without its raw bytes.
pub(crate) fn tensor_shell(t: &pb::TensorProto) -> pb::TensorProto {
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
    pb::TensorProto {
        dims: dims.clone(),
        data_type: *data_type,
        segment: segment.clone(),
        float_data: float_data.clone(),
        int32_data: int32_data.clone(),
        string_data: string_data.clone(),
        int64_data: int64_data.clone(),
        name: name.clone(),
        doc_string: doc_string.clone(),
        raw_data: Vec::new(),
        double_data: double_data.clone(),
        uint64_data: uint64_data.clone(),
        data_location: *data_location,
        external_data: external_data.clone(),
    }
}
