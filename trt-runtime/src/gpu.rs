//! The TensorRT backend: CUDA through `cudarc` (context, streams, device buffers), the engine
//! through `tensorrt-sys`. Each execution context has its own stream; a pool of them lets
//! several threads run one engine concurrently.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DriverError};
use tensorrt_sys::{Engine, IoMode, Library, Logger, Runtime, Severity};
use trt_manifest::{DType, Interface, Manifest, ProfileSpec, RangeSpec, TensorSpec};

use crate::error::{Error, ErrorCode, Result};

use crate::tensor::{Outputs, OwnedTensor, TensorRef};
use crate::validate::TensorMeta;

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

/// A CUDA failure, classified by its `CUresult` code; the driver error is kept as the source.
fn cuda_error(what: &str, e: DriverError) -> Error {
    use cudarc::driver::sys::CUresult as R;
    let code = match e.0 {
        R::CUDA_ERROR_OUT_OF_MEMORY => ErrorCode::OutOfDeviceMemory,
        R::CUDA_ERROR_NO_DEVICE | R::CUDA_ERROR_INVALID_DEVICE => ErrorCode::NoDevice,
        R::CUDA_ERROR_NOT_INITIALIZED
        | R::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
        | R::CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE => ErrorCode::NoCudaDriver,
        _ => ErrorCode::Cuda,
    };
    // `{:?}` of the code, not `Display`: cudarc formats an error by asking the driver library.
    Error::new(code, format!("{what}: {:?}", e.0)).with_source(e)
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
    let tensors = engine
        .io_tensors()?
        .into_iter()
        .map(|t| {
            let dtype = DType::from_name(t.data_type.name()).ok_or_else(|| {
                Error::new(
                    ErrorCode::ManifestMismatch,
                    format!(
                        "engine tensor '{}' has element type {}, which this runtime does not support",
                        t.name,
                        t.data_type.name()
                    ),
                )
            })?;
            Ok(TensorSpec {
                name: t.name,
                mode: if t.mode == IoMode::Input {
                    trt_manifest::Mode::Input
                } else {
                    trt_manifest::Mode::Output
                },
                dtype,
                dims: t.dims,
            })
        })
        .collect::<Result<Vec<TensorSpec>>>()?;
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

    fn release(&self, slot: Slot) {
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slot);
    }

    /// Copies a host tensor to the device (on the default stream, synchronised).
    pub(crate) fn upload(&self, t: &TensorRef<'_>) -> Result<DeviceTensor> {
        let stream = self.cuda.default_stream();
        let buffer = stream
            .clone_htod(&t.to_bytes())
            .map_err(|e| cuda_error("uploading a tensor", e))?;
        stream
            .synchronize()
            .map_err(|e| cuda_error("synchronising the upload", e))?;
        Ok(DeviceTensor {
            buffer,
            shape: t.shape().to_vec(),
            dtype: t.dtype(),
        })
    }

    /// Copies a device tensor to the host.
    pub(crate) fn download(&self, t: &DeviceTensor) -> Result<OwnedTensor> {
        let stream = self.cuda.default_stream();
        let bytes = stream
            .clone_dtoh(&t.buffer)
            .map_err(|e| cuda_error("downloading a tensor", e))?;
        let n = t.shape.iter().product::<usize>() * t.dtype.size();
        OwnedTensor::from_bytes(t.dtype, &t.shape, &bytes[..n.min(bytes.len())])
    }

    /// Selects the profile, sets every input shape, allocates the outputs, binds every
    /// address and enqueues on the slot's stream. Nothing is synchronised.
    fn launch(
        &self,
        slot: &mut Slot,
        profile: usize,
        inputs: &[(&str, &[usize], &CudaSlice<u8>)],
    ) -> Result<Vec<DeviceTensor>> {
        let stream = slot.stream.clone();
        let raw_stream = stream.cu_stream() as *mut c_void;
        if slot.profile != Some(profile) {
            // SAFETY: `raw_stream` is the slot's live stream on the engine's device.
            unsafe { slot.context.set_profile(profile, raw_stream)? };
            slot.profile = Some(profile);
        }
        for (name, shape, _) in inputs {
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            slot.context.set_input_shape(name, &dims)?;
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
            let size = spec.dtype.size();
            let bytes = shape.iter().product::<usize>() * size;
            let buffer = stream
                .alloc_zeros::<u8>(bytes.max(1))
                .map_err(|e| cuda_error(&format!("allocating output '{}'", spec.name), e))?;
            outputs.push((
                spec.name.clone(),
                DeviceTensor {
                    buffer,
                    shape,
                    dtype: spec.dtype,
                },
            ));
        }
        // cudarc's contract: a `SyncOnDrop` guard must live until the work that uses its
        // pointer is scheduled, so every guard is kept until after `enqueue`. Inputs are read
        // (`device_ptr`), outputs written (`device_ptr_mut`).
        let mut guards = Vec::with_capacity(inputs.len() + outputs.len());
        let mut addresses: Vec<(&str, u64)> = Vec::with_capacity(guards.capacity());
        for (name, _, buffer) in inputs {
            let (ptr, sync) = buffer.device_ptr(&stream);
            addresses.push((name, ptr));
            guards.push(sync);
        }
        for (name, t) in outputs.iter_mut() {
            let (ptr, sync) = t.buffer.device_ptr_mut(&stream);
            addresses.push((name.as_str(), ptr));
            guards.push(sync);
        }
        for (name, ptr) in addresses {
            // SAFETY: every buffer outlives the enqueued work: inputs are owned by the caller
            // (or the in-flight call) until the stream is synchronised, outputs are returned.
            // Sizes come from the tensors' current shapes and element types.
            unsafe { slot.context.set_tensor_address(name, ptr as *mut c_void)? };
        }
        // SAFETY: every I/O tensor is bound to a live buffer of the right size on `stream`.
        unsafe { slot.context.enqueue(raw_stream)? };
        drop(guards);
        Ok(outputs.into_iter().map(|(_, t)| t).collect())
    }

    /// Uploads host inputs and enqueues; [`InFlight::wait`] synchronises and downloads.
    pub(crate) fn enqueue(
        &self,
        profile: usize,
        inputs: &[(&str, TensorRef<'_>)],
    ) -> Result<InFlight<'_>> {
        let mut slot = self.slot()?;
        let mut uploaded = Vec::new();
        for (name, t) in inputs {
            let buffer = slot
                .stream
                .clone_htod(&t.to_bytes())
                .map_err(|e| cuda_error(&format!("uploading input '{name}'"), e))?;
            uploaded.push((name.to_string(), t.shape().to_vec(), buffer));
        }
        let views: Vec<(&str, &[usize], &CudaSlice<u8>)> = uploaded
            .iter()
            .map(|(n, s, b)| (n.as_str(), s.as_slice(), b))
            .collect();
        let outputs = self.launch(&mut slot, profile, &views)?;
        Ok(InFlight {
            backend: self,
            slot: Some(slot),
            inputs: uploaded,
            outputs,
        })
    }

    /// Runs with inputs already on the device (no copy) and keeps the outputs there.
    pub(crate) fn run_device(
        &self,
        profile: usize,
        inputs: &[(&str, &DeviceTensor)],
    ) -> Result<Vec<(String, DeviceTensor)>> {
        let mut slot = self.slot()?;
        let views: Vec<(&str, &[usize], &CudaSlice<u8>)> = inputs
            .iter()
            .map(|(n, t)| (*n, t.shape.as_slice(), &t.buffer))
            .collect();
        let outputs = self.launch(&mut slot, profile, &views)?;
        slot.stream
            .synchronize()
            .map_err(|e| cuda_error("synchronising the stream", e))?;
        self.release(slot);
        Ok(self
            .interface
            .outputs()
            .map(|s| s.name.clone())
            .zip(outputs)
            .collect())
    }
}

