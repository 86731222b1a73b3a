//! Header discovery, in the order of openssl-sys: `TENSORRT_INCLUDE_DIR` (+ `TENSORRT_LIB_DIR`),
//! then `TENSORRT_ROOT`, then the usual system prefixes.

use std::path::{Path, PathBuf};

use crate::env;

/// Where the headers (and, if known, the libraries) are.
pub(crate) struct Found {
    pub(crate) include_dir: PathBuf,
    pub(crate) lib_dir: Option<PathBuf>,
}

/// Version and flavor read from `NvInferVersion.h`.
pub(crate) struct Version {
    pub(crate) major: u32,
    pub(crate) minor: u32,
    pub(crate) patch: u32,
    pub(crate) flavor: String,
}

impl Version {
    /// `NV_TENSORRT_VERSION`: major*10000 + minor*100 + patch.
    pub(crate) fn number(&self) -> u32 {
        self.major * 10000 + self.minor * 100 + self.patch
    }
}

const SYSTEM_PREFIXES: &[&str] = &[
    "/usr/include/x86_64-linux-gnu",
    "/usr/include/aarch64-linux-gnu",
    "/usr/include",
    "/usr/local/include",
    "/usr/local/TensorRT/include",
    "/usr/local/tensorrt/include",
    "/opt/tensorrt/include",
];

fn has_headers(dir: &Path) -> bool {
    dir.join("NvInferVersion.h").is_file() && dir.join("NvInfer.h").is_file()
}

pub(crate) fn find() -> Result<Found, String> {
    let lib_dir = env("TENSORRT_LIB_DIR").map(PathBuf::from);
    if let Some(include) = env("TENSORRT_INCLUDE_DIR").map(PathBuf::from) {
        if has_headers(&include) {
            return Ok(Found {
                include_dir: include,
                lib_dir,
            });
        }
        return Err(format!(
            "TENSORRT_INCLUDE_DIR={} does not contain NvInferVersion.h and NvInfer.h",
            include.display()
        ));
    }
    if let Some(root) = env("TENSORRT_ROOT").map(PathBuf::from) {
        let include = root.join("include");
        if has_headers(&include) {
            let lib_dir = lib_dir.or_else(|| Some(root.join("lib")));
            return Ok(Found {
                include_dir: include,
                lib_dir,
            });
        }
        return Err(format!(
            "TENSORRT_ROOT={} has no include/NvInferVersion.h and include/NvInfer.h",
            root.display()
        ));
    }
    for prefix in SYSTEM_PREFIXES {
        let dir = PathBuf::from(prefix);
        if has_headers(&dir) {
            return Ok(Found {
                include_dir: dir,
                lib_dir,
            });
        }
    }
    Err(format!(
        "could not find the TensorRT headers (NvInferVersion.h) in TENSORRT_INCLUDE_DIR, \
         TENSORRT_ROOT/include or any of: {}",
        SYSTEM_PREFIXES.join(", ")
    ))
}

/// Preprocesses `shim/expando.c` against the headers (openssl-sys `expando.c`).
pub(crate) fn read_version(include_dir: &Path) -> Result<Version, String> {
    let expanded = cc::Build::new()
        .cpp(true)
        .include(include_dir)
        .file("shim/expando.c")
        .cargo_metadata(false)
        .try_expand()
        .map_err(|e| {
            format!(
                "preprocessing NvInferVersion.h from {} failed: {e}",
                include_dir.display()
            )
        })?;
    let text = String::from_utf8_lossy(&expanded);
    let field = |key: &str| -> Option<String> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(key))
            .map(|rest| {
                rest.trim()
                    .trim_end_matches(['L', 'l', 'U', 'u'])
                    .to_string()
            })
    };
    let number = |key: &str| -> Result<u32, String> {
        let raw = field(key)
            .ok_or_else(|| format!("{key} missing from the preprocessed NvInferVersion.h"))?;
        raw.trim_matches(|c| c == '(' || c == ')')
            .parse()
            .map_err(|_| format!("{key} expanded to `{raw}`, not a number"))
    };
    Ok(Version {
        major: number("RUST_TRT_MAJOR")?,
        minor: number("RUST_TRT_MINOR")?,
        patch: number("RUST_TRT_PATCH")?,
        flavor: field("RUST_TRT_FLAVOR").unwrap_or_else(|| "tensorrt".into()),
    })
}

/// Reports a discovery failure the way openssl-sys does and exits.
pub(crate) fn fail(message: &str) -> ! {
    let first_line = message.lines().next().unwrap_or(message);
    println!("cargo:warning=tensorrt-sys: {first_line}");
    #[allow(clippy::disallowed_methods)]
    let (host, target) = (
        std::env::var("HOST").unwrap_or_default(),
        std::env::var("TARGET").unwrap_or_default(),
    );
    eprintln!(
        "
tensorrt-sys could not find TensorRT.

{message}

Set one of:
  TENSORRT_INCLUDE_DIR  (and TENSORRT_LIB_DIR)  folder with NvInfer.h / the .so files
  TENSORRT_ROOT                                  folder with include/ and lib/
Each may be prefixed by the target, e.g. {target_}_TENSORRT_ROOT.

In this repository, `cargo xtask setup` provisions TensorRT-RTX 1.7 into .trt/ and
.cargo/config.toml points the variables at it.

$HOST = {host}
$TARGET = {target}
tensorrt-sys = {version}
",
        target_ = target.replace('-', "_"),
        version = env!("CARGO_PKG_VERSION"),
    );
    std::process::exit(1);
}
