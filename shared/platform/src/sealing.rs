//! Sealed documents: claims that anyone holding the platform's public key can verify
//! offline, as a QR code carries them (a test certificate, a pass).
//!
//! The format is the one the EU Digital COVID Certificate uses, minus its compression:
//!
//! - the claims are a CWT claims set (RFC 8392): `iss` (1), `exp` (4), `iat` (6), `cti` (7),
//!   and the document's own claims under text keys;
//! - they are signed with ECDSA P-256 and SHA-256 (COSE `ES256`) in a tagged `COSE_Sign1`
//!   (RFC 9052) whose protected header holds the algorithm and the key id (`kid`, 8 bytes:
//!   for a key the process holds, the first 8 bytes of the SHA-256 of its DER
//!   `SubjectPublicKeyInfo`, as in the DCC; for a KMS key, of its ARN, since the signing
//!   function may not read the public key);
//! - the COSE bytes are written in Base45 (RFC 9285, the alphabet of a QR code's
//!   alphanumeric mode) behind the prefix `CF1:`.
//!
//! A payload of some 200 bytes gains little from zlib, so there is none: a verifier needs
//! Base45, CBOR and ECDSA, nothing else (`tests/verifiers/verify_sealed.py` is one, sharing
//! no code with this module). The signing key sits behind [`Signer`]: a key file in the data
//! directory locally ([`crate::adapters::keyfile`]), a KMS asymmetric key on AWS
//! ([`crate::adapters::kms`], which holds only `kms:Sign`).

use async_trait::async_trait;
/// A claim's value (CBOR): `Value::Text` for most.
pub use coset::cbor::value::Value;
use coset::cwt::{ClaimName, ClaimsSet, ClaimsSetBuilder, Timestamp};
use coset::{CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};

/// What every sealed document's text starts with.
pub const PREFIX: &str = "CF1:";

/// Why a document could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A passing failure (the key service timed out, throttled): retry.
    #[error("signing failed for now: {0}")]
    Transient(String),
    /// The key cannot sign (missing, disabled, not an ECDSA P-256 key, no permission).
    #[error("signing key unusable: {0}")]
    Key(String),
}

/// The platform's signing key.
#[async_trait]
pub trait Signer: Send + Sync {
    /// The key's id, 8 bytes, as documents name it (`kid`).
    fn key_id(&self) -> &[u8];
    /// `message` signed with ECDSA P-256 over its SHA-256, as the 64 bytes `r ‖ s`.
    async fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError>;
    /// The key's public half (a KMS key: asked once, then kept).
    async fn public_key(&self) -> Result<VerifyingKey, SignError>;
}

/// The key id of a key the process holds: the first 8 bytes of the SHA-256 of its DER
/// `SubjectPublicKeyInfo`.
pub fn key_id(key: &VerifyingKey) -> Vec<u8> {
    let der = key.to_public_key_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
    Sha256::digest(der)[..8].to_vec()
}

/// The key id of a key known by name (a KMS key's ARN): the first 8 bytes of its SHA-256.
pub fn key_id_of_name(name: &str) -> Vec<u8> {
    Sha256::digest(name.as_bytes())[..8].to_vec()
}

/// The public key as a JWK (RFC 7517), with its `kid` (Base64url), `alg` `ES256` and `use`
/// `sig`, for a verifier to take from the API.
pub fn public_jwk(key: &VerifyingKey, kid: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let point = key.to_encoded_point(false);
    let coordinate = |c: Option<&p256::FieldBytes>| c.map(|c| b64.encode(c)).unwrap_or_default();
    serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": coordinate(point.x()),
        "y": coordinate(point.y()),
        "kid": b64.encode(kid),
        "alg": "ES256",
        "use": "sig",
    })
}

/// `signature` in its low-S form (`s <= n/2`), the one form [`open`] takes, as 64 bytes.
pub fn low_s(signature: Signature) -> [u8; 64] {
    signature.normalize_s().unwrap_or(signature).to_bytes().into()
}

/// A document to seal: who issues it, its id, when it was issued and until when it holds,
/// and its own claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Issuer (`iss`).
    pub issuer: String,
    /// The document's id (`cti`).
    pub id: String,
    /// Issued at, Unix seconds (`iat`).
    pub issued_at: i64,
    /// Valid until, Unix seconds (`exp`).
    pub expires_at: i64,
    /// The document's own claims, under text keys, in this order.
    pub claims: Vec<(String, Value)>,
}