/// A tensor in the GPU's memory (TensorRT backend), with its shape and element type.
#[derive(Debug)]
pub struct DeviceTensor {
    buffer: CudaSlice<u8>,
    shape: Vec<usize>,
    dtype: DType,
}

impl DeviceTensor {
    /// Wraps a device buffer holding a row-major tensor.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::InvalidInput`] when the buffer is smaller than the shape needs.
    pub fn from_buffer(
        buffer: CudaSlice<u8>,
        dtype: DType,
        shape: Vec<usize>,
    ) -> Result<DeviceTensor> {
        let size = dtype.size();
        let needed = shape.iter().product::<usize>() * size;
        if buffer.len() < needed {
            return Err(Error::new(
                ErrorCode::InvalidInput,
                format!(
                    "a {dtype} tensor of shape {shape:?} needs {needed} bytes, the buffer has {}",
                    buffer.len()
                ),
            ));
        }
        Ok(DeviceTensor {
            buffer,
            shape,
            dtype,
        })
    }

    /// The device buffer.
    pub fn buffer(&self) -> &CudaSlice<u8> {
        &self.buffer
    }

    /// The device buffer, by value.
    pub fn into_buffer(self) -> CudaSlice<u8> {
        self.buffer
    }
}

impl TensorMeta for DeviceTensor {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}

