//! `tensorrt-sys` against the real TensorRT-RTX 1.7 library, on the CPU.
//!
//! The ONNX fixtures are generated in code by `test_support::synth` (two dynamic inputs
//! `x: [N,3,H,W]` and `q: [N,8]`); nothing is downloaded.

use std::sync::{Arc, Mutex};

use tensorrt_sys::{Builder, DataType, ErrorKind, Library, Logger, SearchPath, Severity};

type Messages = Arc<Mutex<Vec<(Severity, String)>>>;

fn logger() -> (Arc<Logger>, Messages) {
    let messages: Messages = Arc::default();
    let sink = messages.clone();
    let logger = Logger::new(Severity::VERBOSE, move |s, m| {
        sink.lock().unwrap().push((s, m.to_string()))
    })
    .unwrap();
    (logger, messages)
}

fn library() -> Arc<Library> {
    Library::load()
        .unwrap_or_else(|e| panic!("TensorRT must be provisioned (cargo xtask setup): {e}"))
}

fn two_input_onnx() -> Vec<u8> {
    test_support::synth::two_input_model().to_bytes()
}

#[test]
fn library_version_matches_headers() {
    let lib = library();
    assert_eq!(lib.version(), tensorrt_sys::header_version());
    assert_eq!(lib.flavor(), tensorrt_sys::header_flavor());
    assert!(
        lib.parser_path().is_some(),
        "the ONNX parser library is provisioned too"
    );
}

#[test]
fn builds_engine_with_one_profile_and_reports_network_io() {
    let (logger, messages) = logger();
    let builder = Builder::new(&library(), &logger).unwrap();
    let network = builder.network_from_onnx(&two_input_onnx(), None).unwrap();

    let inputs = network.inputs().unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0].name, "x");
    assert_eq!(inputs[0].dims, vec![-1, 3, -1, -1]);
    assert_eq!(inputs[0].data_type, DataType::FLOAT);
    assert_eq!(inputs[1].name, "q");
    assert_eq!(inputs[1].dims, vec![-1, 8]);
    assert_eq!(inputs[1].data_type, DataType::FLOAT);
    let outputs = network.outputs().unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].name, "y");
    assert_eq!(outputs[0].dims.len(), 2);

    let mut profile = builder.profile().unwrap();
    profile
        .set("x", &[1, 3, 16, 16], &[2, 3, 32, 32], &[4, 3, 64, 64])
        .unwrap();
    profile.set("q", &[1, 8], &[2, 8], &[4, 8]).unwrap();
    let mut config = builder.config().unwrap();
    assert_eq!(config.add_profile(&profile).unwrap(), 0);
    config.set_workspace_limit(64 << 20).unwrap();
    config.set_optimization_level(0).unwrap();
    let engine = builder.build_serialized(&network, &config).unwrap();
    assert!(
        engine.len() > 1000,
        "a serialized engine of {} bytes is implausibly small",
        engine.len()
    );

    // The logger saw TensorRT's own messages, with their severities.
    let messages = messages.lock().unwrap();
    assert!(!messages.is_empty(), "TensorRT logged nothing");
    assert!(
        messages.iter().any(|(s, _)| *s >= Severity::INFO),
        "no info/verbose message: {messages:?}"
    );
    assert!(messages.iter().all(|(s, _)| (0..=4).contains(&s.0)));
}

#[test]
fn builds_engine_with_two_profiles() {
    let (logger, _) = logger();
    let builder = Builder::new(&library(), &logger).unwrap();
    let network = builder.network_from_onnx(&two_input_onnx(), None).unwrap();
    let mut config = builder.config().unwrap();
    let mut small = builder.profile().unwrap();
    small
        .set("x", &[1, 3, 8, 8], &[1, 3, 16, 16], &[2, 3, 32, 32])
        .unwrap();
    small.set("q", &[1, 8], &[1, 8], &[2, 8]).unwrap();
    let mut large = builder.profile().unwrap();
    large
        .set("x", &[2, 3, 32, 32], &[4, 3, 64, 64], &[8, 3, 128, 128])
        .unwrap();
    large.set("q", &[2, 8], &[4, 8], &[8, 8]).unwrap();
    assert_eq!(config.add_profile(&small).unwrap(), 0);
    assert_eq!(config.add_profile(&large).unwrap(), 1);
    config.set_optimization_level(0).unwrap();
    let engine = builder.build_serialized(&network, &config).unwrap();
    assert!(engine.len() > 1000);
}

