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

/// Installs what is missing (idempotent) and returns the `s3s-fs` binary.
pub(crate) fn setup_servers() -> Result<PathBuf> {
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
    let tools = root().join(".trt").join("tools");
    let bin = tools.join("bin").join("s3s-fs");
    if !bin.is_file() {
        run(cargo()
            .args(["install", "s3s-fs", "--version", S3S_FS_VERSION])
            .args(["--features", "binary", "--locked", "--quiet", "--root"])
            .arg(&tools)
            .env("CARGO_TARGET_DIR", root().join("target").join("s3s-fs")))?;
    }
    Ok(bin)
}
