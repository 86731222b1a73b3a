//! Declares the seed decoder with trt-build, as an application's build script would: the FP32
//! ONNX and the calibration samples are files in `data/` (written by the example's data step,
//! `cargo xtask example`), one profile over batch sizes 1..=4 and latent resolutions 4..=16,
//! INT8 with `Method::Auto` and an accuracy target.

use std::path::PathBuf;

use trt_build::{Int8, Method, Profile, ShapeRange};

#[allow(dead_code)] // The run constants are the application's.
mod seed {
    include!("src/seed.rs");
}
use seed::{CROP, LATENT_CHANNELS, PROFILE, UPSAMPLE};

fn main() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    let onnx = data.join("seed_decoder.fp32.onnx");
    if !onnx.is_file() {
        eprintln!(
            "error: {} is missing: the example's data is written by its data step; run `cargo xtask example` \
             (or `cargo run -p test-support --bin example-data -- example-app/data`) first",
            onnx.display()
        );
        std::process::exit(1);
    }

    let [batch, latent] = [0, 1].map(|k| PROFILE.map(|p| [p.0, p.1][k] as i64));
    let image = |i: usize| UPSAMPLE * latent[i] - CROP as i64;
    let range = |f: &dyn Fn(usize) -> Vec<i64>| ShapeRange::new(f(0), f(1), f(2));
    let c = LATENT_CHANNELS;
    let profile = Profile::new()
        .input("y_hat", range(&|i| vec![batch[i], c, latent[i], latent[i]]))
        .input("q", range(&|i| vec![batch[i], c, 1, 1]))
        .input(
            "dummy_input",
            range(&|i| vec![batch[i], 3, image(i), image(i)]),
        );
    let mut build = trt_build::Builder::new();
    build
        .model("seed_decoder", &onnx)
        .profile(profile)
        // Auto: the method with the best accuracy on the held-out samples, and a target that
        // keeps sensitive nodes in float if the choice alone does not reach it.
        .int8(
            Int8::from_path(data.join("calibration"))
                .method(Method::Auto)
                .min_cosine(0.999),
        );
    build.build();
}
