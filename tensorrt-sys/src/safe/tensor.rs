//! Element types and network I/O descriptions.

use std::fmt;

use super::*;

/// Element type of a tensor (`nvinfer1::DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataType(pub i32);

impl DataType {
    /// 32-bit float.
    pub const FLOAT: DataType = DataType(0);
    /// 16-bit float.
    pub const HALF: DataType = DataType(1);
    /// Signed 8-bit integer (quantized).
    pub const INT8: DataType = DataType(2);
    /// Signed 32-bit integer.
    pub const INT32: DataType = DataType(3);
    /// Boolean.
    pub const BOOL: DataType = DataType(4);
    /// Unsigned 8-bit integer.
    pub const UINT8: DataType = DataType(5);
    /// 8-bit float.
    pub const FP8: DataType = DataType(6);
    /// bfloat16.
    pub const BF16: DataType = DataType(7);
    /// Signed 64-bit integer.
    pub const INT64: DataType = DataType(8);
    /// Signed 4-bit integer.
    pub const INT4: DataType = DataType(9);

    /// Lower-case name as in ONNX (`float32`, `float16`, `int8`, …).
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "float32",
            1 => "float16",
            2 => "int8",
            3 => "int32",
            4 => "bool",
            5 => "uint8",
            6 => "float8",
            7 => "bfloat16",
            8 => "int64",
            9 => "int4",
            _ => "unknown",
        }
    }

    /// Size of one element in bytes (`None` for sub-byte types).
    pub fn size(self) -> Option<usize> {
        match self.0 {
            0 | 3 => Some(4),
            1 | 7 => Some(2),
            2 | 4 | 5 | 6 => Some(1),
            8 => Some(8),
            _ => None,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Name, shape and element type of a network input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorDesc {
    /// Tensor name.
    pub name: String,
    /// Shape with `-1` for dynamic dimensions.
    pub dims: Dims,
    /// Element type.
    pub data_type: DataType,
}
