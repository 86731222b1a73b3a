//! Signed cache entries. Loading an engine runs native code, so a team can require that every
//! entry it fetches was signed by one of its build machines: an Ed25519 signature over the
//! **entry record** — the key and every other file's name and SHA-256, one per line in name
//! order — kept in the entry as `signature.json` (listed in the index like any file, so the
//! storage and verification code need no special case).
//!
//! Publishers hold a secret key (`TRT_BUILD_CACHE_SIGNING_KEY`: 64 hex digits, or a file that
//! holds them); consumers configure the public keys they trust
//! (`TRT_BUILD_CACHE_TRUSTED_KEYS`, comma-separated hex) and, to refuse unsigned entries,
//! `TRT_BUILD_CACHE_REQUIRE_SIGNED=1`. `cargo xtask cache keygen` makes a key pair.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, Verifier};
use serde::{Deserialize, Serialize};

use crate::entry::{Entry, EntryIndex};
use crate::error::{Error, ErrorKind};

/// The file of an entry that holds its signature.
pub const SIGNATURE: &str = "signature.json";

/// `signature.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignatureFile {
    /// The signer's public key (hex).
    public_key: String,
    /// Ed25519 signature of the entry record (hex).
    signature: String,
}

/// The bytes a signature covers: the key and every file but the signature, with its hash.
fn record(key: &str, files: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = format!("trt-cache entry record v1\nkey {key}\n");
    for (name, sha) in files.iter().filter(|(n, _)| n.as_str() != SIGNATURE) {
        out.push_str(&format!("file {sha} {name}\n"));
    }
    out.into_bytes()
}

fn config_error(what: &str, why: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Config, format!("{what}: {why}"))
}

fn key_bytes(what: &str, hex_text: &str) -> Result<[u8; 32], Error> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|_| config_error(what, "not hexadecimal (expected 64 hex digits)"))?;
    bytes
        .try_into()
        .map_err(|_| config_error(what, "expected 64 hex digits (32 bytes)"))
}

/// A secret key that signs the entries built here.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "SigningKey(public {})", self.public_key_hex())
    }
}

impl SigningKey {
    /// From its 32-byte seed as 64 hex digits.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for anything else (the value is never echoed).
    pub fn from_hex(seed: &str) -> Result<SigningKey, Error> {
        let bytes = key_bytes("signing key", seed)?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&bytes)))
    }

    /// From the 32 bytes of a seed (e.g. read from `/dev/urandom`).
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The seed as 64 hex digits (to store it; it is the secret).
    pub fn seed_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The public key as 64 hex digits (what consumers trust).
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    /// `entry` with a `signature.json` over its record (a previous signature is replaced).
    ///
    /// # Errors
    ///
    /// As [`Entry::new`].
    pub fn sign(&self, entry: &Entry) -> Result<Entry, Error> {
        let files: Vec<(String, Vec<u8>)> = entry
            .files()
            .filter(|(n, _)| *n != SIGNATURE)
            .map(|(n, b)| (n.to_string(), b.to_vec()))
            .collect();
        let unsigned = Entry::new(entry.key(), files.clone())?;
        let signature = self.0.sign(&record(entry.key(), &unsigned.index().files));
        let file = SignatureFile {
            public_key: self.public_key_hex(),
            signature: hex::encode(signature.to_bytes()),
        };
        let json = serde_json::to_vec_pretty(&file).expect("a signature serializes");
        Entry::new(
            entry.key(),
            files.into_iter().chain([(SIGNATURE.to_string(), json)]),
        )
    }
}

/// What the consumer trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    keys: Vec<ed25519_dalek::VerifyingKey>,
    require_signed: bool,
}

/// What [`TrustPolicy::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Signed by the trusted key (hex) named.
    Signed(String),
    /// Not signed, and the policy does not require it.
    Unsigned,
}

