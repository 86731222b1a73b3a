//! Host tensors: values by element type, and reading them from `.npy` / `.npz` with the
//! element type the model input declares.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ndarray_npy::{ReadNpyExt, ReadableElement};
use tract_onnx::prelude::{IntoTensor, Tensor, f16, tract_ndarray as nd};

use crate::model::{DType, TensorInfo};

/// Host tensor values, by element type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TensorData {
    /// float32
    F32(Vec<f32>),
    /// float16
    F16(Vec<f16>),
    /// float64
    F64(Vec<f64>),
    /// int8
    I8(Vec<i8>),
    /// uint8
    U8(Vec<u8>),
    /// int16
    I16(Vec<i16>),
    /// uint16
    U16(Vec<u16>),
    /// int32
    I32(Vec<i32>),
    /// uint32
    U32(Vec<u32>),
    /// int64
    I64(Vec<i64>),
    /// uint64
    U64(Vec<u64>),
    /// bool
    Bool(Vec<bool>),
}

/// A tensor on the host: a shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    shape: Vec<usize>,
    data: TensorData,
}

macro_rules! for_each_type {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::F32($v) => $body,
            TensorData::F16($v) => $body,
            TensorData::F64($v) => $body,
            TensorData::I8($v) => $body,
            TensorData::U8($v) => $body,
            TensorData::I16($v) => $body,
            TensorData::U16($v) => $body,
            TensorData::I32($v) => $body,
            TensorData::U32($v) => $body,
            TensorData::I64($v) => $body,
            TensorData::U64($v) => $body,
            TensorData::Bool($v) => $body,
        }
    };
}

impl HostTensor {
    /// A tensor from a shape and values.
    ///
    /// # Panics
    ///
    /// If the number of values differs from the product of the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Self {
        let n: usize = shape.iter().product();
        let len = for_each_type!(&data, v => v.len());
        assert_eq!(n, len, "shape {shape:?} needs {n} values, got {len}");
        HostTensor { shape, data }
    }

    /// A float32 tensor.
    ///
    /// # Panics
    ///
    /// If the number of values differs from the product of the shape.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self::new(shape, TensorData::F32(data))
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Element type.
    pub fn elem_type(&self) -> DType {
        match &self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::F64(_) => DType::F64,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::I16(_) => DType::I16,
            TensorData::U16(_) => DType::U16,
            TensorData::I32(_) => DType::I32,
            TensorData::U32(_) => DType::U32,
            TensorData::I64(_) => DType::I64,
            TensorData::U64(_) => DType::U64,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    /// Row-major little-endian bytes of the values (for fingerprints).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match &self.data {
            TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I8(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::U8(v) => v.clone(),
            TensorData::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::U16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::U64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// Index of the first NaN or infinite value, if any.
    pub fn first_non_finite(&self) -> Option<usize> {
        match &self.data {
            TensorData::F32(v) => v.iter().position(|x| !x.is_finite()),
            TensorData::F16(v) => v.iter().position(|x| !x.is_finite()),
            TensorData::F64(v) => v.iter().position(|x| !x.is_finite()),
            _ => None,
        }
    }

    /// Converts to a tract tensor.
    pub fn to_tract(&self) -> Tensor {
        for_each_type!(&self.data, v => nd::ArrayD::from_shape_vec(nd::IxDyn(&self.shape), v.clone())
            .expect("shape checked at construction")
            .into_tensor())
    }
}

/// float16 as `.npy` stores it (`<f2`); ndarray-npy has no float16 element of its own.
#[derive(Clone, Copy)]
struct NpyF16(f16);

impl ReadableElement for NpyF16 {
    fn read_to_end_exact_vec<R: std::io::Read>(
        mut reader: R,
        type_desc: &py_literal::Value,
        len: usize,
    ) -> std::result::Result<Vec<Self>, ndarray_npy::ReadDataError> {
        let little = match type_desc {
            py_literal::Value::String(s) if s == "<f2" => true,
            py_literal::Value::String(s) if s == ">f2" => false,
            other => return Err(ndarray_npy::ReadDataError::WrongDescriptor(other.clone())),
        };
        let mut bytes = vec![0u8; len * 2];
        reader.read_exact(&mut bytes)?;
        let mut extra = [0u8; 1];
        if reader.read(&mut extra)? != 0 {
            return Err(ndarray_npy::ReadDataError::ExtraBytes(1));
        }
        Ok(bytes
            .chunks_exact(2)
            .map(|b| {
                let bits = if little {
                    u16::from_le_bytes([b[0], b[1]])
                } else {
                    u16::from_be_bytes([b[0], b[1]])
                };
                NpyF16(f16::from_bits(bits))
            })
            .collect())
    }
}

fn to_vec<T: Clone>(a: nd::ArrayD<T>) -> (Vec<usize>, Vec<T>) {
    let shape = a.shape().to_vec();
    let data = a.as_standard_layout().iter().cloned().collect();
    (shape, data)
}

/// Reads one array with the Rust type matching `elem`; `$read` is generic over `T`.
macro_rules! read_as {
    ($elem:expr, $t:ident => $read:expr) => {{
        let (shape, data) = match $elem {
            DType::F32 => {
                type $t = f32;
                let (s, v) = to_vec($read?);
                (s, TensorData::F32(v))
            }
            DType::F64 => {
                type $t = f64;
                let (s, v) = to_vec($read?);
                (s, TensorData::F64(v))
            }
            DType::F16 => {
                type $t = NpyF16;
                let (s, v) = to_vec($read?);
                (s, TensorData::F16(v.into_iter().map(|x| x.0).collect()))
            }
            DType::I8 => {
                type $t = i8;
                let (s, v) = to_vec($read?);
                (s, TensorData::I8(v))
            }
            DType::U8 => {
                type $t = u8;
                let (s, v) = to_vec($read?);
                (s, TensorData::U8(v))
            }
            DType::I16 => {
                type $t = i16;
                let (s, v) = to_vec($read?);
                (s, TensorData::I16(v))
            }
            DType::U16 => {
                type $t = u16;
                let (s, v) = to_vec($read?);
                (s, TensorData::U16(v))
            }
            DType::I32 => {
                type $t = i32;
                let (s, v) = to_vec($read?);
                (s, TensorData::I32(v))
            }
            DType::U32 => {
                type $t = u32;
                let (s, v) = to_vec($read?);
                (s, TensorData::U32(v))
            }
            DType::I64 => {
                type $t = i64;
                let (s, v) = to_vec($read?);
                (s, TensorData::I64(v))
            }
            DType::U64 => {
                type $t = u64;
                let (s, v) = to_vec($read?);
                (s, TensorData::U64(v))
            }
            DType::Bool => {
                type $t = bool;
                let (s, v) = to_vec($read?);
                (s, TensorData::Bool(v))
            }
            DType::Bf16 => {
                return Err(
                    "bfloat16 calibration data is not supported; store it as float32".to_string(),
                );
            }
        };
        HostTensor { shape, data }
    }};
}

/// The reader's error, said in the model's terms where its kind has them.
fn npy_error(e: ndarray_npy::ReadNpyError) -> String {
    match e {
        ndarray_npy::ReadNpyError::WrongDescriptor(_) => {
            format!("{e}: the array's element type differs from the model input's")
        }
        other => other.to_string(),
    }
}

/// Opens a calibration file that must be a regular file (a FIFO named `x.npy` would block
/// forever; a device could be endless).
pub(super) fn open_regular(path: &Path) -> std::result::Result<(File, u64), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let file = File::open(path).map_err(|e| e.to_string())?;
    Ok((file, meta.len()))
}

