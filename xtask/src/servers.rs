//! `cargo xtask setup-servers`: the storage servers the remote-cache tests start on loopback
//! ports — Redis and nginx with its WebDAV modules from Debian's packages, and `s3s-fs` (an S3
//! server on a directory) from crates.io into `.trt/tools/bin`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, cargo, root, run};

/// s3s-fs release: the newest whose `rust-version` the machine's toolchain (1.95) meets.
const S3S_FS_VERSION: &str = "=0.14.1";
/// Debian packages of the Redis and WebDAV servers.
const DEBIAN_PACKAGES: &[&str] = &["redis-server", "nginx", "libnginx-mod-http-dav-ext"];
/// What those packages install that the tests use.
const DEBIAN_FILES: &[&str] = &[
    "/usr/bin/redis-server",
    "/usr/sbin/nginx",
    "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so",
];

/// What [`setup_servers`] provided.
pub(crate) struct Servers {
    /// The `s3s-fs` binary.
    pub(crate) s3s_fs: PathBuf,
    /// The kinds the tests must find (`TRT_TEST_REQUIRE_SERVERS`): `s3`, plus `webdav,redis`
    /// when Debian's packages are installed.
    pub(crate) required: String,
}

/// Installs what is missing (idempotent). `s3s-fs` is required; when Debian's packages cannot
/// be installed (no root, no apt), that is said loudly and the WebDAV and Redis tests skip
/// with the reason instead of failing.
pub(crate) fn setup_servers() -> Result<Servers> {
    let debian = match install_debian() {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "xtask: WARNING: the WebDAV and Redis servers are not available, so their tests will be SKIPPED: {e}"
            );
            false
        }
    };
    let tools = root().join(".trt").join("tools");
    let bin = tools.join("bin").join("s3s-fs");
    if !bin.is_file() {
        run(cargo()
            .args(["install", "s3s-fs", "--version", S3S_FS_VERSION])
            // `--debug`: a test server need not be fast, and an unoptimised build compiles faster.
            .args([
                "--features",
                "binary",
                "--locked",
                "--debug",
                "--quiet",
                "--root",
            ])
            .arg(&tools)
            .env("CARGO_TARGET_DIR", root().join("target").join("s3s-fs")))?;
    }
    Ok(Servers {
        s3s_fs: bin,
        required: if debian { "s3,webdav,redis" } else { "s3" }.into(),
    })
}

fn install_debian() -> Result {
    if DEBIAN_FILES.iter().any(|f| !Path::new(f).exists()) {
        let install = || {
            run(Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(DEBIAN_PACKAGES)
                .env("DEBIAN_FRONTEND", "noninteractive"))
        };
        if install().is_err() {
            run(Command::new("apt-get").args(["update", "-q"]))?;
            install().map_err(|e| {
                format!(
                    "{e}\nthe remote-cache tests need {} (Debian packages; run apt-get as root)",
                    DEBIAN_PACKAGES.join(" ")
                )
            })?;
        }
    }
    Ok(())
}
