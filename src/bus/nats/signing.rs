//! Signed feedback: stores sign each encoded event with an ed25519 NKey, readers accept only
//! events signed by a key they trust for that coordinator.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use async_nats::HeaderMap;
use nkeys::KeyPair;
use serde::Deserialize;

use super::NatsError;
use super::secret::Secret;
use crate::event::validate_token;
use crate::invalid::InvalidSetting;

/// Header carrying the signature (lowercase hex of the 64-byte ed25519 signature).
pub const SIGNATURE_HEADER: &str = "Backflow-Signature";
/// Header carrying the signer's public NKey.
pub const KEY_HEADER: &str = "Backflow-Key";

/// Signing settings (`nats.signing`).
///
/// A store with `seed_file` or `seed` signs every event. A reader (agent, bridge, `watch`)
/// with any trusted key refuses events that are unsigned, signed by a key not trusted for
/// their coordinator, or whose signature does not match.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningOptions {
    /// File holding the store's NKey seed (`S...`, as `backflow nkey` writes it).
    pub seed_file: Option<PathBuf>,
    /// The seed itself (for `BACKFLOW_NATS__SIGNING__SEED` from a secret).
    pub seed: Option<Secret>,
    /// Public keys trusted for every coordinator without an entry in `coordinator_keys`.
    pub trusted_keys: Vec<String>,
    /// Public keys trusted for one coordinator id (only these, for that id).
    pub coordinator_keys: BTreeMap<String, Vec<String>>,
}

impl SigningOptions {
    /// Checks the settings, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.seed_file.is_some() && self.seed.is_some() {
            return Err(InvalidSetting::new(
                "seed",
                "set seed_file or seed, not both",
            ));
        }
        if let Some(seed) = &self.seed {
            KeyPair::from_seed(seed.expose().trim())
                .map_err(|e| InvalidSetting::new("seed", format!("not an NKey seed: {e}")))?;
        }
        for key in &self.trusted_keys {
            public_key(key).map_err(|e| InvalidSetting::new("trusted_keys", e))?;
        }
        for (id, keys) in &self.coordinator_keys {
            validate_token(id)
                .map_err(|e| InvalidSetting::new("coordinator_keys", format!("{id:?}: {e}")))?;
            for key in keys {
                public_key(key).map_err(|e| InvalidSetting::new("coordinator_keys", e))?;
            }
        }
        Ok(())
    }

    /// The signer, if a seed is configured (reads `seed_file`).
    pub fn signer(&self) -> Result<Option<Signer>, NatsError> {
        let seed = match (&self.seed, &self.seed_file) {
            (Some(seed), _) => seed.expose().trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| NatsError::Read {
                    path: path.clone(),
                    source: e.into(),
                })?
                .trim()
                .to_owned(),
            (None, None) => return Ok(None),
        };
        let key = KeyPair::from_seed(&seed).map_err(|e| {
            InvalidSetting::new("nats.signing.seed", format!("not an NKey seed: {e}"))
        })?;
        Ok(Some(Signer { key }))
    }

    /// The verifier, if any key is trusted.
    pub fn verifier(&self) -> Result<Option<Verifier>, NatsError> {
        if self.trusted_keys.is_empty() && self.coordinator_keys.is_empty() {
            return Ok(None);
        }
        let mut keys = HashMap::new();
        for k in self
            .trusted_keys
            .iter()
            .chain(self.coordinator_keys.values().flatten())
        {
            let pair =
                public_key(k).map_err(|e| InvalidSetting::new("nats.signing.trusted_keys", e))?;
            keys.insert(k.clone(), pair);
        }
        Ok(Some(Verifier {
            keys,
            global: self.trusted_keys.clone(),
            per_coordinator: self.coordinator_keys.clone(),
        }))
    }
}

fn public_key(key: &str) -> Result<KeyPair, String> {
    KeyPair::from_public_key(key).map_err(|e| format!("{key:?} is not a public NKey: {e}"))
}

/// Signs encoded events (store side).
pub struct Signer {
    key: KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public_key", &self.key.public_key())
            .finish()
    }
}

