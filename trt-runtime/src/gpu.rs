//! The TensorRT backend: CUDA through `cudarc` (context, streams, device buffers), the engine
//! through `tensorrt-sys`. Each execution context has its own stream; a pool of them lets
//! several threads run one engine concurrently.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DriverError};
use tensorrt_sys::{Engine, IoMode, Library, Logger, Runtime, Severity};
use trt_manifest::{Interface, Manifest, ProfileSpec, RangeSpec, TensorSpec};

use crate::error::{Error, ErrorCode, Result};
use crate::tensor::{Outputs, OwnedTensor, TensorRef, dtype_size};

/// One execution context with its stream and the profile it is set to.
struct Slot {
    context: tensorrt_sys::Context,
    stream: Arc<CudaStream>,
    profile: Option<usize>,
}

/// A deserialized engine plus a pool of execution contexts.
pub(crate) struct GpuBackend {
    engine: Arc<Engine>,
    cuda: Arc<CudaContext>,
    pool: Mutex<Vec<Slot>>,
    interface: Interface,
    device: String,
}

impl std::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBackend")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

fn cuda_error(what: &str, e: DriverError) -> Error {
    let text = format!("{what}: {e:?}");
    let code = if text.contains("CUDA_ERROR_OUT_OF_MEMORY") {
        ErrorCode::OutOfDeviceMemory
    } else if text.contains("CUDA_ERROR_NO_DEVICE") {
        ErrorCode::NoDevice
    } else if text.contains("CUDA_ERROR_INSUFFICIENT_DRIVER")
        || text.contains("CUDA_ERROR_NOT_INITIALIZED")
    {
        ErrorCode::NoCudaDriver
    } else {
        ErrorCode::Cuda
    };
    Error::new(code, text)
}

/// Opens the CUDA driver and device 0 without panicking when the driver library is absent.
pub(crate) fn cuda_device() -> Result<Arc<CudaContext>> {
    // SAFETY: only probes whether the driver library can be opened.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Error::new(
            ErrorCode::NoCudaDriver,
            "no CUDA driver library (libcuda.so) on this machine",
        ));
    }
    CudaContext::new(0).map_err(|e| cuda_error("opening CUDA device 0", e))
}

/// The interface TensorRT reports for a deserialized engine, in the manifest's terms.
pub(crate) fn engine_interface(engine: &Engine, manifest: &Manifest) -> Result<Interface> {
    let tensors: Vec<TensorSpec> = engine
        .io_tensors()
        .into_iter()
        .map(|t| TensorSpec {
            name: t.name,
            mode: if t.mode == IoMode::Input {
                trt_manifest::Mode::Input
            } else {
                trt_manifest::Mode::Output
            },
            dtype: t.data_type.name().to_string(),
            dims: t.dims,
        })
        .collect();
    let mut profiles = Vec::new();
    for p in 0..engine.profile_count() {
        let mut spec = ProfileSpec { inputs: Vec::new() };
        for t in tensors
            .iter()
            .filter(|t| t.mode == trt_manifest::Mode::Input)
        {
            let d = engine.profile_dims(&t.name, p)?;
            spec.inputs.push(RangeSpec {
                name: t.name.clone(),
                min: d.min,
                opt: d.opt,
                max: d.max,
            });
        }
        profiles.push(spec);
    }
    let _ = manifest;
    Ok(Interface { tensors, profiles })
}

impl GpuBackend {
    /// Deserializes `engine` and proves it matches `manifest`.
    pub(crate) fn new(bytes: &[u8], manifest: &Manifest) -> Result<GpuBackend> {
        let library = Library::load()?;
        let cuda = cuda_device()?;
        let (major, minor) = cuda
            .compute_capability()
            .map_err(|e| cuda_error("reading the compute capability", e))?;
        let device = format!(
            "{} (compute capability {major}.{minor})",
            cuda.name().unwrap_or_default()
        );
        let logger = Logger::new(Severity::WARNING, |severity, message| match severity {
            s if s <= Severity::ERROR => log::error!("TensorRT: {message}"),
            _ => log::warn!("TensorRT: {message}"),
        })?;
        let runtime = Runtime::new(&library, &logger)?;
        let engine = runtime.deserialize(bytes).map_err(|e| {
            let err = Error::from(e);
            match err.code() {
                ErrorCode::TensorRt => Error::new(
                    ErrorCode::CorruptEngine,
                    format!(
                        "TensorRT could not deserialize the engine of `{}` on {device}: {}",
                        manifest.name,
                        err.message()
                    ),
                ),
                code => Error::new(
                    code,
                    format!("`{}` on {device}: {}", manifest.name, err.message()),
                ),
            }
        })?;
        let interface = engine_interface(&engine, manifest)?;
        check_interface(manifest, &interface)?;
        Ok(GpuBackend {
            engine,
            cuda,
            pool: Mutex::new(Vec::new()),
            interface,
            device,
        })
    }

