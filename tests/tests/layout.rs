//! The architecture's measurable promises, checked on the workspace itself: the runtime that
//! ships inside applications stays free of calibration tooling, and no source file outgrows
//! a reader.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Distinct `name version` packages of `cargo tree -p <package> -e normal <args>`.
fn packages(package: &str, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(format!("{} {}", w.next()?, w.next()?))
        })
        .collect()
}

#[test]
fn the_runtime_pulls_in_no_calibration_tooling() {
    let default = packages("trt-runtime", &[]);
    let names: Vec<&str> = default
        .iter()
        .map(|p| p.split(' ').next().unwrap())
        .collect();
    for tooling in [
        "calib",
        "clap",
        "indicatif",
        "env_logger",
        "zip",
        "rayon",
        "py_literal",
    ] {
        assert!(
            !names.contains(&tooling),
            "trt-runtime depends on {tooling}"
        );
    }
    assert!(
        default.len() <= 100,
        "trt-runtime has {} packages with default features (at most 100): {default:?}",
        default.len()
    );
    let without_cpu = packages("trt-runtime", &["--no-default-features"]);
    assert!(
        without_cpu.len() <= 36,
        "trt-runtime has {} packages without `cpu` (at most 36): {without_cpu:?}",
        without_cpu.len()
    );
    let calib = packages("calib", &[]);
    for cli in ["clap", "indicatif", "env_logger"] {
        assert!(
            !calib.iter().any(|p| p.starts_with(&format!("{cli} "))),
            "calib depends on {cli}"
        );
    }
}

/// The example is an application: the runtime as its dependency, trt-build as its build
/// dependency, and nothing of the workspace's tooling (its data comes from a data step, not from
/// code it links). Calibration reaches it only inside trt-build.
#[test]
fn the_example_depends_only_on_what_an_application_would() {
    let direct = packages("example-app", &["-e", "build", "--depth", "1"]);
    let names: BTreeSet<&str> = direct
        .iter()
        .map(|p| p.split(' ').next().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [
        "example-app",
        "trt-runtime",
        "trt-build",
        "ndarray",
        "ndarray-npy",
        "env_logger",
    ]
    .into();
    assert_eq!(names, expected, "{direct:?}");
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut long = Vec::new();
    for entry in walkdir::WalkDir::new(workspace())
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            !(name == "target" || name.starts_with('.'))
        })
        .filter_map(Result::ok)
    {
        let path = entry.path();
        // Generated declarations (bindgen) are exempt.
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("src/bindings.rs") {
            continue;
        }
        let lines = std::fs::read_to_string(path).map_or(0, |s| s.lines().count());
        if lines > 600 {
            long.push(format!("{} ({lines} lines)", path.display()));
        }
    }
    assert!(long.is_empty(), "files over 600 lines: {long:?}");
}
