//! `cargo xtask example`: the example application's data step, then the application (the
//! README's main command).

use std::path::PathBuf;
use std::process::Command;

use crate::{Result, cargo, root, run};

/// Cargo's target directory.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// The example application's data step: the FP32 model, calibration samples and the runs'
/// inputs with their FP32 outputs, into `example-app/data/` (what an application has on disk
/// before `cargo build`; see `test-support/src/bin/example-data.rs`). Runs the binary that
/// the caller built.
pub(crate) fn example_data() -> Result {
    let bin = target_dir().join("debug").join("example-data");
    run(Command::new(&bin).arg(root().join("example-app").join("data")))
}

/// The packages the example command builds, in one selection: the data step's binary and the
/// application share every compiled dependency (Cargo resolves features per selection, so
/// building them one package at a time would compile the dependency tree twice).
const EXAMPLE_PACKAGES: [&str; 4] = ["--package", "test-support", "--package", "example-app"];

pub(crate) fn example(args: &[String]) -> Result {
    let root = root();
    for bin in ["example-data", "example-app"] {
        run(cargo()
            .current_dir(&root)
            .args(["build", "--quiet"])
            .args(EXAMPLE_PACKAGES)
            .args(["--bin", bin]))?;
        if bin == "example-data" {
            example_data()?;
        }
    }
    run(Command::new(target_dir().join("debug").join("example-app")).args(args))
}
