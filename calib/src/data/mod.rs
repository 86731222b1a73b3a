//! Calibration data: samples (one tensor per model input), where they come from, and the
//! checks every sample passes before it is used.

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use tract_onnx::prelude::{Tensor, tract_ndarray as nd};

use crate::error::{Error, Result};
use trt_manifest::{
    Mode, ProfileSpec, TensorMeta, TensorSpec, Violation, check_inputs, fit_profile,
};

use crate::model::{DType, Dim, TensorInfo};
use crate::profile::Profile;

mod tensor;

pub use tensor::{HostTensor, TensorData};
use tensor::{open_regular, read_npy_file, read_npz_entry};

/// One calibration sample: one tensor per model input, by input name.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    id: String,
    tensors: BTreeMap<String, HostTensor>,
}

impl Sample {
    /// An empty sample called `id` (used in error messages).
    pub fn new(id: impl Into<String>) -> Self {
        Sample {
            id: id.into(),
            tensors: BTreeMap::new(),
        }
    }

    /// Adds the tensor of input `name`.
    pub fn with(mut self, name: impl Into<String>, tensor: HostTensor) -> Self {
        self.tensors.insert(name.into(), tensor);
        self
    }

    /// The sample's identifier.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The tensors by input name.
    pub fn tensors(&self) -> &BTreeMap<String, HostTensor> {
        &self.tensors
    }

