//! Test support shared by the workspace's tests (not published).

pub mod servers;
