//! Records whether this crate (and so calibration, which Cargo compiles with the same
//! profile for a build script) is compiled without optimisation: Cargo's default for build
//! dependencies, which makes calibration many times slower. `trt-build` then prints the
//! `[profile.*.build-override]` snippet that fixes it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(trt_build_unoptimized)");
    #[allow(clippy::disallowed_methods)]
    let opt = std::env::var("OPT_LEVEL").unwrap_or_default();
    if opt == "0" {
        println!("cargo::rustc-cfg=trt_build_unoptimized");
    }
}
