//! Owning, safe handles over the shim. Every handle is `NonNull`, destroyed in `Drop`, and keeps
//! its parent alive through an `Arc` (a network needs its builder, an engine its runtime).

use std::any::Any;
use std::ffi::{CStr, CString, c_char, c_void};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, ParserError, Result, StatusExt};
use crate::ffi;
use crate::loader::Library;

/// Severity of a TensorRT log message (`nvinfer1::ILogger::Severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Severity(pub i32);

impl Severity {
    /// Internal error: TensorRT is in an unrecoverable state.
    pub const INTERNAL_ERROR: Severity = Severity(0);
    /// Error.
    pub const ERROR: Severity = Severity(1);
    /// Warning.
    pub const WARNING: Severity = Severity(2);
    /// Information.
    pub const INFO: Severity = Severity(3);
    /// Verbose.
    pub const VERBOSE: Severity = Severity(4);
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            0 => "internal error",
            1 => "error",
            2 => "warning",
            3 => "info",
            4 => "verbose",
            _ => "unknown",
        })
    }
}

type LogFn = dyn Fn(Severity, &str) + Send + Sync;

struct LoggerState {
    callback: Box<LogFn>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// Receives TensorRT's log messages. A panic in the callback is caught at the C boundary and
/// resumed when the TensorRT call that logged returns (git2's `panic::wrap`).
pub struct Logger {
    raw: NonNull<ffi::trt_logger>,
    // Boxed so that its address, handed to C, is stable.
    state: Box<LoggerState>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger").finish_non_exhaustive()
    }
}

// SAFETY: the C++ logger only forwards to `state.callback`, which is `Send + Sync`; the panic
// slot is behind a mutex. TensorRT may log from several threads at once.
unsafe impl Send for Logger {}
// SAFETY: as above.
unsafe impl Sync for Logger {}

unsafe extern "C" fn log_trampoline(user: *mut c_void, severity: i32, message: *const c_char) {
    // SAFETY: `user` is the `LoggerState` boxed in `Logger`, alive as long as the C++ logger.
    let state = unsafe { &*(user as *const LoggerState) };
    // SAFETY: the shim passes a NUL-terminated string valid for this call.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
        (state.callback)(Severity(severity), &text)
    })) {
        let mut slot = state.panic.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(payload);
    }
}

impl Logger {
    /// Creates a logger that passes every message at `max_severity` or more severe to `callback`.
    ///
    /// # Errors
    ///
    /// Only if the shim cannot allocate.
    pub fn new(
        max_severity: Severity,
        callback: impl Fn(Severity, &str) + Send + Sync + 'static,
    ) -> Result<Arc<Logger>> {
        let state = Box::new(LoggerState {
            callback: Box::new(callback),
            panic: Mutex::new(None),
        });
        let mut raw = std::ptr::null_mut();
        // SAFETY: the trampoline matches `trt_log_fn`; `state` outlives the C++ logger because
        // both are owned by the returned `Logger`, which destroys the C++ side first.
        unsafe {
            ffi::trt_logger_create(
                Some(log_trampoline),
                &*state as *const LoggerState as *mut c_void,
                max_severity.0,
                &mut raw,
            )
        }
        .result()?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::TensorRt, "trt_logger_create returned null"))?;
        Ok(Arc::new(Logger { raw, state }))
    }

    /// Resumes a panic the callback raised during the last TensorRT call, if any.
    fn resume_panic(&self) {
        let payload = self
            .state
            .panic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(payload) = payload {
            resume_unwind(payload);
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `trt_logger_create`; every object using it holds an `Arc` to
        // this logger, so none is alive any more.
        unsafe { ffi::trt_logger_destroy(self.raw.as_ptr()) }
    }
}

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

/// A shape; `-1` marks a dynamic dimension.
pub type Dims = Vec<i64>;

