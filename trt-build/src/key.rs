//! The cache key of a model: SHA-256 over named, length-delimited fields, each from a
//! serializer or raw bytes (never from a `Debug` output), so no two declarations share a key
//! by accident and a field's meaning cannot drift with a formatting change.

use sha2::{Digest, Sha256};

use crate::engine::EngineOptions;
use crate::error::Error;
use crate::{KEY_VERSION, ModelConfig, Precision};

/// Length-delimited fields into SHA-256.
struct Fields(Sha256);

impl Fields {
    fn field(&mut self, name: &str, value: &[u8]) {
        for part in [name.as_bytes(), value] {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
    }
}

/// The key of one model: the key recipe's version, the TensorRT headers (flavor, version),
/// profiles, precision, engine options, FP16 conversion, a forced CPU engine, constant inputs,
/// and either the quantization job's fingerprint (INT8: model, calibration and held-out data,
/// every option of the recipe) or the model's bytes.
///
/// # Errors
///
/// A declaration error for an invalid `TRT_CALIB_ENGINE`; the job's fingerprint errors
/// (unreadable data) as calibration errors.
pub(crate) fn cache_key(
    m: &ModelConfig,
    model: &calib::Model,
    options: &EngineOptions,
    fp16: bool,
    job: Option<&calib::Job>,
) -> Result<String, Error> {
    let name = m.name.as_str();
    let mut k = Fields(Sha256::new());
    k.field("version", KEY_VERSION.as_bytes());
    k.field("flavor", tensorrt_sys::header_flavor().as_str().as_bytes());
    k.field("tensorrt", &tensorrt_sys::header_version().to_le_bytes());
    k.field("profiles", &json(&m.profiles));
    k.field("precision", m.precision.name().as_bytes());
    k.field("engine-options", &json(options));
    k.field("fp16", &[u8::from(fp16)]);
    // A forced CPU engine (not the automatic choice) changes calibration's numerics.
    let engine = match calib::infer::engine_choice().map_err(|e| Error::declaration(name, e))? {
        calib::infer::EngineChoice::Auto => "",
        calib::infer::EngineChoice::Tract => "tract",
        calib::infer::EngineChoice::OnnxRuntime => "onnxruntime",
    };
    k.field("cpu-engine", engine.as_bytes());
    for (input, value) in &m.constants {
        k.field("constant", input.as_bytes());
        k.field("constant-type", value.elem_type().name().as_bytes());
        k.field("constant-shape", &json(value.shape()));
        k.field("constant-value", &value.to_le_bytes());
    }
    match (&m.precision, job) {
        (Precision::Int8(_), Some(job)) => {
            let fingerprint = job.fingerprint().map_err(|e| Error::calibration(name, e))?;
            k.field("job", fingerprint.as_bytes());
        }
        _ => k.field("model", &model.to_bytes()),
    }
    Ok(hex::encode(k.0.finalize()))
}

/// A field's bytes from its serde serialization.
fn json(value: &(impl serde::Serialize + ?Sized)) -> Vec<u8> {
    serde_json::to_vec(value).expect("key fields serialize")
}