    /// Device description.
    pub(crate) fn device(&self) -> &str {
        &self.device
    }

    fn slot(&self) -> Result<Slot> {
        if let Some(slot) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(slot);
        }
        let stream = self
            .cuda
            .new_stream()
            .map_err(|e| cuda_error("creating a stream", e))?;
        Ok(Slot {
            context: self.engine.context()?,
            stream,
            profile: None,
        })
    }

    /// Runs on an execution context from the pool: uploads inputs, sets shapes and addresses,
    /// enqueues, downloads outputs and synchronises the context's stream.
    pub(crate) fn run(&self, profile: usize, inputs: &[(&str, TensorRef<'_>)]) -> Result<Outputs> {
        let mut slot = self.slot()?;
        let result = self.run_on(&mut slot, profile, inputs);
        if result.is_ok() {
            self.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(slot);
        }
        result
    }

    fn run_on(
        &self,
        slot: &mut Slot,
        profile: usize,
        inputs: &[(&str, TensorRef<'_>)],
    ) -> Result<Outputs> {
        let stream = slot.stream.clone();
        let raw_stream = stream.cu_stream() as *mut c_void;
        if slot.profile != Some(profile) {
            // SAFETY: `raw_stream` is the slot's live stream on the engine's device.
            unsafe { slot.context.set_profile(profile, raw_stream)? };
            slot.profile = Some(profile);
        }
        let mut buffers: Vec<(String, CudaSlice<u8>)> = Vec::new();
        for (name, t) in inputs {
            let dims: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
            slot.context.set_input_shape(name, &dims)?;
            let bytes = t.to_bytes();
            let buf = stream
                .clone_htod(&bytes)
                .map_err(|e| cuda_error(&format!("uploading input '{name}'"), e))?;
            buffers.push((name.to_string(), buf));
        }
        let mut outputs = Vec::new();
        for spec in self.interface.outputs() {
            let dims = slot.context.tensor_shape(&spec.name)?;
            if dims.iter().any(|&d| d < 0) {
                return Err(Error::new(
                    ErrorCode::TensorRt,
                    format!("output '{}' shape is unresolved: {dims:?}", spec.name),
                ));
            }
            let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            let size = dtype_size(&spec.dtype).ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidOutput,
                    format!("output '{}' has unsupported type {}", spec.name, spec.dtype),
                )
            })?;
            let n: usize = shape.iter().product::<usize>() * size;
            let buf = stream
                .alloc_zeros::<u8>(n.max(1))
                .map_err(|e| cuda_error(&format!("allocating output '{}'", spec.name), e))?;
            buffers.push((spec.name.clone(), buf));
            outputs.push((spec.name.clone(), spec.dtype.clone(), shape));
        }
        for (name, buf) in &buffers {
            let (ptr, _sync) = buf.device_ptr(&stream);
            // SAFETY: the buffer lives in `buffers` until after the stream is synchronised
            // below, and was sized from the tensor's current shape and element type.
            unsafe { slot.context.set_tensor_address(name, ptr as *mut c_void)? };
        }
        // SAFETY: every I/O tensor is bound to a live buffer of the right size on `stream`.
        unsafe { slot.context.enqueue(raw_stream)? };
        let mut result = Vec::new();
        for (name, dtype, shape) in outputs {
            let buf = &buffers
                .iter()
                .find(|(n, _)| *n == name)
                .expect("allocated above")
                .1;
            let mut bytes = stream
                .clone_dtoh(buf)
                .map_err(|e| cuda_error(&format!("downloading output '{name}'"), e))?;
            bytes.truncate(shape.iter().product::<usize>() * dtype_size(&dtype).unwrap_or(1));
            result.push((name, OwnedTensor::from_bytes(&dtype, &shape, &bytes)?));
        }
        stream
            .synchronize()
            .map_err(|e| cuda_error("synchronising the stream", e))?;
        drop(buffers);
        Ok(Outputs::new(result))
    }
}

/// Fails with every difference when the engine does not match the manifest.
pub(crate) fn check_interface(manifest: &Manifest, actual: &Interface) -> Result<()> {
    let differences = manifest.interface.differences(actual);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::ManifestMismatch,
            format!(
                "the engine of `{}` does not match the bindings generated at build time:\n  - {}",
                manifest.name,
                differences.join("\n  - ")
            ),
        ))
    }
}
