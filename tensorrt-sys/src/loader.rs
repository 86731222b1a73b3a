//! Finding, opening and version-checking the TensorRT libraries at run time.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, ErrorKind, Result};
use crate::{ffi, format_version, header_flavor, header_version};

/// Which TensorRT product the headers (and therefore the libraries) belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Full TensorRT 10.x / 11.x (`libnvinfer.so.<major>`).
    TensorRt,
    /// TensorRT-RTX 1.x (`libtensorrt_rtx.so.1`).
    Rtx,
}

impl Flavor {
    /// Stable lower-case name: `tensorrt` or `tensorrt-rtx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::TensorRt => "tensorrt",
            Flavor::Rtx => "tensorrt-rtx",
        }
    }

    /// File names of (inference library, ONNX parser library) for a header major version.
    pub fn library_names(self, major: i32) -> (String, String) {
        match self {
            Flavor::TensorRt => (
                format!("libnvinfer.so.{major}"),
                format!("libnvonnxparser.so.{major}"),
            ),
            Flavor::Rtx => (
                format!("libtensorrt_rtx.so.{major}"),
                format!("libtensorrt_onnxparser_rtx.so.{major}"),
            ),
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a run-time environment variable (the one place this crate does).
#[allow(clippy::disallowed_methods)]
fn env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// Where to look for the libraries, in order.
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    /// The inference library's file, when named explicitly (`TENSORRT_DYLIB_PATH`).
    file: Option<PathBuf>,
    dirs: Vec<PathBuf>,
    system: bool,
}

impl SearchPath {
    /// The default order: `TENSORRT_LIB_DIR`, `TENSORRT_ROOT/lib`, the library folder known at
    /// build time, then the system search path. `TENSORRT_DYLIB_PATH` (like ort's
    /// `ORT_DYLIB_PATH`) names the inference library's file itself and overrides all of them
    /// for it ([`SearchPath::library_file`]).
    pub fn from_env() -> Self {
        let mut dirs = Vec::new();
        if let Some(dir) = env("TENSORRT_LIB_DIR") {
            dirs.push(PathBuf::from(dir));
        }
        if let Some(root) = env("TENSORRT_ROOT") {
            dirs.push(PathBuf::from(root).join("lib"));
        }
        let build_dir = env!("TENSORRT_SYS_BUILD_LIB_DIR");
        if !build_dir.is_empty() {
            dirs.push(PathBuf::from(build_dir));
        }
        dirs.dedup();
        Self {
            file: env("TENSORRT_DYLIB_PATH").map(PathBuf::from),
            dirs,
            system: true,
        }
    }

    /// Opens the inference library from exactly this file (nothing else is tried for it); the
    /// ONNX parser library is looked for in the same folder first, then in the search path.
    pub fn library_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Only the given folders, not the system search path.
    pub fn dirs(dirs: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        Self {
            file: None,
            dirs: dirs.into_iter().map(Into::into).collect(),
            system: false,
        }
    }

    /// Also try the system search path (`dlopen` of the bare file name) after the folders.
    pub fn with_system(mut self, system: bool) -> Self {
        self.system = system;
        self
    }

    /// Every candidate path of the inference library, in order.
    fn library_candidates(&self, name: &str) -> Vec<PathBuf> {
        match &self.file {
            Some(file) => vec![file.clone()],
            None => self.candidates(name),
        }
    }

    /// Every candidate path for `file`, in order: next to an explicit library file, then the
    /// folders, then the system search path.
    fn candidates(&self, file: &str) -> Vec<PathBuf> {
        let beside = self
            .file
            .as_ref()
            .and_then(|f| f.parent())
            .map(|d| d.join(file));
        let mut out: Vec<PathBuf> = beside
            .into_iter()
            .chain(self.dirs.iter().map(|d| d.join(file)))
            .collect();
        if self.system {
            out.push(PathBuf::from(file));
        }
        out
    }
}

/// The opened TensorRT inference and ONNX parser libraries.
///
/// Opening is explicit ([`Library::open`]) or once per process ([`Library::load`]); the handles
/// stay open as long as any [`Builder`](crate::Builder) or [`Runtime`](crate::Runtime) made from
/// them lives.
pub struct Library {
    // Kept alive: the entry points below point into these.
    _infer: libloading::Library,
    _parser: Option<libloading::Library>,
    pub(crate) api: ffi::trt_entry_points,
    infer_path: PathBuf,
    parser_path: Option<PathBuf>,
    version: i32,
    parser_error: Option<String>,
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library")
            .field("infer_path", &self.infer_path)
            .field("parser_path", &self.parser_path)
            .field("version", &self.version)
            .finish()
    }
}

// SAFETY: the struct holds library handles and plain function pointers into them; TensorRT's
// factory functions are thread-safe, and nothing here is mutated after construction.
unsafe impl Send for Library {}
// SAFETY: as above; shared references only read immutable data.
unsafe impl Sync for Library {}

type Factory2 = unsafe extern "C" fn(*mut std::ffi::c_void, i32) -> *mut std::ffi::c_void;
type Factory3 = unsafe extern "C" fn(
    *mut std::ffi::c_void,
    *mut std::ffi::c_void,
    i32,
) -> *mut std::ffi::c_void;
type VersionFn = unsafe extern "C" fn() -> i32;

static GLOBAL: OnceLock<Result<Arc<Library>>> = OnceLock::new();

impl Library {
    /// Opens the libraries once per process, from [`SearchPath::from_env`]; later calls return
    /// the same handle (or the same error). Thread-safe.
    ///
    /// # Errors
    ///
    /// See [`Library::open`].
    pub fn load() -> Result<Arc<Library>> {
        GLOBAL
            .get_or_init(|| Library::open(&SearchPath::from_env()).map(Arc::new))
            .clone()
    }