#[test]
fn invalid_profile_is_rejected_before_the_build() {
    let (logger, _) = logger();
    let builder = Builder::new(&library(), &logger).unwrap();
    let _network = builder.network_from_onnx(&two_input_onnx(), None).unwrap();
    let mut profile = builder.profile().unwrap();
    // min > max is refused by TensorRT itself, either at set or at add time.
    let set = profile
        .set("x", &[4, 3, 64, 64], &[2, 3, 32, 32], &[1, 3, 16, 16])
        .map(|_| ());
    let added = set
        .is_ok()
        .then(|| builder.config().unwrap().add_profile(&profile).map(|_| ()));
    match (set, added) {
        (Err(e), _) | (Ok(_), Some(Err(e))) => {
            assert!(
                matches!(e.kind(), ErrorKind::TensorRt | ErrorKind::InvalidArgument),
                "{e}"
            )
        }
        _ => panic!("a profile with min > max was accepted"),
    }
}

#[test]
fn deserializing_without_cuda_is_a_clear_error() {
    let (logger, _) = logger();
    let lib = library();
    let builder = Builder::new(&lib, &logger).unwrap();
    let network = builder.network_from_onnx(&two_input_onnx(), None).unwrap();
    let mut profile = builder.profile().unwrap();
    profile
        .set("x", &[1, 3, 16, 16], &[1, 3, 16, 16], &[1, 3, 16, 16])
        .unwrap();
    profile.set("q", &[1, 8], &[1, 8], &[1, 8]).unwrap();
    let mut config = builder.config().unwrap();
    config.add_profile(&profile).unwrap();
    config.set_optimization_level(0).unwrap();
    let engine = builder.build_serialized(&network, &config).unwrap();

    let runtime = tensorrt_sys::Runtime::new(&lib, &logger).unwrap();
    // The header check answers with reason codes, never by failing.
    let validity = runtime.engine_validity(&engine).unwrap();
    println!("engine validity on this machine: {validity:?}");
    if let tensorrt_sys::EngineValidity::Invalid(why) = validity {
        println!("  reasons: {why}");
        assert!(!why.malformed(), "a fresh engine reads as malformed: {why}");
    }
    match runtime.engine_validity(b"definitely not an engine") {
        Ok(tensorrt_sys::EngineValidity::Invalid(why)) => assert!(why.malformed(), "{why}"),
        Ok(other) => panic!("garbage bytes read as {other:?}"),
        Err(e) => println!("garbage: refused before the check: {e}"),
    }
    match runtime.deserialize(&engine) {
        Ok(engine) => {
            // Only on a machine with a supported GPU; then the engine must be usable.
            println!(
                "a CUDA device is present: the engine deserialized ({} I/O tensors)",
                engine.io_tensors().unwrap().len()
            );
            assert_eq!(engine.io_tensors().unwrap().len(), 3);
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::TensorRt);
            assert!(e.message().contains("deserializeCudaEngine"), "{e}");
            assert!(
                e.message().to_lowercase().contains("cuda"),
                "the reason (CUDA) is missing: {e}"
            );
        }
    }
    // Truncated and garbage bytes fail the same way, without crashing.
    for bytes in [
        &engine[..engine.len() / 3],
        b"definitely not an engine".as_slice(),
    ] {
        let e = runtime.deserialize(bytes).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TensorRt, "{e}");
    }
}

#[test]
fn malformed_and_truncated_onnx_return_parser_errors() {
    let (logger, _) = logger();
    let builder = Builder::new(&library(), &logger).unwrap();
    let valid = two_input_onnx();
    for (what, bytes) in [
        ("garbage", b"\x08\x07this is not protobuf at all".to_vec()),
        ("truncated", valid[..valid.len() / 2].to_vec()),
    ] {
        let e = builder.network_from_onnx(&bytes, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Parse, "{what}: {e}");
        println!("{what}: {e}");
        assert!(
            !e.parser_errors().is_empty() || e.message().contains("no graph outputs"),
            "{what}: neither a parser error nor a reason: {e}"
        );
    }
}

#[test]
fn unsupported_operator_names_the_node() {
    let (logger, _) = logger();
    let builder = Builder::new(&library(), &logger).unwrap();
    let bytes = test_support::synth::unsupported_operator_model().to_bytes();
    let e = builder.network_from_onnx(&bytes, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Parse, "{e}");
    let error = e
        .parser_errors()
        .iter()
        .find(|p| p.node_operator == "NoSuchOperator" || p.node_name == "mystery_node")
        .unwrap_or_else(|| panic!("no parser error names the node: {e}"));
    assert_eq!(
        error.node,
        Some(5),
        "the unsupported node is the sixth: {error}"
    );
    assert!(
        e.to_string().contains("mystery_node") || e.to_string().contains("NoSuchOperator"),
        "{e}"
    );
}