fn to_ffi_dims(dims: &[i64]) -> Result<ffi::trt_dims> {
    let max = ffi::TRT_MAX_DIMS as usize;
    if dims.len() > max {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("rank {} exceeds TensorRT's maximum of {max}", dims.len()),
        ));
    }
    let mut out = ffi::trt_dims {
        nb_dims: dims.len() as i32,
        d: [0; ffi::TRT_MAX_DIMS as usize],
    };
    out.d[..dims.len()].copy_from_slice(dims);
    Ok(out)
}

fn from_ffi_dims(dims: &ffi::trt_dims) -> Dims {
    let n = dims.nb_dims.clamp(0, ffi::TRT_MAX_DIMS as i32) as usize;
    dims.d[..n].to_vec()
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} '{s}' contains a NUL byte"),
        )
    })
}

/// # Safety
///
/// `p` must be null or a NUL-terminated string valid for the call.
unsafe fn owned_str(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: forwarded to the caller.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Copies and frees a `trt_host_memory`.
///
/// # Safety
///
/// `raw` must come from the shim and not be used afterwards.
unsafe fn take_host_memory(raw: *mut ffi::trt_host_memory) -> Vec<u8> {
    // SAFETY: per the contract, `raw` is a live host memory object.
    let bytes = unsafe {
        let data = ffi::trt_host_memory_data(raw) as *const u8;
        let size = ffi::trt_host_memory_size(raw);
        if data.is_null() || size == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(data, size).to_vec()
        }
    };
    // SAFETY: destroyed exactly once.
    unsafe { ffi::trt_host_memory_destroy(raw) };
    bytes
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

/// Makes networks, profiles and configs, and builds serialized engines.
pub struct Builder {
    raw: NonNull<ffi::trt_builder>,
    logger: Arc<Logger>,
    _library: Arc<Library>,
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
        let mut raw = std::ptr::null_mut();
        // SAFETY: `library.api` holds valid entry points for as long as `library` lives, which
        // the builder keeps alive; the logger likewise.
        let status =
            unsafe { ffi::trt_builder_create(&library.api, logger.raw.as_ptr(), &mut raw) };
        logger.resume_panic();
        status.result()?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::TensorRt, "createInferBuilder returned null"))?;
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
    pub fn profile(&self) -> Result<Profile<'_>> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid builder; the profile is owned by the builder and outlived by it
        // (`Profile` borrows the builder).
        unsafe { ffi::trt_profile_create(self.raw.as_ptr(), &mut raw) }.result()?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::TensorRt, "null optimization profile"))?;
        Ok(Profile {
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
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid builder.
        unsafe { ffi::trt_config_create(self.raw.as_ptr(), &mut raw) }.result()?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::TensorRt, "null builder config"))?;
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
        let mut raw = std::ptr::null_mut();
        // SAFETY: all three handles are alive and belong to this builder.
        let status = unsafe {
            ffi::trt_builder_build_serialized(
                self.raw.as_ptr(),
                network.raw.as_ptr(),
                config.raw.as_ptr(),
                &mut raw,
            )
        };
        self.logger.resume_panic();
        if let Some(progress) = &config.progress {
            progress.resume_panic();
        }
        status.result()?;
        // SAFETY: `raw` is a fresh host memory object, consumed once.
        Ok(unsafe { take_host_memory(raw) })
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        // SAFETY: networks, profiles and configs borrow the builder, so none outlives it.
        unsafe { ffi::trt_builder_destroy(self.raw.as_ptr()) }
    }
}

/// A network parsed from ONNX.
pub struct Network<'b> {
    raw: NonNull<ffi::trt_network>,
    _builder: &'b Builder,
}

impl fmt::Debug for Network<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("inputs", &self.inputs())
            .field("outputs", &self.outputs())
            .finish()
    }
}

