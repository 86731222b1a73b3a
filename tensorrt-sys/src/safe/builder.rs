//! The builder: networks, profiles and configs, and serialized engines.

use std::ffi::c_void;
use std::fmt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;

use super::*;
use crate::error::{Error, ErrorKind, Result};
use crate::ffi;
use crate::loader::Library;
use crate::result::{self, StatusExt};

/// Makes networks, profiles and configs, and builds serialized engines.
pub struct Builder {
    pub(super) raw: NonNull<ffi::trt_builder>,
    pub(super) logger: Arc<Logger>,
    pub(super) _library: Arc<Library>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder").finish_non_exhaustive()
    }
}

// SAFETY: an `IBuilder` is not tied to the thread that created it; `Builder` is `Send` but
// not `Sync`, so it is used by one thread at a time, and the entry points and logger it refers
// to are kept alive by the `Arc`s it holds.
unsafe impl Send for Builder {}

impl Builder {
    /// Creates a builder.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if TensorRT refuses to create one.
    pub fn new(library: &Arc<Library>, logger: &Arc<Logger>) -> Result<Builder> {
        let raw = result::create("createInferBuilder", |out| {
            // SAFETY: `library.api` holds valid entry points for as long as `library` lives,
            // which the builder keeps alive; the logger likewise.
            let status = unsafe { ffi::trt_builder_create(&library.api, logger.raw.as_ptr(), out) };
            logger.resume_panic();
            status
        })?;
        Ok(Builder {
            raw,
            logger: logger.clone(),
            _library: library.clone(),
        })
    }

    /// Parses ONNX bytes into a network (strongly typed where the flavor allows a choice).
    /// `model_path` locates external weight files.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Parse`] with every parser error ([`Error::parser_errors`]) naming the node
    /// index, name and operator; [`ErrorKind::LibraryNotFound`] without the parser library.
    pub fn network_from_onnx(&self, onnx: &[u8], model_path: Option<&Path>) -> Result<Network<'_>> {
        self._library.require_parser()?;
        let path = model_path
            .map(|p| cstring("model path", &p.to_string_lossy()))
            .transpose()?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: `onnx` is valid for `len` bytes during the call; `path` outlives the call.
        let status = unsafe {
            ffi::trt_network_from_onnx(
                self.raw.as_ptr(),
                onnx.as_ptr() as *const c_void,
                onnx.len(),
                path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                true,
                &mut raw,
            )
        };
        self.logger.resume_panic();
        let network = NonNull::new(raw).map(|raw| Network {
            raw,
            _builder: self,
        });
        match status.result() {
            Ok(()) => network
                .ok_or_else(|| Error::new(ErrorKind::TensorRt, "the parser returned no network")),
            Err(e) if e.kind() == ErrorKind::Parse => {
                let errors = network
                    .as_ref()
                    .map(Network::parser_errors)
                    .unwrap_or_default();
                Err(e.with_parser_errors(errors))
            }
            Err(e) => Err(e),
        }
    }

    /// Creates an optimization profile.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if TensorRT refuses.
    pub fn profile(&self) -> Result<OptimizationProfile<'_>> {
        // SAFETY: valid builder; the profile is owned by the builder and outlived by it
        // (`OptimizationProfile` borrows the builder).
        let raw = result::create("createOptimizationProfile", |out| unsafe {
            ffi::trt_profile_create(self.raw.as_ptr(), out)
        })?;
        Ok(OptimizationProfile {
            raw,
            _builder: self,
        })
    }

    /// Creates a builder configuration.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if TensorRT refuses.
    pub fn config(&self) -> Result<Config<'_>> {
        // SAFETY: valid builder.
        let raw = result::create("createBuilderConfig", |out| unsafe {
            ffi::trt_config_create(self.raw.as_ptr(), out)
        })?;
        Ok(Config {
            raw,
            _builder: self,
            progress: None,
        })
    }

    /// Builds and serializes an engine.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] with TensorRT's logged errors.
    pub fn build_serialized(&self, network: &Network<'_>, config: &Config<'_>) -> Result<Vec<u8>> {
        result::host_memory("buildSerializedNetwork", |out| {
            // SAFETY: all three handles are alive and belong to this builder.
            let status = unsafe {
                ffi::trt_builder_build_serialized(
                    self.raw.as_ptr(),
                    network.raw.as_ptr(),
                    config.raw.as_ptr(),
                    out,
                )
            };
            self.logger.resume_panic();
            if let Some(progress) = &config.progress {
                progress.resume_panic();
            }
            status
        })
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        // SAFETY: networks, profiles and configs borrow the builder, so none outlives it.
        unsafe { ffi::trt_builder_destroy(self.raw.as_ptr()) }
    }
}