impl Document {
    /// The claim named `name`, if it is text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.claims.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_text())
    }
}

/// Signs `document` and writes it as text: `CF1:` and Base45.
pub async fn seal(signer: &dyn Signer, document: &Document) -> Result<String, SignError> {
    let mut claims = ClaimsSetBuilder::new()
        .issuer(document.issuer.clone())
        .cwt_id(document.id.as_bytes().to_vec())
        .issued_at(Timestamp::WholeSeconds(document.issued_at))
        .expiration_time(Timestamp::WholeSeconds(document.expires_at));
    for (name, value) in &document.claims {
        claims = claims.text_claim(name.clone(), value.clone());
    }
    let payload = claims
        .build()
        .to_vec()
        .map_err(|e| SignError::Key(format!("claims not encodable: {e}")))?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(signer.key_id().to_vec())
        .build();
    let mut sign1 = CoseSign1Builder::new().protected(protected).payload(payload).build();
    sign1.signature = signer.sign(&sign1.tbs_data(b"")).await?.to_vec();
    let bytes = sign1
        .to_tagged_vec()
        .map_err(|e| SignError::Key(format!("document not encodable: {e}")))?;
    Ok(format!("{PREFIX}{}", base45::encode(bytes)))
}

/// Why a presented text is not a valid document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not `CF1:` and Base45.
    #[error("not a sealed document (CF1: and Base45 expected)")]
    NotSealed,
    /// Base45, but not a COSE_Sign1 with a CWT claims set.
    #[error("malformed document: {0}")]
    Malformed(String),
    /// Signed with another algorithm than ES256.
    #[error("unsupported algorithm (ES256 expected)")]
    Algorithm,
    /// Signed with another key than this platform's.
    #[error("unknown key")]
    UnknownKey,
    /// The signature does not match the content: altered, or forged.
    #[error("signature does not match")]
    BadSignature,
}

/// A document whose signature holds, and whether it still does at the time asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// What it says.
    pub document: Document,
    /// Past its `exp`.
    pub expired: bool,
}

/// Reads and verifies `text` against `key`, known as `kid`, at `now` (Unix seconds).
pub fn open(text: &str, key: &VerifyingKey, kid: &[u8], now: i64) -> Result<Opened, Rejected> {
    let encoded = text.trim().strip_prefix(PREFIX).ok_or(Rejected::NotSealed)?;
    let bytes = base45::decode(encoded).map_err(|_| Rejected::NotSealed)?;
    // One text per document: a Base45 the decoder forgives (a tail out of range) is not the
    // one the issuer wrote.
    if base45::encode(&bytes) != encoded {
        return Err(Rejected::NotSealed);
    }
    let sign1 = CoseSign1::from_tagged_slice(&bytes).map_err(|e| Rejected::Malformed(e.to_string()))?;
    let header = &sign1.protected.header;
    if header.alg != Some(coset::RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256)) {
        return Err(Rejected::Algorithm);
    }
    if header.key_id != kid {
        return Err(Rejected::UnknownKey);
    }
    sign1.verify_signature(b"", |signature, data| {
        let signature = Signature::from_slice(signature).map_err(|_| Rejected::BadSignature)?;
        // The issuer writes low-S signatures only: the other half of each pair is a second
        // text of the same document.
        if signature.normalize_s().is_some() {
            return Err(Rejected::BadSignature);
        }
        key.verify(data, &signature).map_err(|_| Rejected::BadSignature)
    })?;
    let payload = sign1.payload.as_deref().ok_or_else(|| Rejected::Malformed("no payload".into()))?;
    let claims = ClaimsSet::from_slice(payload).map_err(|e| Rejected::Malformed(e.to_string()))?;
    let document = document_of(claims)?;
    Ok(Opened {
        expired: now >= document.expires_at,
        document,
    })
}

fn document_of(claims: ClaimsSet) -> Result<Document, Rejected> {
    let seconds = |t: Option<Timestamp>, name: &str| match t {
        Some(Timestamp::WholeSeconds(s)) => Ok(s),
        Some(Timestamp::FractionalSeconds(s)) if s.is_finite() => Ok(s as i64),
        _ => Err(Rejected::Malformed(format!("no {name}"))),
    };
    let id = claims
        .cwt_id
        .and_then(|id| String::from_utf8(id).ok())
        .ok_or_else(|| Rejected::Malformed("no cti".into()))?;
    Ok(Document {
        issuer: claims.issuer.ok_or_else(|| Rejected::Malformed("no iss".into()))?,
        id,
        issued_at: seconds(claims.issued_at, "iat")?,
        expires_at: seconds(claims.expiration_time, "exp")?,
        claims: claims
            .rest
            .into_iter()
            .filter_map(|(name, value)| match name {
                ClaimName::Text(name) => Some((name, value)),
                _ => None,
            })
            .collect(),
    })
}