impl Network<'_> {
    fn parser_errors(&self) -> Vec<ParserError> {
        // SAFETY: valid network.
        let n = unsafe { ffi::trt_network_parser_error_count(self.raw.as_ptr()) };
        let mut out = Vec::new();
        for i in 0..n {
            let mut e = std::mem::MaybeUninit::<ffi::trt_parser_error>::zeroed();
            // SAFETY: index in range; strings in `e` live as long as the network and are copied.
            unsafe {
                if ffi::trt_network_parser_error(self.raw.as_ptr(), i, e.as_mut_ptr())
                    .result()
                    .is_err()
                {
                    continue;
                }
                let e = e.assume_init();
                out.push(ParserError {
                    code: e.code,
                    node: usize::try_from(e.node).ok(),
                    node_name: owned_str(e.node_name),
                    node_operator: owned_str(e.node_operator),
                    description: owned_str(e.desc),
                });
            }
        }
        out
    }

    fn tensors(&self, inputs: bool) -> Vec<TensorDesc> {
        // SAFETY: valid network.
        let n = unsafe {
            if inputs {
                ffi::trt_network_input_count(self.raw.as_ptr())
            } else {
                ffi::trt_network_output_count(self.raw.as_ptr())
            }
        };
        (0..n)
            .filter_map(|i| {
                let mut name = std::ptr::null();
                let mut dims = std::mem::MaybeUninit::<ffi::trt_dims>::zeroed();
                let mut dtype = 0;
                // SAFETY: index in range; out-params valid; name copied before the next call.
                unsafe {
                    ffi::trt_network_tensor(
                        self.raw.as_ptr(),
                        inputs,
                        i,
                        &mut name,
                        dims.as_mut_ptr(),
                        &mut dtype,
                    )
                    .result()
                    .ok()?;
                    Some(TensorDesc {
                        name: owned_str(name),
                        dims: from_ffi_dims(&dims.assume_init()),
                        data_type: DataType(dtype),
                    })
                }
            })
            .collect()
    }

    /// The network's inputs.
    pub fn inputs(&self) -> Vec<TensorDesc> {
        self.tensors(true)
    }

    /// The network's outputs.
    pub fn outputs(&self) -> Vec<TensorDesc> {
        self.tensors(false)
    }
}

impl Drop for Network<'_> {
    fn drop(&mut self) {
        // SAFETY: created by the shim, destroyed once.
        unsafe { ffi::trt_network_destroy(self.raw.as_ptr()) }
    }
}

/// An optimization profile: min/opt/max shapes for every dynamic input.
pub struct Profile<'b> {
    raw: NonNull<ffi::trt_profile>,
    _builder: &'b Builder,
}

impl fmt::Debug for Profile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile").finish_non_exhaustive()
    }
}

impl Profile<'_> {
    /// Sets min, opt and max of input `name`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if TensorRT rejects a bound (e.g. negative extents).
    pub fn set(&mut self, name: &str, min: &[i64], opt: &[i64], max: &[i64]) -> Result<&mut Self> {
        let cname = cstring("input name", name)?;
        for (which, dims) in [
            (ffi::TRT_PROFILE_MIN, min),
            (ffi::TRT_PROFILE_OPT, opt),
            (ffi::TRT_PROFILE_MAX, max),
        ] {
            let dims = to_ffi_dims(dims)?;
            // SAFETY: valid profile, NUL-terminated name, valid dims.
            unsafe {
                ffi::trt_profile_set_dims(self.raw.as_ptr(), cname.as_ptr(), which as i32, &dims)
            }
            .result()?;
        }
        Ok(self)
    }
}

impl Drop for Profile<'_> {
    fn drop(&mut self) {
        // SAFETY: frees the shim's handle once; the IOptimizationProfile stays with the builder.
        unsafe { ffi::trt_profile_destroy(self.raw.as_ptr()) }
    }
}

/// Receives the engine build's progress (`nvinfer1::IProgressMonitor`).
pub trait ProgressMonitor: Send {
    /// A phase starts (`parent` is the enclosing phase).
    fn phase_start(&mut self, phase: &str, parent: Option<&str>, steps: i32);
    /// A step finished; return `false` to cancel the build.
    fn step_complete(&mut self, phase: &str, step: i32) -> bool;
    /// A phase finished.
    fn phase_finish(&mut self, phase: &str);
}

