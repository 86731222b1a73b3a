//! The build script's side of Cargo: every instruction it prints (`cargo::warning`,
//! `rerun-if-…`) and every environment variable it reads goes
//! through here.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;

/// Cargo instructions (when enabled) and the set of warnings already printed.
#[derive(Debug)]
pub(crate) struct Cargo {
    enabled: bool,
    warned: Mutex<BTreeSet<String>>,
}

impl Cargo {
    pub(crate) fn new(enabled: bool) -> Self {
        Cargo {
            enabled,
            warned: Mutex::default(),
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

    /// Prints a `cargo:warning`, once per distinct text.
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
        }
    }
}
