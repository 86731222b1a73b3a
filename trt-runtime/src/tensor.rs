//! Host tensors crossing the API: borrowed inputs ([`TensorRef`]) and owned outputs
//! ([`Outputs`]), tagged with their element type so the untyped API checks it at run time.

use half::f16;
use ndarray::{ArrayD, ArrayViewD, IxDyn};

use trt_manifest::DType;

use crate::error::{Error, ErrorCode, Result};

/// Element types the runtime moves between host and engine.
pub trait Element: Copy + Send + Sync + 'static {
    /// The element type.
    const DTYPE: DType;
    /// Little-endian bytes of one value.
    fn write(self, out: &mut Vec<u8>);
    /// One value from little-endian bytes (`bytes.len() == size`).
    fn read(bytes: &[u8]) -> Self;
    /// Size in bytes.
    const SIZE: usize;
    /// Wraps an owned array.
    fn wrap(a: ArrayD<Self>) -> OwnedTensor;
    /// Unwraps an owned array of this type.
    fn unwrap(t: OwnedTensor) -> std::result::Result<ArrayD<Self>, OwnedTensor>;
    /// Wraps a view.
    fn wrap_ref(a: ArrayViewD<'_, Self>) -> TensorRef<'_>;
}

macro_rules! elements {
    ($($t:ty => $variant:ident, $name:literal, $size:literal);* $(;)?) => {
        /// A borrowed host tensor of any supported element type.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum TensorRef<'a> {
            $(
                #[doc = $name]
                $variant(ArrayViewD<'a, $t>),
            )*
        }

        /// An owned host tensor of any supported element type.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum OwnedTensor {
            $(
                #[doc = $name]
                $variant(ArrayD<$t>),
            )*
        }

        $(
            impl Element for $t {
                const DTYPE: DType = DType::$variant;
                const SIZE: usize = $size;
                fn write(self, out: &mut Vec<u8>) {
                    out.extend_from_slice(&self.to_le_bytes());
                }
                fn read(bytes: &[u8]) -> Self {
                    let mut b = [0u8; $size];
                    b.copy_from_slice(bytes);
                    <$t>::from_le_bytes(b)
                }
                fn wrap(a: ArrayD<Self>) -> OwnedTensor {
                    OwnedTensor::$variant(a)
                }
                fn unwrap(t: OwnedTensor) -> std::result::Result<ArrayD<Self>, OwnedTensor> {
                    match t {
                        OwnedTensor::$variant(a) => Ok(a),
                        other => Err(other),
                    }
                }
                fn wrap_ref(a: ArrayViewD<'_, Self>) -> TensorRef<'_> {
                    TensorRef::$variant(a)
                }
            }

            impl<'a> From<ArrayViewD<'a, $t>> for TensorRef<'a> {
                fn from(a: ArrayViewD<'a, $t>) -> Self {
                    TensorRef::$variant(a)
                }
            }
        )*

        impl TensorRef<'_> {
            /// Element type.
            pub fn dtype(&self) -> DType {
                match self { $(TensorRef::$variant(_) => DType::$variant,)* }
            }

            /// Shape.
            pub fn shape(&self) -> &[usize] {
                match self { $(TensorRef::$variant(a) => a.shape(),)* }
            }

            /// Row-major little-endian bytes.
            pub fn to_bytes(&self) -> Vec<u8> {
                match self {
                    $(TensorRef::$variant(a) => {
                        let mut out = Vec::with_capacity(a.len() * $size);
                        for v in a.iter() {
                            v.write(&mut out);
                        }
                        out
                    })*
                }
            }
        }

        impl OwnedTensor {
            /// Element type.
            pub fn dtype(&self) -> DType {
                match self { $(OwnedTensor::$variant(_) => DType::$variant,)* }
            }

            /// Shape.
            pub fn shape(&self) -> &[usize] {
                match self { $(OwnedTensor::$variant(a) => a.shape(),)* }
            }

            /// A view of it.
            pub fn view(&self) -> TensorRef<'_> {
                match self { $(OwnedTensor::$variant(a) => TensorRef::$variant(a.view()),)* }
            }

            /// Builds a tensor of element type `dtype` from row-major little-endian bytes.
            ///
            /// # Errors
            ///
            /// [`ErrorCode::InvalidOutput`] for a type the runtime does not move or a byte count that does not
            /// match the shape.
            pub fn from_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<OwnedTensor> {
                match dtype {
                    $(DType::$variant => {
                        let n: usize = shape.iter().product();
                        if bytes.len() != n * $size {
                            return Err(Error::new(ErrorCode::InvalidOutput, format!(
                                "{} bytes do not hold a {} tensor of shape {shape:?}", bytes.len(), $name)));
                        }
                        let values: Vec<$t> = bytes.chunks_exact($size).map(<$t>::read).collect();
                        Ok(OwnedTensor::$variant(ArrayD::from_shape_vec(IxDyn(shape), values).expect("length checked")))
                    })*
                    other => Err(Error::new(ErrorCode::InvalidOutput, format!("element type {other} is not supported"))),
                }
            }
        }
    };
}

elements! {
    f32 => F32, "float32", 4;
    f16 => F16, "float16", 2;
    f64 => F64, "float64", 8;
    i8 => I8, "int8", 1;
    u8 => U8, "uint8", 1;
    i32 => I32, "int32", 4;
    i64 => I64, "int64", 8;
}

/// The outputs of one call, by name.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    tensors: Vec<(String, OwnedTensor)>,
}

impl Outputs {
    pub(crate) fn new(tensors: Vec<(String, OwnedTensor)>) -> Self {
        Outputs { tensors }
    }

    /// Names and tensors in engine order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OwnedTensor)> {
        self.tensors.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// The output called `name`.
    pub fn get(&self, name: &str) -> Option<&OwnedTensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Removes and returns output `name` as an array of `T`.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::InvalidOutput`] for an unknown name or another element type.
    pub fn take<T: Element>(&mut self, name: &str) -> Result<ArrayD<T>> {
        let i = self
            .tensors
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidOutput,
                    format!("no output named '{name}'"),
                )
            })?;
        let (n, t) = self.tensors.remove(i);
        T::unwrap(t).map_err(|t| {
            let dtype = t.dtype();
            self.tensors.insert(i, (n, t));
            Error::new(
                ErrorCode::InvalidOutput,
                format!("output '{name}' is {dtype}, not {}", T::DTYPE),
            )
        })
    }
}