impl Signer {
    /// The headers that sign `payload`.
    pub fn headers(&self, payload: &[u8]) -> Result<HeaderMap, NatsError> {
        let sig = self
            .key
            .sign(payload)
            .map_err(|e| NatsError::Sign(e.into()))?;
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, hex(&sig).as_str());
        headers.insert(KEY_HEADER, self.key.public_key().as_str());
        Ok(headers)
    }

    /// The public key readers must trust.
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }
}

/// Why a reader refused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No signature or no key header.
    Unsigned,
    /// Signed by a key not trusted for the event's coordinator.
    UntrustedKey,
    /// The signature does not match the payload.
    BadSignature,
}

/// Checks signatures against the trusted keys (reader side). Pure: no I/O.
#[derive(Debug)]
pub struct Verifier {
    keys: HashMap<String, KeyPair>,
    global: Vec<String>,
    per_coordinator: BTreeMap<String, Vec<String>>,
}

impl Verifier {
    /// Accepts `payload` of `coordinator` if `headers` sign it with a key trusted for it.
    pub fn check(
        &self,
        coordinator: &str,
        payload: &[u8],
        headers: Option<&HeaderMap>,
    ) -> Result<(), Refusal> {
        let get = |name| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
        let (Some(sig), Some(key)) = (get(SIGNATURE_HEADER), get(KEY_HEADER)) else {
            return Err(Refusal::Unsigned);
        };
        let trusted = self
            .per_coordinator
            .get(coordinator)
            .unwrap_or(&self.global);
        if !trusted.iter().any(|k| k == key) {
            return Err(Refusal::UntrustedKey);
        }
        let pair = self.keys.get(key).ok_or(Refusal::UntrustedKey)?;
        let sig = unhex(sig).ok_or(Refusal::BadSignature)?;
        pair.verify(payload, &sig)
            .map_err(|_| Refusal::BadSignature)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(trusted: &[&str], per: &[(&str, &str)]) -> SigningOptions {
        SigningOptions {
            trusted_keys: trusted.iter().map(|k| (*k).to_owned()).collect(),
            coordinator_keys: per
                .iter()
                .map(|(id, k)| ((*id).to_owned(), vec![(*k).to_owned()]))
                .collect(),
            ..SigningOptions::default()
        }
    }

    fn signer() -> (Signer, String) {
        let key = KeyPair::new_service();
        let public = key.public_key();
        (Signer { key }, public)
    }

    #[test]
    fn a_signature_of_a_trusted_key_passes_and_every_other_case_is_refused() {
        let (store, key) = signer();
        let (other, other_key) = signer();
        let v = options(&[&key], &[("b", &other_key)])
            .verifier()
            .unwrap()
            .unwrap();
        let h = store.headers(b"event").unwrap();
        assert_eq!(v.check("a", b"event", Some(&h)), Ok(()));
        assert_eq!(v.check("a", b"evenT", Some(&h)), Err(Refusal::BadSignature));
        assert_eq!(v.check("a", b"event", None), Err(Refusal::Unsigned));
        // Coordinator b trusts only its own key; the global key does not sign for it.
        assert_eq!(v.check("b", b"event", Some(&h)), Err(Refusal::UntrustedKey));
        let h2 = other.headers(b"event").unwrap();
        assert_eq!(v.check("b", b"event", Some(&h2)), Ok(()));
        assert_eq!(
            v.check("a", b"event", Some(&h2)),
            Err(Refusal::UntrustedKey)
        );
        // A trusted key header with someone else's signature.
        let mut forged = h2.clone();
        forged.insert(KEY_HEADER, key.as_str());
        assert_eq!(
            v.check("a", b"event", Some(&forged)),
            Err(Refusal::BadSignature)
        );
        let mut garbage = h.clone();
        garbage.insert(SIGNATURE_HEADER, "zz");
        assert_eq!(
            v.check("a", b"event", Some(&garbage)),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn settings_are_checked() {
        assert!(options(&["nope"], &[]).validate().is_err());
        let (_, key) = signer();
        assert!(options(&[&key], &[("bad id", &key)]).validate().is_err());
        assert!(options(&[&key], &[("ok", &key)]).validate().is_ok());
        assert!(SigningOptions::default().verifier().unwrap().is_none());
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
    }
}
