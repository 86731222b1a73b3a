//! Compiles the C++ shim and (with the `bindgen` feature) regenerates its Rust declarations.

use std::path::{Path, PathBuf};

/// Compiles `shim/trt_shim.cpp` against the TensorRT headers. Without `CUDA_INCLUDE_DIR` the
/// shim's own stand-in `cuda_runtime_api.h` supplies the two CUDA handle types TensorRT needs.
pub(crate) fn compile(include_dir: &Path, cuda_include: Option<PathBuf>) {
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file("shim/trt_shim.cpp")
        .include("shim")
        // -isystem: TensorRT's own headers warn about their deprecated declarations.
        .flag("-isystem")
        .flag(include_dir.to_str().expect("include path is UTF-8"))
        .warnings(true)
        .extra_warnings(true);
    match cuda_include {
        Some(dir) => {
            build.include(dir);
        }
        None => {
            build.include("shim/cuda");
        }
    }
    build.compile("trt_shim");
}

/// With the `bindgen` feature, writes fresh bindings into `OUT_DIR` and tells `lib.rs` to use
/// them instead of the committed `src/bindings.rs`.
pub(crate) fn bindings() {
    println!("cargo:rustc-check-cfg=cfg(trt_generated_bindings)");
    #[cfg(feature = "bindgen")]
    {
        #[allow(clippy::disallowed_methods)]
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
        let bindings = crate::bindgen_config::generate(Path::new("shim/trt_shim.h"))
            .unwrap_or_else(|e| crate::find::fail(&e));
        bindings
            .write_to_file(out.join("bindings.rs"))
            .unwrap_or_else(|e| crate::find::fail(&format!("writing bindings.rs: {e}")));
        println!("cargo:rustc-cfg=trt_generated_bindings");
    }
}