    /// The tensor of one input.
    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.get(name)
    }

    /// The tensors as the inputs of one [`crate::CpuModel::run`] (one copy each).
    pub fn inputs(&self) -> Vec<(&str, Tensor)> {
        self.tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.to_tract()))
            .collect()
    }

    /// The input shapes by name (for [`crate::CpuModel::signature`]).
    pub fn shapes(&self) -> impl Iterator<Item = (&str, &[usize])> + Clone {
        self.tensors.iter().map(|(n, t)| (n.as_str(), t.shape()))
    }

    /// Checks the sample against the model's inputs and the declared profiles: every input
    /// present and no unknown names, element types, ranks, fixed dims, dynamic dims inside
    /// one profile's min/max, and only finite values. Returns the index of the first profile
    /// the sample fits.
    ///
    /// # Errors
    ///
    /// [`Error::Sample`] naming the sample, the input, the dimension, the value and the
    /// allowed range.
    pub fn validate(&self, inputs: &[TensorInfo], profiles: &[Profile]) -> Result<usize> {
        let id = self.id.as_str();
        let refused = |v: Violation| Error::sample(id, v.input(), v.describe("the model"));
        let specs: Vec<TensorSpec> = inputs.iter().map(|i| i.spec(Mode::Input)).collect();
        let given: Vec<(&str, &HostTensor)> =
            self.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        check_inputs(&specs, &given).map_err(refused)?;
        for (name, t) in &given {
            if let Some(at) = t.first_non_finite() {
                return Err(Error::sample(
                    id,
                    Some(name),
                    format!("contains a NaN or infinite value at flat index {at}"),
                ));
            }
        }
        // Inputs that share a symbolic dimension (the batch `N` of every input) must agree.
        let mut symbols: BTreeMap<&str, (&str, usize, usize)> = BTreeMap::new();
        for input in inputs {
            let shape = self.tensors[&input.name].shape();
            for (axis, dim) in input.dims.iter().enumerate() {
                let Dim::Symbolic(sym) = dim else { continue };
                if !crate::model::is_symbol(sym) {
                    continue;
                }
                let value = shape[axis];
                match symbols.get(sym.as_str()) {
                    Some(&(other, other_axis, v)) if v != value => {
                        return Err(Error::sample(
                            id,
                            Some(&input.name),
                            format!(
                                "dimension {axis} is {value} but dimension {other_axis} of input '{other}' is {v}; the model names both '{sym}', so they must be equal"
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        symbols.insert(sym, (&input.name, axis, value));
                    }
                }
            }
        }
        let profiles: Vec<ProfileSpec> = profiles.iter().map(Profile::spec).collect();
        fit_profile(&profiles, &given, None).map_err(refused)
    }
}

impl TensorMeta for HostTensor {
    fn dtype(&self) -> DType {
        self.elem_type()
    }
    fn shape(&self) -> &[usize] {
        HostTensor::shape(self)
    }
}

impl Sample {
    /// Writes the sample as `<dir>/<input>.npy`, one file per input (the layout
    /// [`Source::Path`] reads). Files are only rewritten when their bytes change.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file; [`Error::Sample`] for float16/bool tensors, which are
    /// not written.
    pub fn save_npy_dir(&self, dir: &Path) -> Result<()> {
        use ndarray_npy::WriteNpyExt;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (name, t) in &self.tensors {
            let mut bytes = Vec::new();
            let shape = nd::IxDyn(t.shape());
            let written = match t.data() {
                TensorData::F32(v) => {
                    nd::ArrayViewD::from_shape(shape, v).map(|a| a.write_npy(&mut bytes))
                }
                TensorData::F64(v) => {
                    nd::ArrayViewD::from_shape(shape, v).map(|a| a.write_npy(&mut bytes))
                }
                TensorData::I64(v) => {
                    nd::ArrayViewD::from_shape(shape, v).map(|a| a.write_npy(&mut bytes))
                }
                TensorData::I32(v) => {
                    nd::ArrayViewD::from_shape(shape, v).map(|a| a.write_npy(&mut bytes))
                }
                TensorData::U8(v) => {
                    nd::ArrayViewD::from_shape(shape, v).map(|a| a.write_npy(&mut bytes))
                }
                TensorData::I8(v) => {
                    nd::ArrayViewD::from_shape(shape, v).map(|a| a.write_npy(&mut bytes))
                }
                _ => {
                    return Err(Error::sample(
                        &self.id,
                        Some(name),
                        format!("writing {} as .npy is not supported", t.elem_type()),
                    ));
                }
            };
            written
                .map_err(|e| Error::sample(&self.id, Some(name), e.to_string()))?
                .map_err(|e| Error::sample(&self.id, Some(name), e.to_string()))?;
            let path = dir.join(format!("{name}.npy"));
            if std::fs::read(&path).is_ok_and(|old| old == bytes) {
                continue;
            }
            crate::model::write_atomic(&path, &bytes)?;
        }
        Ok(())
    }
}

/// Where calibration samples come from. Samples are loaded one at a time, so memory does not
/// grow with the number of samples.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory with one sub-directory per sample holding `<input_name>.npy`, or a
    /// directory of `.npz` files (one per sample, arrays named after the inputs), or one
    /// `.npz` file.
    Path(PathBuf),
    /// Samples built in code (build scripts, tests).
    Memory(Vec<Sample>),
    /// An explicit list of file samples (a part of a [`Source::Path`], see [`Source::split`]).
    Files(Vec<SampleRef>),
    /// Samples made on demand by code, one at a time (streaming: nothing is kept). See
    /// [`Source::generated`].
    Generated(Generator),
}

type MakeSample = dyn Fn(usize) -> Sample + Send + Sync;

/// Samples produced on demand by a function of the sample index; it must return the same
/// sample for the same index (calibration reads each sample more than once).
#[derive(Clone)]
pub struct Generator {
    make: std::sync::Arc<MakeSample>,
    indices: Vec<usize>,
}

impl fmt::Debug for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("samples", &self.indices.len())
            .finish_non_exhaustive()
    }
}

/// One located sample of a [`Source`], not yet read.
#[derive(Debug, Clone)]
pub enum SampleRef {
    /// A sub-directory of `.npy` files.
    NpyDir(PathBuf),
    /// An `.npz` file.
    Npz(PathBuf),
    /// An in-memory sample (index into [`Source::Memory`]).
    Memory(usize),
    /// A generated sample (index passed to the generator).
    Generated(usize),
}

impl Source {
    /// `count` samples made on demand by `make(index)`, for build scripts and tests that
    /// produce data in code without holding it all in memory.
    pub fn generated(
        count: usize,
        make: impl Fn(usize) -> Sample + Send + Sync + 'static,
    ) -> Source {
        Source::Generated(Generator {
            make: std::sync::Arc::new(make),
            indices: (0..count).collect(),
        })
    }