/// A call enqueued on a context's stream, not yet synchronised.
pub(crate) struct InFlight<'a> {
    backend: &'a GpuBackend,
    slot: Option<Slot>,
    // Kept alive until the stream is synchronised.
    inputs: Vec<(String, Vec<usize>, CudaSlice<u8>)>,
    outputs: Vec<DeviceTensor>,
}

impl InFlight<'_> {
    /// Waits for the call and downloads its outputs.
    pub(crate) fn wait(mut self) -> Result<Outputs> {
        let slot = self.slot.take().expect("present until waited or dropped");
        let mut result = Vec::new();
        for (spec, t) in self.backend.interface.outputs().zip(&self.outputs) {
            let bytes = slot
                .stream
                .clone_dtoh(&t.buffer)
                .map_err(|e| cuda_error(&format!("downloading output '{}'", spec.name), e))?;
            let n = t.shape.iter().product::<usize>() * t.dtype.size();
            result.push((
                spec.name.clone(),
                OwnedTensor::from_bytes(t.dtype, &t.shape, &bytes[..n.min(bytes.len())])?,
            ));
        }
        slot.stream
            .synchronize()
            .map_err(|e| cuda_error("synchronising the stream", e))?;
        self.inputs.clear();
        self.backend.release(slot);
        Ok(Outputs::new(result))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // Not waited: finish the work before the buffers are freed; the context is only
        // reused if the stream synchronised cleanly.
        if let Some(slot) = self.slot.take()
            && slot.stream.synchronize().is_ok()
        {
            self.backend.release(slot);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use cudarc::driver::sys::CUresult;

    #[test]
    fn cuda_errors_are_classified_by_code_and_keep_their_source() {
        for (result, code) in [
            (
                CUresult::CUDA_ERROR_OUT_OF_MEMORY,
                ErrorCode::OutOfDeviceMemory,
            ),
            (CUresult::CUDA_ERROR_NO_DEVICE, ErrorCode::NoDevice),
            (
                CUresult::CUDA_ERROR_NOT_INITIALIZED,
                ErrorCode::NoCudaDriver,
            ),
            (CUresult::CUDA_ERROR_LAUNCH_FAILED, ErrorCode::Cuda),
        ] {
            let e = cuda_error("allocating x_hat", DriverError(result));
            assert_eq!(e.code(), code, "{result:?}");
            assert!(e.message().starts_with("allocating x_hat: "), "{e}");
            let source = std::error::Error::source(&e).expect("the driver error is kept");
            assert_eq!(
                source.downcast_ref::<DriverError>().map(|d| d.0),
                Some(result)
            );
        }
    }
}
