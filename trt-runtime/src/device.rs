//! The CUDA device through `cudarc`: opening it, a pool of streams, device tensors, uploads
//! and downloads, and CUDA failures classified by their `CUresult` code. The TensorRT backend
//! runs on it; nothing here needs TensorRT, so every path in this file can be checked on any
//! CUDA GPU (`examples/02-gpu-checks.rs`).

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DriverError};
use trt_manifest::DType;

use crate::error::{Error, ErrorCode, Result};
use crate::tensor::{OwnedTensor, TensorRef};
use crate::validate::TensorMeta;

/// A CUDA failure, classified by its `CUresult` code; the driver error is kept as the source.
pub(crate) fn cuda_error(what: &str, e: DriverError) -> Error {
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

/// A CUDA device with a pool of streams: each upload, download or engine call takes a
/// stream of its own, so calls from several threads overlap instead of queueing on the
/// default stream.
pub struct Device {
    cuda: Arc<CudaContext>,
    description: String,
    compute_capability: (i32, i32),
    streams: Mutex<Vec<Arc<CudaStream>>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Opens CUDA device `ordinal` without panicking when the driver library is absent.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::NoCudaDriver`] without a driver, [`ErrorCode::NoDevice`] without that
    /// device, [`ErrorCode::Cuda`] for other driver failures (the `CUresult` is the source).
    pub fn open(ordinal: usize) -> Result<Device> {
        // SAFETY: only probes whether the driver library can be opened.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::new(
                ErrorCode::NoCudaDriver,
                "no CUDA driver library (libcuda.so) on this machine",
            ));
        }
        let cuda = CudaContext::new(ordinal)
            .map_err(|e| cuda_error(&format!("opening CUDA device {ordinal}"), e))?;
        let compute_capability = cuda
            .compute_capability()
            .map_err(|e| cuda_error("reading the compute capability", e))?;
        let (major, minor) = compute_capability;
        let description = format!(
            "{} (compute capability {major}.{minor})",
            cuda.name().unwrap_or_default()
        );
        Ok(Device {
            cuda,
            description,
            compute_capability,
            streams: Mutex::new(Vec::new()),
        })
    }

    /// Name and compute capability, e.g. `NVIDIA H100 80GB HBM3 (compute capability 9.0)`.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// (major, minor) compute capability.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// The `cudarc` context, for buffers made outside this crate ([`DeviceTensor::from_buffer`]).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.cuda
    }

    /// A stream from the pool, or a new one when all are taken.
    pub(crate) fn stream(&self) -> Result<Arc<CudaStream>> {
        if let Some(s) = self.streams.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(s);
        }
        self.cuda
            .new_stream()
            .map_err(|e| cuda_error("creating a stream", e))
    }

    /// Returns a stream whose work is finished to the pool.
    pub(crate) fn release(&self, stream: Arc<CudaStream>) {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stream);
    }

    /// Streams in the pool now (the most that were ever in use at once, minus those in use).
    pub fn pooled_streams(&self) -> usize {
        self.streams.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A zeroed device tensor.
    ///
    /// # Errors
    ///
    /// [`ErrorCode::OutOfDeviceMemory`] when the device has too little free memory.
    pub fn alloc(&self, dtype: DType, shape: &[usize]) -> Result<DeviceTensor> {
        let stream = self.stream()?;
        let bytes = shape.iter().product::<usize>() * dtype.size();
        let buffer = stream.alloc_zeros::<u8>(bytes.max(1)).map_err(|e| {
            cuda_error(
                &format!("allocating {bytes} bytes for a {dtype} tensor of shape {shape:?}"),
                e,
            )
        })?;
        self.finish(stream, "allocating")?;
        Ok(DeviceTensor {
            buffer,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// Copies a host tensor to the device (on a pooled stream, synchronised).
    ///
    /// # Errors
    ///
    /// [`ErrorCode::OutOfDeviceMemory`] or [`ErrorCode::Cuda`] from the driver.
    pub fn upload(&self, t: &TensorRef<'_>) -> Result<DeviceTensor> {
        let stream = self.stream()?;
        let buffer = stream
            .clone_htod(&t.to_bytes())
            .map_err(|e| cuda_error("uploading a tensor", e))?;
        self.finish(stream, "uploading")?;
        Ok(DeviceTensor {
            buffer,
            shape: t.shape().to_vec(),
            dtype: t.dtype(),
        })
    }

    /// Copies a device tensor to the host (on a pooled stream, synchronised).
    ///
    /// # Errors
    ///
    /// [`ErrorCode::Cuda`] from the driver.
    pub fn download(&self, t: &DeviceTensor) -> Result<OwnedTensor> {
        let stream = self.stream()?;
        let bytes = stream
            .clone_dtoh(&t.buffer)
            .map_err(|e| cuda_error("downloading a tensor", e))?;
        self.finish(stream, "downloading")?;
        let n = t.shape.iter().product::<usize>() * t.dtype.size();
        OwnedTensor::from_bytes(t.dtype, &t.shape, &bytes[..n.min(bytes.len())])
    }

    /// Copies a device tensor into a new one on the device, on a pooled stream (cudarc
    /// orders it after the work that wrote `t`, on whichever stream that ran).
    ///
    /// # Errors
    ///
    /// [`ErrorCode::OutOfDeviceMemory`] or [`ErrorCode::Cuda`] from the driver.
    pub fn copy(&self, t: &DeviceTensor) -> Result<DeviceTensor> {
        let stream = self.stream()?;
        let buffer = stream
            .clone_dtod(&t.buffer)
            .map_err(|e| cuda_error("copying a device tensor", e))?;
        self.finish(stream, "copying")?;
        Ok(DeviceTensor {
            buffer,
            shape: t.shape.clone(),
            dtype: t.dtype,
        })
    }

    /// Synchronises `stream` and returns it to the pool (a stream that failed is dropped).
    fn finish(&self, stream: Arc<CudaStream>, what: &str) -> Result<()> {
        stream
            .synchronize()
            .map_err(|e| cuda_error(&format!("synchronising after {what}"), e))?;
        self.release(stream);
        Ok(())
    }
}

/// A tensor in the GPU's memory, with its shape and element type.
#[derive(Debug)]
pub struct DeviceTensor {
    pub(crate) buffer: CudaSlice<u8>,
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
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