pub(super) fn read_npy_file(
    path: &Path,
    input: &TensorInfo,
) -> std::result::Result<HostTensor, String> {
    let (file, len) = open_regular(path)?;
    let bytes = crate::npy::read_checked(BufReader::new(file), Some(len), Some(input))?;
    let elem = input.elem_type;
    Ok(read_as!(elem, T => nd::ArrayD::<T>::read_npy(&bytes[..]).map_err(npy_error)))
}

impl HostTensor {
    /// Reads `.npy` bytes as an array of `elem` (the header is checked against the bytes
    /// before anything is allocated; see [`crate::MAX_ARRAY_BYTES`]).
    ///
    /// # Errors
    ///
    /// A sentence saying what is wrong with the bytes.
    pub fn from_npy(bytes: &[u8], elem: DType) -> std::result::Result<HostTensor, String> {
        let checked = crate::npy::read_checked(bytes, Some(bytes.len() as u64), None)?;
        Ok(read_as!(elem, T => nd::ArrayD::<T>::read_npy(&checked[..]).map_err(npy_error)))
    }
}

pub(super) fn read_npz_entry(
    npz: &mut zip::ZipArchive<BufReader<File>>,
    name: &str,
    input: &TensorInfo,
) -> std::result::Result<HostTensor, String> {
    let entry = npz.by_name(name).map_err(|e| e.to_string())?;
    // Compressed (np.savez_compressed) or stored: the entry reader inflates as it goes, and
    // read_checked never reads past what the header declares; the header is checked against
    // the size the archive declares for the entry before any payload is inflated.
    let declared = entry.size();
    let bytes = crate::npy::read_checked(entry, Some(declared), Some(input))?;
    let elem = input.elem_type;
    Ok(read_as!(elem, T => nd::ArrayD::<T>::read_npy(&bytes[..]).map_err(npy_error)))
}
