//! The TensorRT backend: CUDA through `cudarc` (context, streams, device buffers), the engine
//! through `tensorrt-sys`. Each execution context has its own stream; a pool of them lets
//! several threads run one engine concurrently.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use tensorrt_sys::{
    Diagnostics, Engine, EngineValidity, IoMode, Library, Logger, Runtime, Severity,
};
use trt_manifest::{Interface, Manifest, ProfileSpec, RangeSpec, ShapeRange, TensorSpec};

use crate::device::{Device, DeviceTensor, cuda_error};
use crate::error::{Error, ErrorCode, Result};
use crate::tensor::{Outputs, OwnedTensor, TensorRef};

/// One execution context with its stream and the profile it is set to.
struct Slot {
    context: tensorrt_sys::Context,
    stream: Arc<CudaStream>,
    profile: Option<usize>,
}

/// A deserialized engine plus a pool of execution contexts.
pub(crate) struct GpuBackend {
    engine: Arc<Engine>,
    device: Device,
    pool: Mutex<Vec<Slot>>,
    interface: Interface,
}

impl std::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBackend")
            .field("device", &self.device.description())
            .finish_non_exhaustive()
    }
}

/// The interface TensorRT reports for a deserialized engine, in the manifest's terms.
pub(crate) fn engine_interface(engine: &Engine, manifest: &Manifest) -> Result<Interface> {
    let tensors = engine
        .io_tensors()?
        .into_iter()
        .map(|t| {
            let mode = if t.mode == IoMode::Input {
                trt_manifest::Mode::Input
            } else {
                trt_manifest::Mode::Output
            };
            TensorSpec::from_tensorrt(t.name, mode, t.data_type.name(), t.dims)
                .map_err(|m| Error::new(ErrorCode::ManifestMismatch, format!("the engine's {m}")))
        })
        .collect::<Result<Vec<TensorSpec>>>()?;
    let mut profiles = Vec::new();
    for p in 0..engine.profile_count() {
        let mut spec = ProfileSpec { inputs: Vec::new() };
        for t in tensors
            .iter()
            .filter(|t| t.mode == trt_manifest::Mode::Input)
        {
            let [min, opt, max] = engine.profile_dims(&t.name, p)?;
            spec.inputs.push(RangeSpec {
                name: t.name.clone(),
                range: ShapeRange::new(min, opt, max),
            });
        }
        profiles.push(spec);
    }
    let _ = manifest;
    Ok(Interface { tensors, profiles })
}

/// The runtime's code for TensorRT-RTX's reasons, most specific first.
fn invalid_engine_code(why: Diagnostics) -> ErrorCode {
    if why.unsupported_compute_capability() {
        ErrorCode::UnsupportedGpu
    } else if why.cuda_too_old_or_broken() {
        ErrorCode::NoCudaDriver
    } else if why.insufficient_gpu_memory() {
        ErrorCode::OutOfDeviceMemory
    } else if why.version_mismatch() {
        ErrorCode::VersionMismatch
    } else {
        ErrorCode::CorruptEngine
    }
}

impl GpuBackend {
    /// Deserializes `engine` and proves it matches `manifest`.
    pub(crate) fn new(bytes: &[u8], manifest: &Manifest) -> Result<GpuBackend> {
        let library = Library::load()?;
        let cuda = Device::open(0)?;
        let device = cuda.description().to_string();
        let logger = Logger::new(Severity::WARNING, |severity, message| match severity {
            s if s <= Severity::ERROR => log::error!("TensorRT: {message}"),
            _ => log::warn!("TensorRT: {message}"),
        })?;
        let runtime = Runtime::new(&library, &logger)?;
        match runtime.engine_validity(bytes) {
            // Without a reason (no CUDA context, seen on CPU-only machines) deserializing
            // decides.
            Ok(EngineValidity::Invalid(why)) if why.bits() != 0 => {
                return Err(Error::new(
                    invalid_engine_code(why),
                    format!(
                        "the engine of `{}` cannot run on {device}: {why} (TensorRT-RTX's engine check)",
                        manifest.name
                    ),
                ));
            }
            Ok(_) => {}
            // Full TensorRT has no header check; deserializing decides.
            Err(e) if e.kind() == tensorrt_sys::ErrorKind::Unsupported => {}
            Err(e) => return Err(e.into()),
        }
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
            device: cuda,
            pool: Mutex::new(Vec::new()),
            interface,
        })
    }

    /// Device description.
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    fn slot(&self) -> Result<Slot> {
        if let Some(slot) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(slot);
        }
        let stream = self.device.stream()?;
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
