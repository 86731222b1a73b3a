//! onnxruntime as the second CPU inference engine, for models tract cannot run even with
//! concrete shapes (an `If` whose branches differ in rank, operators tract lacks).
//!
//! The library is loaded at run time (the `ort` crate's dynamic loading) from
//! `ORT_DYLIB_PATH`, which `.cargo/config.toml` points at the copy `cargo xtask setup`
//! unpacks from the `onnxruntime` wheel on PyPI. Without it, tract stays the only engine and
//! the error says how to enable this one.
//!
//! Compiled with the `onnxruntime` feature (default). Without it, [`available`] says so and
//! tract is the only engine.

/// Environment variable naming the onnxruntime shared library (the `ort` crate's own name).
pub const DYLIB_VAR: &str = "ORT_DYLIB_PATH";

#[cfg(feature = "onnxruntime")]
mod engine {
    use super::DYLIB_VAR;
    use std::sync::{Mutex, OnceLock};

    use ort::session::Session;
    use ort::session::builder::GraphOptimizationLevel;
    use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};
    use tract_onnx::pb;
    use tract_onnx::prelude::{Tensor, tract_ndarray as nd};

    /// The library `ORT_DYLIB_PATH` names, if it names a file.
    fn library_path() -> Result<std::path::PathBuf, String> {
        let path = crate::env(DYLIB_VAR).ok_or_else(|| {
            format!(
                "{DYLIB_VAR} is not set (run `cargo xtask setup`, or point it at libonnxruntime.so)"
            )
        })?;
        let path = std::path::PathBuf::from(path);
        if !path.is_file() {
            return Err(format!("{DYLIB_VAR}={} is not a file", path.display()));
        }
        Ok(path)
    }

    fn environment() -> Result<&'static ort::environment::Environment, String> {
        static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
        ENV.get_or_init(|| {
            let path = library_path()?;
            // `ort` loads the library and may panic on a library it cannot use; keep that inside.
            std::panic::catch_unwind(|| {
                ort::init_from(&path)
                    .map_err(|e| format!("loading {}: {e}", path.display()))?
                    .with_name("trt-calib")
                    .build()
                    .map_err(|e| format!("onnxruntime environment: {e}"))
            })
            .unwrap_or_else(|_| Err(format!("loading {} panicked", path.display())))
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    /// Whether the onnxruntime library can be loaded, or why not.
    pub fn available() -> Result<(), String> {
        environment().map(|_| ())
    }

    /// Whether a library is configured (`ORT_DYLIB_PATH` names a file), or why not, without
    /// loading it (loading maps about 34 MiB into the process).
    pub fn configured() -> Result<(), String> {
        library_path().map(|_| ())
    }

    /// A file only this process uses, removed when dropped.
    struct ScratchFile(std::path::PathBuf);

    impl ScratchFile {
        fn new() -> ScratchFile {
            static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "trt-cpu-{}-{}.onnx",
                std::process::id(),
                COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            ScratchFile(path)
        }
    }

    impl Drop for ScratchFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// One model in an onnxruntime session, with the requested intermediate tensors made outputs.
    #[derive(Debug)]
    pub(crate) struct OrtModel {
        session: Mutex<Session>,
        outputs: Vec<String>,
    }

    impl OrtModel {
        /// `outputs`: graph outputs first, then intermediate tensors by name.
        pub(crate) fn new(
            mut proto: pb::ModelProto,
            outputs: &[String],
        ) -> Result<OrtModel, String> {
            use prost::Message;
            let env = environment()?;
            if let Some(g) = proto.graph.as_mut() {
                for name in outputs {
                    // A graph input asked for as an output (calibration observes inputs too) is
                    // answered from the call's own input, not by onnxruntime, which returns
                    // undefined values for it.
                    if g.input.iter().any(|i| &i.name == name) {
                        continue;
                    }
                    if !g.output.iter().any(|o| &o.name == name) {
                        g.output.push(pb::ValueInfoProto {
                            name: name.clone(),
                            ..Default::default()
                        });
                    }
                }
            }
            // onnxruntime reads the model from a private temporary file rather than from
            // memory, so our serialized copy is gone before it builds its own: one copy of
            // the weights fewer at the peak (measured on minilm, see BENCHMARKS.md).
            let file = ScratchFile::new();
            // `create_new`: never follow or reuse a file someone else put there.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&file.0)
                .and_then(|mut f| std::io::Write::write_all(&mut f, &proto.encode_to_vec()))
                .map_err(|e| format!("writing {}: {e}", file.0.display()))?;
            drop(proto);
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let session = Session::builder(env)
                .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::Level1)?))
                .and_then(|b| Ok(b.with_intra_threads(threads)?))
                .and_then(|mut b| b.commit_from_file(&file.0))
                .map_err(|e| format!("onnxruntime: {e}"))?;
            drop(file);
            Ok(OrtModel {
                session: Mutex::new(session),
                outputs: outputs.to_vec(),
            })
        }

        /// Runs one call; inputs by name, outputs in the order given to [`OrtModel::new`].
        pub(crate) fn run(&self, inputs: Vec<(String, Tensor)>) -> Result<Vec<Tensor>, String> {
            let mut values: Vec<(String, DynValue)> = Vec::with_capacity(inputs.len());
            for (name, t) in &inputs {
                values.push((
                    name.clone(),
                    to_ort(t).map_err(|e| format!("input '{name}': {e}"))?,
                ));
            }
            let given: Vec<(String, Tensor)> = inputs
                .into_iter()
                .filter(|(name, _)| self.outputs.contains(name))
                .collect();
            let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
            let out = session
                .run(values)
                .map_err(|e| format!("onnxruntime: {e}"))?;
            self.outputs
                .iter()
                .map(|name| {
                    if let Some((_, t)) = given.iter().find(|(n, _)| n == name) {
                        return Ok(t.clone());
                    }
                    let v = out
                        .get(name)
                        .ok_or_else(|| format!("onnxruntime returned no output '{name}'"))?;
                    from_ort(v).map_err(|e| format!("output '{name}': {e}"))
                })
                .collect()
        }
    }

    fn to_ort(t: &Tensor) -> Result<DynValue, String> {
        use tract_onnx::prelude::DatumType;
        let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        macro_rules! make {
            ($t:ty) => {
                OrtTensor::from_array((
                    shape.clone(),
                    t.to_plain_array_view::<$t>()
                        .map_err(|e| e.to_string())?
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>(),
                ))
                .map(|t| t.into_dyn())
                .map_err(|e| e.to_string())
            };
        }
        match t.datum_type() {
            DatumType::F32 => make!(f32),
            DatumType::F16 => make!(half::f16),
            DatumType::F64 => make!(f64),
            DatumType::I8 => make!(i8),
            DatumType::U8 => make!(u8),
            DatumType::I16 => make!(i16),
            DatumType::U16 => make!(u16),
            DatumType::I32 => make!(i32),
            DatumType::U32 => make!(u32),
            DatumType::I64 => make!(i64),
            DatumType::U64 => make!(u64),
            DatumType::Bool => make!(bool),
            other => Err(format!("element type {other:?} is not supported")),
        }
    }

    fn from_ort(v: &DynValue) -> Result<Tensor, String> {
        let ValueType::Tensor { ty, .. } = v.dtype() else {
            return Err("not a tensor".into());
        };
        macro_rules! take {
            ($t:ty) => {{
                let (shape, data) = v.try_extract_tensor::<$t>().map_err(|e| e.to_string())?;
                let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
                let array = nd::ArrayD::from_shape_vec(nd::IxDyn(&dims), data.to_vec())
                    .map_err(|e| e.to_string())?;
                Ok(Tensor::from(array))
            }};
        }
        match ty {
            TensorElementType::Float32 => take!(f32),
            TensorElementType::Float16 => take!(half::f16),
            TensorElementType::Float64 => take!(f64),
            TensorElementType::Int8 => take!(i8),
            TensorElementType::Uint8 => take!(u8),
            TensorElementType::Int16 => take!(i16),
            TensorElementType::Uint16 => take!(u16),
            TensorElementType::Int32 => take!(i32),
            TensorElementType::Uint32 => take!(u32),
            TensorElementType::Int64 => take!(i64),
            TensorElementType::Uint64 => take!(u64),
            TensorElementType::Bool => take!(bool),
            other => Err(format!("element type {other:?} is not supported")),
        }
    }
}

#[cfg(not(feature = "onnxruntime"))]
mod engine {
    use tract_onnx::pb;
    use tract_onnx::prelude::Tensor;

    /// Why onnxruntime cannot be used: this build left it out.
    pub fn available() -> Result<(), String> {
        Err(
            "this build of trt-cpu has no onnxruntime (enable its `onnxruntime` feature, \
             or trt-runtime's `cpu-onnxruntime`)"
                .into(),
        )
    }

    /// Why onnxruntime cannot be used: this build left it out.
    pub fn configured() -> Result<(), String> {
        available()
    }

    /// Never constructed: [`available`] always fails first.
    #[derive(Debug)]
    pub(crate) enum OrtModel {}

    impl OrtModel {
        pub(crate) fn new(_: pb::ModelProto, _: &[String]) -> Result<OrtModel, String> {
            Err(available().unwrap_err())
        }

        pub(crate) fn run(&self, _: Vec<(String, Tensor)>) -> Result<Vec<Tensor>, String> {
            match *self {}
        }
    }
}

pub(crate) use engine::OrtModel;
pub use engine::{available, configured};
