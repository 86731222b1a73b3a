//! Content-addressed TensorRT engine cache, shared by a team.
//!
//! An *entry* is the files of one engine build (engine, manifest, Q/DQ ONNX, calibration
//! artifacts) under a *key*, the SHA-256 of everything that decides the engine; `entry.json`
//! records the SHA-256 of every file, and every read verifies them.
//!
//! - [`LocalCache`]: a directory per key, written under a temporary name and renamed, safe
//!   under concurrent builds.
//! - [`Remote`]: the same entries on S3-compatible storage, WebDAV or Redis through Apache
//!   OpenDAL, one tar object per key, published create-only and never replaced while valid;
//!   time-outs on every operation and a remote that fails once is marked down, so a build
//!   never fails or hangs because of the cache.
//!
//! The `remote` feature (default) builds the remote tier; without it only [`RemoteConfig`]
//! (parsing) remains, and the OpenDAL/HTTP stack is not compiled.
//!
//! `trt-build` looks up local → remote → prebuilt directory → build, and uploads what it
//! built; `cargo xtask cache` lists, verifies and prunes either tier.

// Every fallible public function says which errors it returns and when.
#![warn(clippy::missing_errors_doc)]

mod config;
mod entry;
mod error;
mod local;
pub mod prune;
#[cfg(feature = "remote")]
mod remote;
pub mod signing;

pub use config::{DEFAULT_TIMEOUT, ENV_VARS, Mode, RemoteConfig};
pub use entry::{
    ENGINE, Entry, EntryIndex, INDEX, MANIFEST, MAX_ENTRY_BYTES, ONNX, is_key, sha256,
};
pub use error::{Error, ErrorKind};
pub use local::{EntryInfo, LocalCache, StoredEntry};
pub use prune::PrunePolicy;
#[cfg(feature = "remote")]
pub use remote::{Published, Remote, Transfer};
pub use signing::{SIGNATURE, SigningKey, Trust, TrustPolicy};
