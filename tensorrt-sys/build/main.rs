//! Build script of `tensorrt-sys`: finds the TensorRT headers, reads their version and flavor,
//! compiles the C++ shim and exports what dependents need (`DEP_NVINFER_*`).
//!
//! Nothing is linked against TensorRT: the libraries are opened at run time (see `src/loader.rs`).

#[cfg(feature = "bindgen")]
mod bindgen_config;
mod find;
mod shim;

use std::ffi::OsString;
use std::path::PathBuf;

/// Reads `<TARGET>_<VAR>` (dashes as underscores), then `<VAR>`; prints
/// `cargo:rerun-if-env-changed` for both and logs the value (as openssl-sys and cc do).
#[allow(clippy::disallowed_methods)]
fn env(name: &str) -> Option<OsString> {
    let target = std::env::var("TARGET")
        .unwrap_or_default()
        .replace('-', "_");
    let prefixed = format!("{target}_{name}");
    for var in [prefixed.as_str(), name] {
        println!("cargo:rerun-if-env-changed={var}");
        if let Some(value) = std::env::var_os(var) {
            eprintln!("{var} = {}", value.to_string_lossy());
            return Some(value);
        }
    }
    eprintln!("{name} unset");
    None
}

fn main() {
    println!("cargo:rerun-if-changed=build");
    println!("cargo:rerun-if-changed=shim");
    println!("cargo:rustc-check-cfg=cfg(trt_flavor_rtx)");
    println!("cargo:rustc-check-cfg=cfg(trt_flavor_tensorrt)");

    let found = match find::find() {
        Ok(found) => found,
        Err(message) => find::fail(&message),
    };
    let version = match find::read_version(&found.include_dir) {
        Ok(version) => version,
        Err(message) => find::fail(&message),
    };
    shim::compile(
        &found.include_dir,
        env("CUDA_INCLUDE_DIR").map(PathBuf::from),
    );
    shim::bindings();

    let flavor = version.flavor.as_str();
    println!("cargo:rustc-cfg=trt_flavor_{flavor}");
    println!("cargo:rustc-env=TENSORRT_SYS_HEADER_FLAVOR={flavor}");
    println!(
        "cargo:rustc-env=TENSORRT_SYS_HEADER_VERSION={}",
        version.number()
    );
    println!(
        "cargo:rustc-env=TENSORRT_SYS_INCLUDE_DIR={}",
        found.include_dir.display()
    );
    println!(
        "cargo:rustc-env=TENSORRT_SYS_BUILD_LIB_DIR={}",
        found
            .lib_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    );
    // Metadata for immediate dependents: DEP_NVINFER_INCLUDE, _VERSION, _FLAVOR, _LIB_DIR.
    println!("cargo:include={}", found.include_dir.display());
    println!("cargo:version={}", version.number());
    println!("cargo:flavor={flavor}");
    if let Some(lib_dir) = &found.lib_dir {
        println!("cargo:lib_dir={}", lib_dir.display());
    }
}