    /// Description for messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Memory(v) => format!("in-memory ({} samples)", v.len()),
            Source::Files(v) => format!("{} listed samples", v.len()),
            Source::Generated(g) => format!("generated ({} samples)", g.indices.len()),
        }
    }

    /// Splits off every `every`-th sample (indices `every-1`, `2*every-1`, …) as held-out
    /// data; returns `(calibration, held_out)`. With fewer than `every` samples nothing is
    /// held out.
    ///
    /// # Errors
    ///
    /// As [`Source::list`]; [`Error::Options`] for `every` below 2 (every sample held out).
    pub fn split(&self, every: usize) -> Result<(Source, Source)> {
        if every < 2 {
            return Err(Error::options(format!(
                "holding out every {every}. sample would leave no sample to calibrate; use 2 or more (or 0 for no hold-out)"
            )));
        }
        let held = |i: usize| i % every == every - 1;
        match self {
            Source::Memory(v) => {
                let (a, b): (Vec<_>, Vec<_>) =
                    v.iter().cloned().enumerate().partition(|(i, _)| !held(*i));
                Ok((
                    Source::Memory(a.into_iter().map(|x| x.1).collect()),
                    Source::Memory(b.into_iter().map(|x| x.1).collect()),
                ))
            }
            Source::Generated(g) => {
                let (a, b): (Vec<_>, Vec<_>) =
                    g.indices.iter().enumerate().partition(|(i, _)| !held(*i));
                let part = |v: Vec<(usize, &usize)>| {
                    Source::Generated(Generator {
                        make: g.make.clone(),
                        indices: v.into_iter().map(|x| *x.1).collect(),
                    })
                };
                Ok((part(a), part(b)))
            }
            _ => {
                let refs = self.list()?;
                let (a, b): (Vec<_>, Vec<_>) =
                    refs.into_iter().enumerate().partition(|(i, _)| !held(*i));
                Ok((
                    Source::Files(a.into_iter().map(|x| x.1).collect()),
                    Source::Files(b.into_iter().map(|x| x.1).collect()),
                ))
            }
        }
    }

    /// Lists the samples in a deterministic (sorted) order.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for an unreadable path, [`Error::EmptySource`] without samples.
    pub fn list(&self) -> Result<Vec<SampleRef>> {
        let refs = match self {
            Source::Memory(v) => (0..v.len()).map(SampleRef::Memory).collect(),
            Source::Path(path) => list_path(path)?,
            Source::Files(v) => v.clone(),
            Source::Generated(g) => g.indices.iter().map(|&i| SampleRef::Generated(i)).collect(),
        };
        if refs.is_empty() {
            return Err(Error::EmptySource {
                source: self.describe(),
            });
        }
        Ok(refs)
    }

    /// Every file the source consists of (for `cargo:rerun-if-changed` and fingerprints).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] for an unreadable directory.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        match self {
            Source::Memory(_) | Source::Generated(_) => Ok(Vec::new()),
            Source::Files(refs) => {
                let mut files = Vec::new();
                for r in refs {
                    if let SampleRef::NpyDir(p) | SampleRef::Npz(p) = r {
                        files.extend(Source::Path(p.clone()).files()?);
                    }
                }
                Ok(files)
            }
            Source::Path(path) => {
                let mut files = Vec::new();
                for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
                    let entry = entry.map_err(|e| {
                        let p = e.path().unwrap_or(path).to_path_buf();
                        Error::io(
                            p,
                            e.into_io_error()
                                .unwrap_or_else(|| std::io::Error::other("walk failed")),
                        )
                    })?;
                    if entry.file_type().is_file() {
                        files.push(entry.into_path());
                    } else if entry.path_is_symlink() {
                        // A link to a file is read like the file; a link to a folder is
                        // refused (never walked: a link to `/` would walk the file system).
                        refuse_linked_folder(entry.path())?;
                        if entry.path().is_file() {
                            files.push(entry.into_path());
                        }
                    }
                }
                Ok(files)
            }
        }
    }

    /// Reads one sample, typing each array by the model input of the same name.
    ///
    /// # Errors
    ///
    /// [`Error::Sample`] naming the file and input for unreadable arrays or wrong element types.
    pub fn load(&self, sample: &SampleRef, inputs: &[TensorInfo]) -> Result<Sample> {
        match sample {
            SampleRef::Memory(i) => match self {
                Source::Memory(v) => v
                    .get(*i)
                    .cloned()
                    .ok_or_else(|| Error::options(format!("no in-memory sample #{i}"))),
                _ => Err(Error::options(
                    "in-memory sample reference used with another source",
                )),
            },
            SampleRef::Generated(i) => match self {
                Source::Generated(g) => Ok((g.make)(*i)),
                _ => Err(Error::options(
                    "generated sample reference used with another source",
                )),
            },
            SampleRef::NpyDir(dir) => {
                let id = dir.display().to_string();
                let mut out = Sample::new(id.clone());
                let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map_err(|e| Error::io(dir, e))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "npy"))
                    .collect();
                entries.sort();
                for file in entries {
                    let name = file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let Some(input) = inputs.iter().find(|i| i.name == name) else {
                        let known: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                        return Err(Error::sample(
                            id,
                            Some(&name),
                            format!(
                                "{} names no model input (inputs: {})",
                                file.display(),
                                known.join(", ")
                            ),
                        ));
                    };
                    let tensor = read_npy_file(&file, input).map_err(|m| {
                        Error::sample(&id, Some(&name), format!("{}: {m}", file.display()))
                    })?;
                    out.tensors.insert(name, tensor);
                }
                Ok(out)
            }
            SampleRef::Npz(file) => {
                let id = file.display().to_string();
                let (f, _) = open_regular(file).map_err(|m| Error::sample(&id, None, m))?;
                let mut npz = zip::ZipArchive::new(BufReader::new(f))
                    .map_err(|e| Error::sample(&id, None, format!("not a readable .npz: {e}")))?;
                let mut names: Vec<String> = npz.file_names().map(str::to_string).collect();
                names.sort();
                let mut out = Sample::new(id.clone());
                for entry in names {
                    let name = entry.strip_suffix(".npy").unwrap_or(&entry).to_string();
                    let Some(input) = inputs.iter().find(|i| i.name == name) else {
                        let known: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                        return Err(Error::sample(
                            id,
                            Some(&name),
                            format!("array names no model input (inputs: {})", known.join(", ")),
                        ));
                    };
                    let tensor = read_npz_entry(&mut npz, &entry, input)
                        .map_err(|m| Error::sample(&id, Some(&name), m))?;
                    out.tensors.insert(name, tensor);
                }
                Ok(out)
            }
        }
    }
}

