//! Files written into `OUT_DIR`: only when their bytes change (so Cargo sees no change), and
//! atomically.

use std::path::Path;

use crate::error::Error;

/// Writes `bytes` to `path` unless it already holds exactly them (so Cargo sees no change),
/// through a temporary file and a rename (`calib::model::write_atomic`, the workspace's one
/// atomic write).
pub(crate) fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    calib::model::write_atomic(path, bytes).map_err(|e| Error::io("writing an artifact", e))
}
