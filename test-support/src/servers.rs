//! Real storage servers for the remote-cache tests, each started on a free loopback port with
//! its own data directory and stopped when dropped: `s3s-fs` (an S3 server on a directory,
//! from crates.io, installed by `cargo xtask setup-servers`), nginx with its WebDAV modules and
//! Redis (both from Debian's packages).
//!
//! A test that needs a server calls [`Server::s3`] (etc.); when the binary is missing it gets
//! `Err(reason)`, prints `SKIPPED: …` through [`skip`] and returns — unless
//! the server is required by `TRT_TEST_REQUIRE_SERVERS` (`1` for all, or a list such as
//! `s3,webdav,redis`; `cargo xtask test` sets it to every server it installed), where a missing
//! server fails the test.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key of the S3 test server.
pub const S3_ACCESS_KEY: &str = "trt-test-access";
/// Secret key of the S3 test server.
pub const S3_SECRET_KEY: &str = "trt-test-secret-0123456789";
/// Bucket created on the S3 test server.
pub const S3_BUCKET: &str = "engines";

/// Whether a missing `kind` of server (`s3`, `webdav`, `redis`) fails tests
/// (`TRT_TEST_REQUIRE_SERVERS`: `1` for all, or a comma-separated list).
pub fn required(kind: &str) -> bool {
    std::env::var("TRT_TEST_REQUIRE_SERVERS")
        .is_ok_and(|v| v == "1" || v.split(',').any(|k| k.trim() == kind))
}

/// Prints why a test did not run, or panics when the server is required. `reason` starts
/// with the server's kind (`s3: …`), as [`Server`]'s constructors write it.
pub fn skip(test: &str, reason: &str) {
    let kind = reason.split(':').next().unwrap_or_default();
    if required(kind) {
        panic!("{test}: TRT_TEST_REQUIRE_SERVERS requires {kind}, but {reason}");
    }
    eprintln!("SKIPPED {test}: {reason} (run `cargo xtask setup-servers`, or `cargo xtask test`)");
}

/// Starts a server (`$start`: a `Result<Server, String>`), or prints why the test `$test` is
/// skipped and returns from it (a failure under `TRT_TEST_REQUIRE_SERVERS=1`).
#[macro_export]
macro_rules! server_or_skip {
    ($test:literal, $start:expr) => {
        match $start {
            Ok(s) => s,
            Err(reason) => {
                $crate::servers::skip($test, &reason);
                return;
            }
        }
    };
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// `host:port` it listens on.
    pub addr: String,
    /// Its data directory.
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support is inside the workspace")
        .to_path_buf()
}

/// Finds a program: the variable `var`, then `candidates`, then `PATH`.
fn find(var: &str, candidates: &[PathBuf], name: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(var) {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates
        .iter()
        .cloned()
        .chain(std::env::split_paths(&path).map(|d| d.join(name)))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not installed (set {var} or put it on PATH)"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Server {
    fn start(
        mut command: Command,
        port: u16,
        dir: tempfile::TempDir,
        data: PathBuf,
    ) -> Result<Server, String> {
        let log =
            std::fs::File::create(dir.path().join("server.log")).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {command:?}: {e}"))?;
        let mut server = Server {
            child: Some(child),
            addr: format!("127.0.0.1:{port}"),
            data,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&server.addr).is_err() {
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(server._dir.path().join("server.log"))
                    .unwrap_or_default();
                return Err(format!("{command:?} exited with {status}: {log}"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{command:?} did not listen on {} within 20 s",
                    server.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// `s3s-fs` with [`S3_ACCESS_KEY`]/[`S3_SECRET_KEY`] and the bucket [`S3_BUCKET`].
    pub fn s3() -> Result<Server, String> {
        Self::s3_inner().map_err(|e| format!("s3: {e}"))
    }

    fn s3_inner() -> Result<Server, String> {
        let bin = find(
            "TRT_TEST_S3S_FS",
            &[repo_root().join(".trt/tools/bin/s3s-fs")],
            "s3s-fs",
        )?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join(S3_BUCKET)).map_err(|e| e.to_string())?;
        let port = free_port();
        let mut c = Command::new(bin);
        c.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&data);
        Server::start(c, port, dir, data)
    }

    /// `redis-server`, no persistence, with `requirepass` when `password` is given.
    pub fn redis(password: Option<&str>) -> Result<Server, String> {
        Self::redis_inner(password).map_err(|e| format!("redis: {e}"))
    }

    fn redis_inner(password: Option<&str>) -> Result<Server, String> {
        let bin = find("TRT_TEST_REDIS_SERVER", &[], "redis-server")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().to_path_buf();
        let port = free_port();
        let mut c = Command::new(bin);
        c.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&data);
        if let Some(p) = password {
            c.args(["--requirepass", p]);
        }
        Server::start(c, port, dir, data)
    }

    /// nginx serving a directory over WebDAV (PUT/DELETE/MOVE plus PROPFIND from the
    /// dav-ext module).
    pub fn webdav() -> Result<Server, String> {
        Self::webdav_inner().map_err(|e| format!("webdav: {e}"))
    }

    fn webdav_inner() -> Result<Server, String> {
        let bin = find(
            "TRT_TEST_NGINX",
            &[PathBuf::from("/usr/sbin/nginx")],
            "nginx",
        )?;
        let module = Path::new("/usr/lib/nginx/modules/ngx_http_dav_ext_module.so");
        if !module.is_file() {
            return Err(format!(
                "{} is not installed (Debian package libnginx-mod-http-dav-ext)",
                module.display()
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let root = dir.path();
        let data = root.join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(root.join("tmp")).map_err(|e| e.to_string())?;
        let port = free_port();
        let r = root.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {r}/nginx.pid;\nerror_log {r}/error.log;\n\
             load_module {};\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {r}/tmp;\n  proxy_temp_path {r}/tmp;\n  fastcgi_temp_path {r}/tmp;\n  uwsgi_temp_path {r}/tmp;\n  scgi_temp_path {r}/tmp;\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {};\n    client_max_body_size 0;\n\
                 location / {{\n      dav_methods PUT DELETE MKCOL COPY MOVE;\n      dav_ext_methods PROPFIND OPTIONS;\n      create_full_put_path on;\n      dav_access user:rw group:r all:r;\n    }}\n  }}\n}}\n",
            module.display(),
            data.display()
        );
        let conf_path = root.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let mut c = Command::new(bin);
        c.arg("-c").arg(&conf_path).arg("-p").arg(root);
        Server::start(c, port, dir, data)
    }

    /// The remote-cache URL of an S3 server started by [`Server::s3`], under `prefix`.
    pub fn s3_url(&self, prefix: &str) -> String {
        format!("s3://{S3_BUCKET}/{prefix}?endpoint=http://{}", self.addr)
    }

    /// Stops the server (the port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that accepts connections and never answers: a hung server.
#[derive(Debug)]
pub struct Silent {
    /// `host:port`.
    pub addr: String,
    _listener: TcpListener,
}

impl Silent {
    /// Listens (the kernel completes handshakes; nothing is ever read or written).
    pub fn new() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("bound").to_string();
        Silent {
            addr,
            _listener: listener,
        }
    }
}

impl Default for Silent {
    fn default() -> Self {
        Self::new()
    }
}
