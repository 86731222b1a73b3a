//! The build script's side of Cargo (like `cc`'s `CargoOutput`): every instruction it prints
//! (`cargo::warning`, `rerun-if-…`), every environment variable it reads and every line of the
//! build log (`OUT_DIR/trt-build.log`) goes through here.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;

/// Cargo instructions (when enabled), the warnings already printed and the build log.
#[derive(Debug)]
pub(crate) struct CargoOutput {
    enabled: bool,
    warned: Mutex<BTreeSet<String>>,
    log: Mutex<String>,
}

impl CargoOutput {
    pub(crate) fn new(enabled: bool) -> Self {
        CargoOutput {
            enabled,
            warned: Mutex::default(),
            log: Mutex::default(),
        }
    }

    /// Reads a variable and, under Cargo, asks to rerun when it changes.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn env(&self, name: &str) -> Option<OsString> {
        if self.enabled {
            println!("cargo:rerun-if-env-changed={name}");
        }
        std::env::var_os(name).filter(|v| !v.is_empty())
    }

    pub(crate) fn rerun_if_changed(&self, path: &Path) {
        if self.enabled {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    /// Prints a `cargo:warning`, once per distinct text, and logs it.
    pub(crate) fn warning(&self, text: &str) {
        let line = text.replace('\n', " ");
        let fresh = self
            .warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(line.clone());
        if fresh {
            if self.enabled {
                println!("cargo:warning={line}");
            } else {
                eprintln!("warning: {line}");
            }
            self.log(&format!("warning: {line}"));
        }
    }

    /// Appends `text` (one or more lines) to the build log.
    pub(crate) fn log(&self, text: &str) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.push_str(text);
        if !text.ends_with('\n') {
            log.push('\n');
        }
    }

    /// The build log so far.
    pub(crate) fn log_text(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
