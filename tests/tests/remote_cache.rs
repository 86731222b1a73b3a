//! The team cache through `trt-build`, against real servers started on loopback ports
//! (`test_support::servers`: s3s-fs for S3, nginx for WebDAV, Redis). Each "machine" is its own
//! out and local cache directory; engines are real TensorRT-RTX builds on the CPU.

use std::path::Path;
use std::time::Duration;

use test_support::server_or_skip;
use test_support::servers::{S3_ACCESS_KEY, S3_BUCKET, S3_SECRET_KEY, Server};
use tests::Fixture;
use trt_build::{Origin, RemoteCacheMode, RemoteConfig};

fn s3(server: &Server) -> RemoteConfig {
    RemoteConfig::new(server.s3_url("team"))
        .s3_credentials(S3_ACCESS_KEY, S3_SECRET_KEY)
        .with_timeout(Duration::from_secs(5))
}

fn log(out: &Path) -> String {
    std::fs::read_to_string(out.join("trt-build.log")).unwrap()
}

/// Code and engine of one machine, with its own directories taken out of the code.
fn embedded(out: &Path, code: &Path, engine: &Path) -> (String, Vec<u8>) {
    let code = std::fs::read_to_string(code).unwrap();
    (
        code.replace(&out.display().to_string(), "<OUT>"),
        std::fs::read(engine).unwrap(),
    )
}

#[test]
fn a_second_machine_gets_the_first_machines_engine_from_each_backend() {
    let s3_server = server_or_skip!(
        "a_second_machine_gets_the_first_machines_engine_from_each_backend",
        Server::s3()
    );
    let dav = server_or_skip!(
        "a_second_machine_gets_the_first_machines_engine_from_each_backend",
        Server::webdav()
    );
    let redis = server_or_skip!(
        "a_second_machine_gets_the_first_machines_engine_from_each_backend",
        Server::redis(None)
    );
    let f = Fixture::new();
    let no_libs = tempfile::tempdir().unwrap();
    for (i, remote) in [
        s3(&s3_server),
        RemoteConfig::new(format!("webdav+http://{}/engines", dav.addr)),
        RemoteConfig::new(format!("redis://{}/0", redis.addr)),
    ]
    .into_iter()
    .enumerate()
    {
        let (out_a, out_b) = (f.path(&format!("a{i}/out")), f.path(&format!("b{i}/out")));
        let a = f
            .builder(&out_a, &f.path(&format!("a{i}/cache")))
            .remote_cache(remote.clone())
            .try_build()
            .unwrap()
            .remove(0);
        assert_eq!(a.origin, Origin::Built);
        assert!(
            log(&out_a).contains("calibration (entropy)"),
            "{}",
            log(&out_a)
        );
        // Machine B: empty local cache, and no TensorRT at all, so it can only fetch.
        let b = f
            .builder(&out_b, &f.path(&format!("b{i}/cache")))
            .remote_cache(remote)
            .tensorrt_lib_dir(no_libs.path())
            .try_build()
            .unwrap()
            .remove(0);
        assert_eq!(b.origin, Origin::Remote, "{}", log(&out_b));
        assert!(!log(&out_b).contains("calibration ("), "B never calibrates");
        assert!(!log(&out_b).contains("engine built"), "B never builds");
        // The one-line summaries say where each engine came from, with size and time.
        assert!(
            log(&out_a).contains("built and uploaded ("),
            "{}",
            log(&out_a)
        );
        assert!(log(&out_b).contains("remote hit ("), "{}", log(&out_b));
        assert!(log(&out_b).contains(" KiB in "), "{}", log(&out_b));
        assert_eq!(
            embedded(&out_a, &a.code_path, &a.engine_path),
            embedded(&out_b, &b.code_path, &b.engine_path),
            "byte-identical engines and identical code"
        );
        assert_eq!(
            std::fs::read(b.entry.join("engine.trt")).unwrap(),
            std::fs::read(&a.engine_path).unwrap(),
            "the fetched entry is stored in B's local cache"
        );
    }
}

