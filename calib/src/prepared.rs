//! The model Q/DQ goes into, made once per run and passed through placement, calibration,
//! insertion and tuning.
//!
//! Q/DQ needs opset 13 (per-axis `DequantizeLinear`) and weights as initializers, so older
//! models are raised and `Constant` weights turned into initializers ([`crate::opset`]). A
//! [`Prepared`] holds that form next to the original float model. A [`crate::qdq::Placement`]
//! names nodes by their index in one form, so it records that form's identity
//! ([`Prepared::form_id`]) and [`crate::qdq::insert`] refuses a placement made for another.

use sha2::{Digest, Sha256};

use crate::model::Model;
use crate::opset;

/// A float model and its form for Q/DQ. Cloning is cheap (the protobufs are shared).
#[derive(Debug, Clone)]
pub struct Prepared {
    original: Model,
    form: Model,
    per_tensor_weights: Option<String>,
    form_id: String,
}

impl Prepared {
    /// Prepares `model`: its opset-13 form with `Constant` nodes as initializers (the model
    /// itself, shared, when it already is one); when raising is impossible, the model as it is
    /// and weights quantized per tensor ([`Prepared::per_tensor_weights`] says why).
    pub fn new(model: &Model) -> Prepared {
        let (form, per_tensor_weights) = opset::for_qdq(model);
        let form = form.into_owned();
        let form_id = identity(&form);
        Prepared {
            original: model.clone(),
            form,
            per_tensor_weights,
            form_id,
        }
    }

    /// The float model as given.
    pub fn original(&self) -> &Model {
        &self.original
    }

    /// The form Q/DQ is placed in and inserted into (the same graph in opset ≥ 13).
    pub fn form(&self) -> &Model {
        &self.form
    }

    /// Why weights get one scale per tensor (the model could not be raised to opset 13).
    pub fn per_tensor_weights(&self) -> Option<&str> {
        self.per_tensor_weights.as_deref()
    }

    /// The form's identity: a hash of its nodes (names, operators, inputs, outputs) in order,
    /// which is what a placement's node indices depend on. Weights are not read.
    pub fn form_id(&self) -> &str {
        &self.form_id
    }
}

impl From<&Model> for Prepared {
    fn from(model: &Model) -> Prepared {
        Prepared::new(model)
    }
}

fn identity(model: &Model) -> String {
    let mut h = Sha256::new();
    for n in &model.graph().node {
        for field in [&n.name, &n.op_type, &n.domain]
            .into_iter()
            .chain(&n.input)
            .chain(&n.output)
        {
            h.update((field.len() as u64).to_le_bytes());
            h.update(field.as_bytes());
        }
        h.update([0xff]);
    }
    hex::encode(&h.finalize()[..12])
}