struct ProgressState {
    monitor: Mutex<Box<dyn ProgressMonitor>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl ProgressState {
    fn call(&self, f: impl FnOnce(&mut dyn ProgressMonitor) -> bool) -> bool {
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut m = self.monitor.lock().unwrap_or_else(|e| e.into_inner());
            f(m.as_mut())
        }));
        match result {
            Ok(keep_going) => keep_going,
            Err(payload) => {
                self.panic
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(payload);
                false
            }
        }
    }

    fn resume_panic(&self) {
        let payload = self.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(payload) = payload {
            resume_unwind(payload);
        }
    }
}

/// # Safety (all three trampolines)
///
/// `user` is the `ProgressState` boxed in the `Config`; strings are valid for the call.
unsafe extern "C" fn progress_start(
    user: *mut c_void,
    phase: *const c_char,
    parent: *const c_char,
    steps: i32,
) {
    // SAFETY: see above.
    let (state, phase, parent) = unsafe {
        (
            &*(user as *const ProgressState),
            owned_str(phase),
            (!parent.is_null()).then(|| owned_str(parent)),
        )
    };
    state.call(|m| {
        m.phase_start(&phase, parent.as_deref(), steps);
        true
    });
}

unsafe extern "C" fn progress_step(user: *mut c_void, phase: *const c_char, step: i32) -> bool {
    // SAFETY: see `progress_start`.
    let (state, phase) = unsafe { (&*(user as *const ProgressState), owned_str(phase)) };
    state.call(|m| m.step_complete(&phase, step))
}

unsafe extern "C" fn progress_finish(user: *mut c_void, phase: *const c_char) {
    // SAFETY: see `progress_start`.
    let (state, phase) = unsafe { (&*(user as *const ProgressState), owned_str(phase)) };
    state.call(|m| {
        m.phase_finish(&phase);
        true
    });
}

/// Builder configuration: profiles, memory limits, optimization level, timing cache, progress.
pub struct Config<'b> {
    raw: NonNull<ffi::trt_config>,
    _builder: &'b Builder,
    progress: Option<Box<ProgressState>>,
}

impl fmt::Debug for Config<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config").finish_non_exhaustive()
    }
}

impl Config<'_> {
    /// Adds an optimization profile and returns its index.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] when the profile is invalid (a dynamic input without
    /// bounds, or min > opt > max).
    pub fn add_profile(&mut self, profile: &Profile<'_>) -> Result<usize> {
        let mut index = 0;
        // SAFETY: both handles are alive and come from the same builder.
        unsafe { ffi::trt_config_add_profile(self.raw.as_ptr(), profile.raw.as_ptr(), &mut index) }
            .result()?;
        Ok(index as usize)
    }

    /// Limits the workspace memory pool, in bytes.
    ///
    /// # Errors
    ///
    /// Only on shim failure.
    pub fn set_workspace_limit(&mut self, bytes: usize) -> Result<&mut Self> {
        // SAFETY: valid config.
        unsafe {
            ffi::trt_config_set_memory_pool_limit(
                self.raw.as_ptr(),
                ffi::TRT_POOL_WORKSPACE as i32,
                bytes,
            )
        }
        .result()?;
        Ok(self)
    }

    /// Sets the builder optimization level (0..=5; TensorRT's default is 3).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] outside 0..=5.
    pub fn set_optimization_level(&mut self, level: i32) -> Result<&mut Self> {
        // SAFETY: valid config.
        unsafe { ffi::trt_config_set_optimization_level(self.raw.as_ptr(), level) }.result()?;
        Ok(self)
    }

    /// Enables FP16 kernels (TensorRT 10 only).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] on TensorRT 11 and TensorRT-RTX (always strongly typed).
    pub fn set_fp16(&mut self, enable: bool) -> Result<&mut Self> {
        // SAFETY: valid config.
        unsafe { ffi::trt_config_set_fp16(self.raw.as_ptr(), enable) }.result()?;
        Ok(self)
    }

    /// Uses a timing cache initialised from `blob` (empty for a fresh one).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] when TensorRT rejects the blob.
    pub fn set_timing_cache(&mut self, blob: &[u8]) -> Result<&mut Self> {
        // SAFETY: `blob` is valid for its length during the call; TensorRT copies it.
        unsafe {
            ffi::trt_config_set_timing_cache(
                self.raw.as_ptr(),
                blob.as_ptr() as *const c_void,
                blob.len(),
            )
        }
        .result()?;
        Ok(self)
    }

    /// Serializes the timing cache set with [`Config::set_timing_cache`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] when no cache is set.
    pub fn timing_cache(&self) -> Result<Vec<u8>> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid config.
        unsafe { ffi::trt_config_serialize_timing_cache(self.raw.as_ptr(), &mut raw) }.result()?;
        // SAFETY: fresh host memory, consumed once.
        Ok(unsafe { take_host_memory(raw) })
    }

    /// Installs a progress monitor for the build.
    ///
    /// # Errors
    ///
    /// Only on shim failure.
    pub fn set_progress_monitor(
        &mut self,
        monitor: impl ProgressMonitor + 'static,
    ) -> Result<&mut Self> {
        let state = Box::new(ProgressState {
            monitor: Mutex::new(Box::new(monitor)),
            panic: Mutex::new(None),
        });
        let callbacks = ffi::trt_progress_callbacks {
            phase_start: Some(progress_start),
            step_complete: Some(progress_step),
            phase_finish: Some(progress_finish),
        };
        // SAFETY: `state` is kept in `self.progress` until the config (and with it the C++
        // monitor) is destroyed.
        unsafe {
            ffi::trt_config_set_progress(
                self.raw.as_ptr(),
                &callbacks,
                &*state as *const ProgressState as *mut c_void,
            )
        }
        .result()?;
        self.progress = Some(state);
        Ok(self)
    }
}

