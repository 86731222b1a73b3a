//! Test support shared by the workspace's tests, the example and the benches (not
//! published, so nothing here ships in an application):
//!
//! - [`synth`]: deterministic synthetic models and samples (the seed decoder, fixtures, a
//!   small graph builder);
//! - [`servers`]: real storage servers on loopback ports for the remote-cache tests.

#![allow(clippy::disallowed_methods)] // Tooling reads its own environment (see clippy.toml).

pub mod servers;
pub mod synth;