#[test]
fn missing_library_lists_every_path_tried() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let e = Library::open(&SearchPath::dirs([a.path(), b.path()])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LibraryNotFound);
    let (infer, _) =
        tensorrt_sys::header_flavor().library_names(tensorrt_sys::header_version() / 10000);
    for dir in [a.path(), b.path()] {
        let expected = dir.join(&infer);
        assert!(
            e.message().contains(&expected.display().to_string()),
            "{} not named in: {e}",
            expected.display()
        );
    }
    assert!(
        e.message().contains("TENSORRT_LIB_DIR"),
        "the fix is not named: {e}"
    );
}

/// `TENSORRT_DYLIB_PATH`'s override: the inference library from exactly that file (its parser
/// found beside it, not in the search path), and a file that does not exist is named in the
/// error without trying anything else.
#[test]
fn an_explicit_library_file_is_the_only_candidate() {
    let real = library();
    let empty = tempfile::tempdir().unwrap();
    let lib = Library::open(&SearchPath::dirs([empty.path()]).library_file(real.path())).unwrap();
    assert_eq!(lib.path(), real.path());
    assert_eq!(lib.version(), tensorrt_sys::header_version());
    assert_eq!(
        lib.parser_path().and_then(|p| p.parent()),
        real.path().parent(),
        "the parser is looked for beside the named library first"
    );

    let missing = empty.path().join("libnothing.so");
    let e = Library::open(&SearchPath::from_env().library_file(&missing)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LibraryNotFound);
    assert!(e.message().contains(&missing.display().to_string()), "{e}");
    assert_eq!(
        e.message().matches("\n  ").count(),
        1,
        "only the named file is tried: {e}"
    );
    assert!(e.message().contains("TENSORRT_DYLIB_PATH"), "{e}");
}

/// A stand-in library with the right file name and entry points but another version, built
/// here with the system C compiler.
#[test]
fn mismatched_library_version_is_reported_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (infer, _) =
        tensorrt_sys::header_flavor().library_names(tensorrt_sys::header_version() / 10000);
    let source = dir.path().join("fake.c");
    std::fs::write(
        &source,
        "int getInferLibVersion(void) { return 90300; }\n\
         void *createInferBuilder_INTERNAL(void *l, int v) { (void)l; (void)v; return 0; }\n\
         void *createInferRuntime_INTERNAL(void *l, int v) { (void)l; (void)v; return 0; }\n",
    )
    .unwrap();
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(dir.path().join(&infer))
        .arg(&source)
        .status()
        .expect("a C compiler is needed for this test");
    assert!(status.success());
    let e = Library::load_from(dir.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::VersionMismatch, "{e}");
    assert!(
        e.message().contains("9.3.0"),
        "library version missing: {e}"
    );
    let header = tensorrt_sys::format_version(tensorrt_sys::header_version());
    assert!(e.message().contains(&header), "header version missing: {e}");
    assert!(
        e.message()
            .contains(&dir.path().join(&infer).display().to_string()),
        "library path missing: {e}"
    );
    assert!(
        e.message().contains(tensorrt_sys::HEADER_INCLUDE_DIR),
        "header path missing: {e}"
    );
}

/// The timing cache round-trips through a build, and the FP16 builder flag reports that this
/// flavor is always strongly typed instead of silently doing nothing.
#[test]
fn timing_cache_round_trips_and_fp16_flag_is_reported_unsupported() {
    let (logger, _) = logger();
    let builder = Builder::new(&library(), &logger).unwrap();
    let network = builder.network_from_onnx(&two_input_onnx(), None).unwrap();
    let mut profile = builder.profile().unwrap();
    profile
        .set("x", &[1, 3, 16, 16], &[1, 3, 16, 16], &[2, 3, 16, 16])
        .unwrap();
    profile.set("q", &[1, 8], &[1, 8], &[2, 8]).unwrap();
    let mut config = builder.config().unwrap();
    config.add_profile(&profile).unwrap();
    config.set_timing_cache(&[]).unwrap();
    config.set_optimization_level(0).unwrap();
    builder.build_serialized(&network, &config).unwrap();
    let cache = config.timing_cache().unwrap();
    assert!(
        !cache.is_empty(),
        "a serialized timing cache has at least its header"
    );
    // A second config accepts the serialized cache.
    let mut again = builder.config().unwrap();
    again.set_timing_cache(&cache).unwrap();
    // A garbage cache is refused, or ignored by flavors that deprecate timing caches; never a crash.
    let mut bad = builder.config().unwrap();
    let _ = bad.set_timing_cache(b"not a timing cache");

    let mut fp16 = builder.config().unwrap();
    match tensorrt_sys::header_flavor() {
        tensorrt_sys::Flavor::Rtx => {
            let e = fp16.set_fp16(true).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            assert!(e.message().contains("strongly typed"), "{e}");
        }
        tensorrt_sys::Flavor::TensorRt => {
            let _ = fp16.set_fp16(true);
        }
    }
}