impl Drop for Config<'_> {
    fn drop(&mut self) {
        // SAFETY: created by the shim, destroyed once, before `progress` is freed.
        unsafe { ffi::trt_config_destroy(self.raw.as_ptr()) }
    }
}

/// Deserializes engines.
pub struct Runtime {
    raw: NonNull<ffi::trt_runtime>,
    logger: Arc<Logger>,
    _library: Arc<Library>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

// SAFETY: `IRuntime::deserializeCudaEngine` is documented thread-safe; the handle is only
// destroyed in `Drop`.
unsafe impl Send for Runtime {}
// SAFETY: as above.
unsafe impl Sync for Runtime {}

impl Runtime {
    /// Creates a runtime.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if TensorRT refuses.
    pub fn new(library: &Arc<Library>, logger: &Arc<Logger>) -> Result<Arc<Runtime>> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: entry points and logger stay alive with the runtime (held in `Arc`s).
        let status =
            unsafe { ffi::trt_runtime_create(&library.api, logger.raw.as_ptr(), &mut raw) };
        logger.resume_panic();
        status.result()?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::TensorRt, "createInferRuntime returned null"))?;
        Ok(Arc::new(Runtime {
            raw,
            logger: logger.clone(),
            _library: library.clone(),
        }))
    }

    /// Deserializes an engine.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] with TensorRT's logged reason: no CUDA driver, an unsupported
    /// GPU, or corrupted bytes.
    pub fn deserialize(self: &Arc<Self>, bytes: &[u8]) -> Result<Arc<Engine>> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `bytes` is valid for its length during the call.
        let status = unsafe {
            ffi::trt_runtime_deserialize(
                self.raw.as_ptr(),
                bytes.as_ptr() as *const c_void,
                bytes.len(),
                &mut raw,
            )
        };
        self.logger.resume_panic();
        status.result()?;
        let raw = NonNull::new(raw).ok_or_else(|| {
            Error::new(ErrorKind::TensorRt, "deserializeCudaEngine returned null")
        })?;
        Ok(Arc::new(Engine {
            raw,
            _runtime: self.clone(),
        }))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // SAFETY: engines hold an `Arc` to the runtime, so none is alive.
        unsafe { ffi::trt_runtime_destroy(self.raw.as_ptr()) }
    }
}

/// Direction of an engine I/O tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoMode {
    /// Input.
    Input,
    /// Output.
    Output,
}