    /// Whether [`Library::load`] succeeds (cudarc's `is_culib_present`).
    pub fn is_available() -> bool {
        Self::load().is_ok()
    }

    /// Opens the libraries from one folder only (not shared with [`Library::load`]'s handle;
    /// same type, so either can feed the safe owners).
    ///
    /// # Errors
    ///
    /// See [`Library::open`].
    pub fn load_from(dir: impl AsRef<Path>) -> Result<Arc<Library>> {
        Self::open(&SearchPath::dirs([dir.as_ref()])).map(Arc::new)
    }

    /// Opens the inference library (required) and the ONNX parser library (optional: a
    /// runtime-only installation lacks it) for the headers' flavor and major version.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::LibraryNotFound`] naming every path tried and why each failed;
    /// - [`ErrorKind::MissingSymbol`] if an entry point is absent;
    /// - [`ErrorKind::VersionMismatch`] naming the library path and version and the headers'
    ///   folder and version.
    pub fn open(search: &SearchPath) -> Result<Library> {
        let flavor = header_flavor();
        let expected = header_version();
        let (infer_name, parser_name) = flavor.library_names(expected / 10000);

        let (infer, infer_path) = open_first(&search.library_candidates(&infer_name), &infer_name)?;
        // SAFETY: `getInferLibVersion` has the signature `int32_t(void)` in every TensorRT
        // flavor and version this crate supports.
        let version =
            unsafe { symbol::<VersionFn>(&infer, &infer_path, b"getInferLibVersion\0")?() };
        if version != expected {
            return Err(Error::new(
                ErrorKind::VersionMismatch,
                format!(
                    "{} has version {} ({version}) but tensorrt-sys was compiled against the {} {} headers ({expected}) in {}; \
                     point TENSORRT_LIB_DIR at the matching library or rebuild against its headers",
                    infer_path.display(),
                    format_version(version),
                    flavor,
                    format_version(expected),
                    crate::HEADER_INCLUDE_DIR
                ),
            ));
        }
        // SAFETY: both factories have the signature `void*(void*, int32_t)`.
        let builder =
            unsafe { symbol::<Factory2>(&infer, &infer_path, b"createInferBuilder_INTERNAL\0")? };
        // SAFETY: as above.
        let runtime =
            unsafe { symbol::<Factory2>(&infer, &infer_path, b"createInferRuntime_INTERNAL\0")? };

        let (parser, parser_path, parser_fn, parser_error) =
            match open_first(&search.candidates(&parser_name), &parser_name) {
                Ok((lib, path)) => {
                    // SAFETY: `createNvOnnxParser_INTERNAL` has the signature
                    // `void*(void* network, void* logger, int version)`.
                    let f = unsafe {
                        symbol::<Factory3>(&lib, &path, b"createNvOnnxParser_INTERNAL\0")?
                    };
                    (Some(lib), Some(path), Some(f), None)
                }
                Err(e) => (None, None, None, Some(e.message().to_string())),
            };

        Ok(Library {
            api: ffi::trt_entry_points {
                create_infer_builder: Some(builder),
                create_infer_runtime: Some(runtime),
                create_onnx_parser: parser_fn,
            },
            _infer: infer,
            _parser: parser,
            infer_path,
            parser_path,
            version,
            parser_error,
        })
    }

    /// Path the inference library was opened from.
    pub fn path(&self) -> &Path {
        &self.infer_path
    }

    /// Path the ONNX parser library was opened from, if it was found.
    pub fn parser_path(&self) -> Option<&Path> {
        self.parser_path.as_deref()
    }

    /// `getInferLibVersion()` of the library (equal to [`header_version`](crate::header_version)).
    pub fn version(&self) -> i32 {
        self.version
    }

    /// Flavor of the library.
    pub fn flavor(&self) -> Flavor {
        header_flavor()
    }

    pub(crate) fn require_parser(&self) -> Result<()> {
        match &self.parser_error {
            None => Ok(()),
            Some(why) => Err(Error::new(
                ErrorKind::LibraryNotFound,
                format!("the ONNX parser library is needed to build engines: {why}"),
            )),
        }
    }
}

fn open_first(candidates: &[PathBuf], name: &str) -> Result<(libloading::Library, PathBuf)> {
    let mut tried = Vec::new();
    for path in candidates {
        // SAFETY: loading TensorRT runs its static initialisers, which have no preconditions.
        match unsafe { libloading::Library::new(path) } {
            Ok(lib) => return Ok((lib, path.clone())),
            Err(e) => tried.push(format!("  {}: {e}", path.display())),
        }
    }
    Err(Error::new(
        ErrorKind::LibraryNotFound,
        format!(
            "could not open {name}; tried:\n{}\nset TENSORRT_LIB_DIR to the folder that holds it, or TENSORRT_DYLIB_PATH to the file (in this repository: `cargo xtask setup`)",
            tried.join("\n")
        ),
    ))
}

/// # Safety
///
/// `T` must be the exact function-pointer type of the symbol.
unsafe fn symbol<T: Copy>(lib: &libloading::Library, path: &Path, name: &[u8]) -> Result<T> {
    // SAFETY: forwarded to the caller.
    match unsafe { lib.get::<T>(name) } {
        Ok(sym) => Ok(*sym),
        Err(e) => Err(Error::new(
            ErrorKind::MissingSymbol,
            format!(
                "{} lacks {}: {e}",
                path.display(),
                String::from_utf8_lossy(&name[..name.len().saturating_sub(1)])
            ),
        )),
    }
}