#[test]
fn concurrent_builders_of_one_key_both_succeed_and_later_machines_agree() {
    let s = server_or_skip!(
        "concurrent_builders_of_one_key_both_succeed_and_later_machines_agree",
        Server::s3()
    );
    let f = Fixture::new();
    let built: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (f, remote) = (&f, s3(&s));
                scope.spawn(move || {
                    f.builder(
                        &f.path(&format!("m{i}/out")),
                        &f.path(&format!("m{i}/cache")),
                    )
                    .remote_cache(remote)
                    .try_build()
                    .unwrap()
                    .remove(0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // A third machine gets the published entry, which is one of the two builds.
    let later = f
        .builder(&f.path("later/out"), &f.path("later/cache"))
        .remote_cache(s3(&s))
        .try_build()
        .unwrap()
        .remove(0);
    assert_eq!(later.origin, Origin::Remote);
    let published = std::fs::read(&later.engine_path).unwrap();
    assert!(
        built
            .iter()
            .any(|b| std::fs::read(&b.engine_path).unwrap() == published),
        "the remote holds one of the concurrent builds"
    );
    let objects = std::fs::read_dir(s.data.join(S3_BUCKET).join("team"))
        .unwrap()
        .count();
    assert_eq!(objects, 1, "one object for the key");
}

#[test]
fn a_corrupt_remote_entry_is_rebuilt_and_replaced() {
    let s = server_or_skip!(
        "a_corrupt_remote_entry_is_rebuilt_and_replaced",
        Server::s3()
    );
    let f = Fixture::new();
    let a = f
        .builder(&f.path("a/out"), &f.path("a/cache"))
        .remote_cache(s3(&s))
        .try_build()
        .unwrap()
        .remove(0);
    let object = s
        .data
        .join(S3_BUCKET)
        .join("team")
        .join(format!("{}.tar", a.manifest.cache_key));
    let bytes = std::fs::read(&object).unwrap();
    std::fs::write(&object, &bytes[..bytes.len() - 700]).unwrap();
    let out_b = f.path("b/out");
    let b = f
        .builder(&out_b, &f.path("b/cache"))
        .remote_cache(s3(&s))
        .try_build()
        .unwrap()
        .remove(0);
    assert_eq!(
        b.origin,
        Origin::Built,
        "a corrupt remote entry is never used"
    );
    // The rebuilt entry replaced the corrupt one: a third machine gets B's engine.
    let c = f
        .builder(&f.path("c/out"), &f.path("c/cache"))
        .remote_cache(s3(&s))
        .try_build()
        .unwrap()
        .remove(0);
    assert_eq!(c.origin, Origin::Remote);
    assert_eq!(
        std::fs::read(&c.engine_path).unwrap(),
        std::fs::read(&b.engine_path).unwrap()
    );
}

#[test]
fn a_server_stopped_mid_build_costs_one_warning() {
    let mut s = server_or_skip!("a_server_stopped_mid_build_costs_one_warning", Server::s3());
    let f = Fixture::new();
    let out = f.path("out");
    let mut b = f.builder(&out, &f.path("cache"));
    b.remote_cache(s3(&s));
    // A second model (the same graph under another name and an FP32 precision), so the
    // outage is seen by more than one model.
    b.model("seed_fp32", f.path("seed.onnx"))
        .profile(Fixture::profile());
    let built = std::thread::scope(|scope| {
        let build = scope.spawn(|| b.try_build());
        // The look-up of the first model happens at once; calibration and the engine build
        // take longer. Whenever the stop lands, the build must finish locally.
        std::thread::sleep(Duration::from_millis(300));
        s.stop();
        build.join().unwrap()
    })
    .unwrap();
    assert_eq!(built.len(), 2);
    let text = log(&out);
    let warnings = text.matches("remote cache unavailable").count();
    assert!(warnings <= 1, "at most one warning:\n{text}");
    // The second model certainly ran after the stop: it saw the outage.
    assert_eq!(warnings, 1, "{text}");
    assert_eq!(built[1].origin, Origin::Built);
}

#[test]
fn wrong_credentials_warn_and_require_mode_names_what_failed() {
    let s = server_or_skip!(
        "wrong_credentials_warn_and_require_mode_names_what_failed",
        Server::s3()
    );
    let f = Fixture::new();
    let wrong = s3(&s).s3_credentials(S3_ACCESS_KEY, "wrong-secret");
    let out = f.path("out");
    let built = f
        .builder(&out, &f.path("cache"))
        .remote_cache(wrong.clone())
        .try_build()
        .unwrap()
        .remove(0);
    assert_eq!(built.origin, Origin::Built);
    assert!(log(&out).contains("check the credentials"), "{}", log(&out));
    assert!(
        !log(&out).contains("wrong-secret"),
        "secrets never reach the log"
    );

    // require mode: no build; the error names the key, the remote and the failure.
    let e = f
        .builder(&f.path("out2"), &f.path("cache2"))
        .remote_cache(wrong.mode(RemoteCacheMode::Require))
        .try_build()
        .unwrap_err();
    assert!(e.is_missing_engine(), "{e}");
    let m = e.message();
    assert!(m.contains(&built.manifest.cache_key), "{m}");
    assert!(m.contains(&format!("s3://{S3_BUCKET}/team")), "{m}");
    assert!(m.contains("require mode"), "{m}");
    assert!(m.contains("download"), "{m}");

    // require mode, right credentials, key absent.
    let e = f
        .builder(&f.path("out3"), &f.path("cache3"))
        .remote_cache(s3(&s).mode(RemoteCacheMode::Require))
        .try_build()
        .unwrap_err();
    assert!(e.message().contains("has no entry"), "{e}");
}

#[test]
fn read_only_mode_fetches_but_never_writes() {
    let s = server_or_skip!("read_only_mode_fetches_but_never_writes", Server::s3());
    let f = Fixture::new();
    let out = f.path("out");
    let built = f
        .builder(&out, &f.path("cache"))
        .remote_cache(s3(&s).mode(RemoteCacheMode::Read))
        .try_build()
        .unwrap()
        .remove(0);
    assert_eq!(built.origin, Origin::Built);
    assert!(log(&out).contains("remote miss"), "{}", log(&out));
    let team = s.data.join(S3_BUCKET).join("team");
    let objects = std::fs::read_dir(&team).map(|d| d.count()).unwrap_or(0);
    assert_eq!(objects, 0, "read mode wrote to the remote");
}