/// One engine I/O tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoTensor {
    /// Name.
    pub name: String,
    /// Direction.
    pub mode: IoMode,
    /// Element type.
    pub data_type: DataType,
    /// Shape with `-1` for dynamic dimensions.
    pub dims: Dims,
}

/// min/opt/max of one input in one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileDims {
    /// Smallest shape.
    pub min: Dims,
    /// Shape the kernels are tuned for.
    pub opt: Dims,
    /// Largest shape.
    pub max: Dims,
}

/// A deserialized engine.
pub struct Engine {
    raw: NonNull<ffi::trt_engine>,
    _runtime: Arc<Runtime>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("io_tensors", &self.io_tensors())
            .finish()
    }
}

// SAFETY: `ICudaEngine`'s query methods and `createExecutionContext` are thread-safe; the
// handle is destroyed only in `Drop`.
unsafe impl Send for Engine {}
// SAFETY: as above.
unsafe impl Sync for Engine {}

impl Engine {
    /// Every I/O tensor in engine order.
    pub fn io_tensors(&self) -> Vec<IoTensor> {
        // SAFETY: valid engine.
        let n = unsafe { ffi::trt_engine_io_count(self.raw.as_ptr()) };
        (0..n)
            .filter_map(|i| {
                let mut name = std::ptr::null();
                // SAFETY: index in range, out-params valid, name copied at once.
                unsafe {
                    ffi::trt_engine_io_name(self.raw.as_ptr(), i, &mut name)
                        .result()
                        .ok()?;
                    let name = owned_str(name);
                    let (mut mode, mut dtype) = (0, 0);
                    let mut dims = std::mem::MaybeUninit::<ffi::trt_dims>::zeroed();
                    let cname = CString::new(name.clone()).ok()?;
                    ffi::trt_engine_tensor(
                        self.raw.as_ptr(),
                        cname.as_ptr(),
                        &mut mode,
                        &mut dtype,
                        dims.as_mut_ptr(),
                    )
                    .result()
                    .ok()?;
                    Some(IoTensor {
                        name,
                        mode: if mode == ffi::TRT_IO_INPUT as i32 {
                            IoMode::Input
                        } else {
                            IoMode::Output
                        },
                        data_type: DataType(dtype),
                        dims: from_ffi_dims(&dims.assume_init()),
                    })
                }
            })
            .collect()
    }

    /// Number of optimization profiles.
    pub fn profile_count(&self) -> usize {
        // SAFETY: valid engine.
        unsafe { ffi::trt_engine_profile_count(self.raw.as_ptr()) }.max(0) as usize
    }

    /// min/opt/max of input `name` in `profile`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] for an unknown profile.
    pub fn profile_dims(&self, name: &str, profile: usize) -> Result<ProfileDims> {
        let cname = cstring("tensor name", name)?;
        let get = |which: u32| -> Result<Dims> {
            let mut d = std::mem::MaybeUninit::<ffi::trt_dims>::zeroed();
            // SAFETY: valid engine and name; out-param valid.
            unsafe {
                ffi::trt_engine_profile_dims(
                    self.raw.as_ptr(),
                    cname.as_ptr(),
                    profile as i32,
                    which as i32,
                    d.as_mut_ptr(),
                )
                .result()?;
                Ok(from_ffi_dims(&d.assume_init()))
            }
        };
        Ok(ProfileDims {
            min: get(ffi::TRT_PROFILE_MIN)?,
            opt: get(ffi::TRT_PROFILE_OPT)?,
            max: get(ffi::TRT_PROFILE_MAX)?,
        })
    }

    /// Device memory the engine needs for activations.
    pub fn device_memory_size(&self) -> i64 {
        // SAFETY: valid engine.
        unsafe { ffi::trt_engine_device_memory_size(self.raw.as_ptr()) }
    }

