//! The one element-type enum of the workspace.

use serde::{Deserialize, Serialize};

/// The element type of a tensor, everywhere in the workspace: ONNX graphs and calibration data
/// (`calib`), manifests and generated bindings (`trt-build`), run-time calls (`trt-runtime`).
/// Serialized by the name ONNX and numpy use (`float32`, `int64`, …), so manifests stay
/// readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum DType {
    /// float32
    F32,
    /// float16
    F16,
    /// bfloat16
    Bf16,
    /// float64
    F64,
    /// int8
    I8,
    /// uint8
    U8,
    /// int16
    I16,
    /// uint16
    U16,
    /// int32
    I32,
    /// uint32
    U32,
    /// int64
    I64,
    /// uint64
    U64,
    /// bool
    Bool,
}

impl DType {
    /// From the ONNX enum value.
    pub fn from_onnx(code: i32) -> Option<DType> {
        Some(match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            4 => DType::U16,
            5 => DType::I16,
            6 => DType::I32,
            7 => DType::I64,
            9 => DType::Bool,
            10 => DType::F16,
            11 => DType::F64,
            12 => DType::U32,
            13 => DType::U64,
            16 => DType::Bf16,
            _ => return None,
        })
    }

    /// The ONNX enum value.
    pub const fn to_onnx(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::U16 => 4,
            DType::I16 => 5,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F16 => 10,
            DType::F64 => 11,
            DType::U32 => 12,
            DType::U64 => 13,
            DType::Bf16 => 16,
        }
    }

    /// Name as numpy writes it (`float32`, `int64`, `bool`…).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::Bf16 => "bfloat16",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::U16 => "uint16",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::I64 => "int64",
            DType::U64 => "uint64",
            DType::Bool => "bool",
        }
    }

    /// Whether values are floating point.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::Bf16 | DType::F64)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl DType {
    /// Every element type.
    pub const ALL: [DType; 13] = [
        DType::F32,
        DType::F16,
        DType::Bf16,
        DType::F64,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
        DType::Bool,
    ];

    /// From its name (`float32`, …); `None` for any other text.
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::Bf16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }
}

impl std::str::FromStr for DType {
    type Err = String;

    fn from_str(name: &str) -> Result<DType, String> {
        DType::from_name(name).ok_or_else(|| {
            format!(
                "`{name}` is not an element type ({})",
                DType::ALL.map(DType::name).join(", ")
            )
        })
    }
}

impl TryFrom<String> for DType {
    type Error = String;

    fn try_from(name: String) -> Result<DType, String> {
        name.parse()
    }
}

impl From<DType> for &'static str {
    fn from(d: DType) -> &'static str {
        d.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_onnx_codes_and_sizes_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
            assert_eq!(DType::from_onnx(d.to_onnx()), Some(d));
            assert_eq!(
                serde_json::to_string(&d).unwrap(),
                format!("\"{}\"", d.name())
            );
            assert_eq!(
                serde_json::from_str::<DType>(&format!("\"{d}\"")).unwrap(),
                d
            );
        }
        assert_eq!(DType::F16.size(), 2);
        let e = serde_json::from_str::<DType>("\"float7\"").unwrap_err();
        assert!(e.to_string().contains("not an element type"), "{e}");
    }
}