impl TrustPolicy {
    /// Trusts these public keys (64 hex digits each); `require_signed` refuses unsigned
    /// entries.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming the key that is not a valid public key.
    pub fn new<S: AsRef<str>>(keys: &[S], require_signed: bool) -> Result<TrustPolicy, Error> {
        let keys = keys
            .iter()
            .map(|k| {
                let bytes = key_bytes("trusted key", k.as_ref())?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| {
                    config_error(
                        "trusted key",
                        format!("{} is not an Ed25519 public key", k.as_ref().trim()),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        if require_signed && Vec::is_empty(&keys) {
            return Err(config_error(
                "TRT_BUILD_CACHE_REQUIRE_SIGNED",
                "signed entries are required but no key is trusted (TRT_BUILD_CACHE_TRUSTED_KEYS)",
            ));
        }
        Ok(TrustPolicy {
            keys,
            require_signed,
        })
    }

    /// The policy of the environment: `TRT_BUILD_CACHE_TRUSTED_KEYS` (comma-separated) and
    /// `TRT_BUILD_CACHE_REQUIRE_SIGNED` (`1`/`true`), read through `var`.
    ///
    /// # Errors
    ///
    /// As [`TrustPolicy::new`].
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<TrustPolicy, Error> {
        let keys: Vec<String> = var("TRT_BUILD_CACHE_TRUSTED_KEYS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let require = var("TRT_BUILD_CACHE_REQUIRE_SIGNED")
            .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        TrustPolicy::new(&keys, require)
    }

    /// Whether anything is checked (a key is trusted).
    pub fn is_active(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks an entry's signature from its index and its `signature.json` bytes (if any):
    /// a signature that does not verify with a trusted key is always refused; an unsigned
    /// entry is refused when signatures are required.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Untrusted`] naming the key and why.
    pub fn check(&self, index: &EntryIndex, signature: Option<&[u8]>) -> Result<Trust, Error> {
        let key = &index.key;
        let untrusted =
            |why: String| Error::new(ErrorKind::Untrusted, format!("entry {key}: {why}"));
        let Some(bytes) = signature else {
            return if self.require_signed {
                Err(untrusted(
                    "is not signed, and signed entries are required (TRT_BUILD_CACHE_REQUIRE_SIGNED)".into(),
                ))
            } else {
                Ok(Trust::Unsigned)
            };
        };
        if !self.is_active() {
            return Ok(Trust::Unsigned);
        }
        let file: SignatureFile = serde_json::from_slice(bytes)
            .map_err(|e| untrusted(format!("{SIGNATURE} is not a signature ({e})")))?;
        let signer = self
            .keys
            .iter()
            .find(|k| hex::encode(k.to_bytes()) == file.public_key)
            .ok_or_else(|| {
                untrusted(format!(
                    "is signed by {}, which is not a trusted key (TRT_BUILD_CACHE_TRUSTED_KEYS)",
                    file.public_key.escape_debug()
                ))
            })?;
        let signature = hex::decode(&file.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| untrusted(format!("{SIGNATURE} holds no valid signature")))?;
        signer
            .verify(&record(key, &index.files), &signature)
            .map_err(|_| {
                untrusted(format!(
                    "the signature by {} does not match the entry's files (modified after signing)",
                    file.public_key
                ))
            })?;
        Ok(Trust::Signed(file.public_key))
    }

    /// [`TrustPolicy::check`] of an entry in memory.
    ///
    /// # Errors
    ///
    /// As [`TrustPolicy::check`].
    pub fn check_entry(&self, entry: &Entry) -> Result<Trust, Error> {
        self.check(&entry.index(), entry.file(SIGNATURE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{ENGINE, MANIFEST};

    fn entry(engine: &[u8]) -> Entry {
        Entry::new(
            "a".repeat(64),
            [
                (ENGINE.to_string(), engine.to_vec()),
                (MANIFEST.to_string(), b"{}".to_vec()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn signatures_verify_and_every_tampering_is_refused() {
        let key = SigningKey::from_seed([7; 32]);
        let other = SigningKey::from_seed([8; 32]);
        let signed = key.sign(&entry(b"engine")).unwrap();
        assert!(signed.file(SIGNATURE).is_some());
        let trusting = TrustPolicy::new(&[key.public_key_hex()], true).unwrap();
        assert_eq!(
            trusting.check_entry(&signed).unwrap(),
            Trust::Signed(key.public_key_hex())
        );
        // Another engine under the same signature.
        let tampered = Entry::new(
            signed.key(),
            signed.files().map(|(n, b)| {
                let b = if n == ENGINE {
                    b"evil!!".to_vec()
                } else {
                    b.to_vec()
                };
                (n.to_string(), b)
            }),
        )
        .unwrap();
        let e = trusting.check_entry(&tampered).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Untrusted);
        assert!(e.to_string().contains("modified after signing"), "{e}");
        // Signed by a key nobody trusts.
        let e = trusting
            .check_entry(&other.sign(&entry(b"engine")).unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("not a trusted key"), "{e}");
        // Unsigned: refused when required, accepted otherwise.
        let e = trusting.check_entry(&entry(b"engine")).unwrap_err();
        assert!(e.to_string().contains("not signed"), "{e}");
        let lenient = TrustPolicy::new(&[key.public_key_hex()], false).unwrap();
        assert_eq!(
            lenient.check_entry(&entry(b"engine")).unwrap(),
            Trust::Unsigned
        );
        // Requiring signatures without a trusted key is a configuration error.
        assert!(TrustPolicy::new::<&str>(&[], true).is_err());
        assert!(TrustPolicy::new(&["zz"], false).is_err());
        // Keys round-trip through hex, and Debug never shows the secret.
        let again = SigningKey::from_hex(&key.seed_hex()).unwrap();
        assert_eq!(again.public_key_hex(), key.public_key_hex());
        assert!(!format!("{key:?}").contains(&key.seed_hex()));
    }
}