    /// The engine inspector's JSON.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if the inspector fails.
    pub fn inspector_json(&self) -> Result<String> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid engine.
        unsafe { ffi::trt_engine_inspector_json(self.raw.as_ptr(), &mut raw) }.result()?;
        // SAFETY: fresh host memory, consumed once.
        Ok(String::from_utf8_lossy(&unsafe { take_host_memory(raw) }).into_owned())
    }

    /// Creates an execution context.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] (e.g. out of device memory).
    pub fn context(self: &Arc<Self>) -> Result<Context> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid engine; the context keeps it alive.
        unsafe { ffi::trt_context_create(self.raw.as_ptr(), &mut raw) }.result()?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::new(ErrorKind::TensorRt, "null execution context"))?;
        Ok(Context {
            raw,
            _engine: self.clone(),
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: contexts hold an `Arc` to the engine, so none is alive.
        unsafe { ffi::trt_engine_destroy(self.raw.as_ptr()) }
    }
}

/// An execution context: one in-flight inference at a time.
pub struct Context {
    raw: NonNull<ffi::trt_context>,
    _engine: Arc<Engine>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

// SAFETY: an `IExecutionContext` may move between threads but must not be used by two at once;
// `Context` is `Send` and not `Sync`, and every mutating method takes `&mut self`.
unsafe impl Send for Context {}

impl Context {
    /// Selects an optimization profile, ordered on `stream` (a `cudaStream_t`/`CUstream`).
    ///
    /// # Safety
    ///
    /// `stream` must be a valid CUDA stream of the engine's device (or null for the default
    /// stream).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] for an unknown profile.
    pub unsafe fn set_profile(&mut self, profile: usize, stream: *mut c_void) -> Result<()> {
        // SAFETY: forwarded to the caller for `stream`; valid context.
        unsafe { ffi::trt_context_set_profile(self.raw.as_ptr(), profile as i32, stream) }.result()
    }

    /// Sets the shape of an input.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] if outside the active profile.
    pub fn set_input_shape(&mut self, name: &str, dims: &[i64]) -> Result<()> {
        let cname = cstring("input name", name)?;
        let dims = to_ffi_dims(dims)?;
        // SAFETY: valid context, name and dims.
        unsafe { ffi::trt_context_set_input_shape(self.raw.as_ptr(), cname.as_ptr(), &dims) }
            .result()
    }

    /// Binds a tensor to device memory.
    ///
    /// # Safety
    ///
    /// `address` must point to device memory large enough for the tensor's current shape and
    /// stay valid until the enqueued work that uses it completes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] for an unknown name.
    pub unsafe fn set_tensor_address(&mut self, name: &str, address: *mut c_void) -> Result<()> {
        let cname = cstring("tensor name", name)?;
        // SAFETY: forwarded to the caller for `address`.
        unsafe { ffi::trt_context_set_tensor_address(self.raw.as_ptr(), cname.as_ptr(), address) }
            .result()
    }

    /// Current shape of a tensor (outputs are resolved once every input shape is set).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] for a name with a NUL byte.
    pub fn tensor_shape(&self, name: &str) -> Result<Dims> {
        let cname = cstring("tensor name", name)?;
        let mut d = std::mem::MaybeUninit::<ffi::trt_dims>::zeroed();
        // SAFETY: valid context, name, out-param.
        unsafe {
            ffi::trt_context_tensor_shape(self.raw.as_ptr(), cname.as_ptr(), d.as_mut_ptr())
                .result()?;
            Ok(from_ffi_dims(&d.assume_init()))
        }
    }

    /// Enqueues inference on `stream`.
    ///
    /// # Safety
    ///
    /// Every I/O tensor must be bound with [`Context::set_tensor_address`] to memory that stays
    /// valid until the stream reaches this point; `stream` must be a valid CUDA stream.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TensorRt`] with TensorRT's logged reason.
    pub unsafe fn enqueue(&mut self, stream: *mut c_void) -> Result<()> {
        // SAFETY: forwarded to the caller.
        unsafe { ffi::trt_context_enqueue(self.raw.as_ptr(), stream) }.result()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: created by the shim, destroyed once.
        unsafe { ffi::trt_context_destroy(self.raw.as_ptr()) }
    }
}