/// A signer holding its key in memory: the local key file's, and tests'.
#[derive(Clone)]
pub struct KeySigner {
    key: p256::ecdsa::SigningKey,
    public: VerifyingKey,
    kid: Vec<u8>,
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySigner").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl KeySigner {
    /// A signer with `key`.
    pub fn new(key: p256::ecdsa::SigningKey) -> Self {
        let public = *key.verifying_key();
        let kid = key_id(&public);
        Self { key, public, kid }
    }

    /// A signer with a new random key.
    pub fn random() -> Self {
        Self::new(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    /// The private key, for the key file.
    pub fn signing_key(&self) -> &p256::ecdsa::SigningKey {
        &self.key
    }

    /// The public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }
}

#[async_trait]
impl Signer for KeySigner {
    fn key_id(&self) -> &[u8] {
        &self.kid
    }

    async fn public_key(&self) -> Result<VerifyingKey, SignError> {
        Ok(self.public)
    }

    async fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        use p256::ecdsa::signature::Signer as _;
        let signature: Signature = self.key.sign(message);
        Ok(low_s(signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Document {
        Document {
            issuer: "clinicflow test".into(),
            id: "01JTESTDOCUMENT000000000000".into(),
            issued_at: 1_800_000_000,
            expires_at: 1_800_086_400,
            claims: vec![
                ("name".into(), Value::Text("김민준".into())),
                ("result".into(), Value::Text("negative".into())),
            ],
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
    }

    #[test]
    fn a_sealed_document_opens_with_its_claims_until_it_expires() {
        let signer = KeySigner::random();
        let text = block_on(seal(&signer, &document())).expect("sealed");
        assert!(text.starts_with(PREFIX));
        assert!(
            text[PREFIX.len()..]
                .bytes()
                .all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&b)),
            "Base45 only: {text}"
        );
        let opened = open(&text, signer.verifying_key(), signer.key_id(), 1_800_000_001).expect("valid");
        assert_eq!(opened.document, document());
        assert!(!opened.expired);
        assert_eq!(opened.document.text("result"), Some("negative"));
        assert!(
            open(&text, signer.verifying_key(), signer.key_id(), 1_800_086_400)
                .expect("still signed")
                .expired
        );
    }

    #[test]
    fn any_byte_changed_breaks_the_seal_and_another_key_is_unknown() {
        let signer = KeySigner::random();
        let text = block_on(seal(&signer, &document())).expect("sealed");
        let bytes = base45::decode(&text[PREFIX.len()..]).expect("base45");
        for i in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 0x01;
            let altered = format!("{PREFIX}{}", base45::encode(&altered));
            assert!(
                open(&altered, signer.verifying_key(), signer.key_id(), 1_800_000_001).is_err(),
                "byte {i} altered still opens"
            );
        }
        let other = KeySigner::random();
        assert_eq!(
            open(&text, other.verifying_key(), other.key_id(), 1_800_000_001),
            Err(Rejected::UnknownKey)
        );
        assert_eq!(
            open(&text, other.verifying_key(), signer.key_id(), 1_800_000_001),
            Err(Rejected::BadSignature),
            "another key under this key's id"
        );
        let (key, kid) = (signer.verifying_key(), signer.key_id());
        assert_eq!(open("HC1:6BFOXN", key, kid, 0), Err(Rejected::NotSealed));
        assert_eq!(open("CF1:not base45!", key, kid, 0), Err(Rejected::NotSealed));
        assert!(matches!(open("CF1:", key, kid, 0), Err(Rejected::Malformed(_))));
    }

    #[test]
    fn the_jwk_names_the_curve_and_the_same_kid_as_the_documents() {
        use base64::Engine as _;
        let signer = KeySigner::random();
        let jwk = public_jwk(signer.verifying_key(), signer.key_id());
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk["kid"].as_str().expect("kid"))
            .expect("b64");
        assert_eq!(kid, key_id(signer.verifying_key()));
        assert_eq!(kid.len(), 8);
    }
}