/// A symbolic link to a folder inside the data folder is refused: its files would be read
/// but never walked for the fingerprint (and a link to `/` must not walk the file system).
fn refuse_linked_folder(p: &Path) -> Result<()> {
    let is_link = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && p.is_dir() {
        return Err(Error::sample(
            p.display().to_string(),
            None,
            "is a symbolic link to a folder; links to folders inside the data folder are not followed: move or copy the sample folder in, or give the linked folder itself as the data",
        ));
    }
    Ok(())
}

fn list_path(path: &Path) -> Result<Vec<SampleRef>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        return if path.extension().is_some_and(|x| x == "npz") {
            Ok(vec![SampleRef::Npz(path.to_path_buf())])
        } else {
            Err(Error::sample(
                path.display().to_string(),
                None,
                "expected a directory of samples or an .npz file",
            ))
        };
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in &entries {
        refuse_linked_folder(p)?;
    }
    Ok(entries
        .into_iter()
        .filter_map(|p| {
            if p.is_dir() {
                Some(SampleRef::NpyDir(p))
            } else if p.extension().is_some_and(|x| x == "npz") {
                Some(SampleRef::Npz(p))
            } else {
                None
            }
        })
        .collect())
}

impl SampleRef {
    /// Identifier used in messages.
    pub fn id(&self) -> String {
        match self {
            SampleRef::NpyDir(p) | SampleRef::Npz(p) => p.display().to_string(),
            SampleRef::Memory(i) | SampleRef::Generated(i) => format!("#{i}"),
        }
    }
}
