//! Fingerprints: SHA-256 over what decides a calibration (model bytes, every data file by
//! its path relative to its sample and its content, or every in-memory sample, and the options),
//! so a saved calibration or a cached engine is reused exactly when nothing changed.

use sha2::{Digest, Sha256};

use crate::calibrate::FORMAT_VERSION;
use crate::data::{SampleRef, Source};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::observer::Method;
use crate::profile::Profile;
use crate::qdq::Exclusions;

/// [`Calibrator::fingerprint`] of `model` with these options, without preparing the model.
pub(crate) fn of(
    model: &Model,
    method: Method,
    bins: usize,
    profiles: &[Profile],
    exclusions: &Exclusions,
    source: &Source,
) -> Result<String> {
    let mut h = Sha256::new();
    h.update(FORMAT_VERSION.to_le_bytes());
    model.content_parts(&mut |part| h.update(part))?;
    let options = serde_json::json!({
        "method": method, "bins": bins, "profiles": profiles, "exclusions": exclusions,
    });
    h.update(options.to_string().as_bytes());
    match source {
        Source::Path(_) | Source::Files(_) => {
            // Paths are hashed relative to each sample, so the fingerprint (and the engine
            // cache key built on it) is the same wherever the data lives.
            for r in source.list()? {
                let (SampleRef::NpyDir(base) | SampleRef::Npz(base)) = &r else {
                    continue;
                };
                let parent = base.parent().unwrap_or(base);
                for file in Source::Path(base.clone()).files()? {
                    let rel = file.strip_prefix(parent).unwrap_or(&file);
                    h.update(rel.to_string_lossy().as_bytes());
                    h.update([0]);
                    h.update(std::fs::read(&file).map_err(|e| Error::io(&file, e))?);
                }
            }
        }
        Source::Memory(_) | Source::Generated(_) => {
            // Streams: one sample at a time, hashed by name, element type, shape, bytes.
            let inputs = model.inputs()?;
            for r in source.list()? {
                let sample = source.load(&r, &inputs)?;
                for (name, t) in sample.tensors() {
                    h.update(name.as_bytes());
                    h.update(format!("{}{:?}", t.elem_type(), t.shape()).as_bytes());
                    h.update(t.to_le_bytes());
                }
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}
