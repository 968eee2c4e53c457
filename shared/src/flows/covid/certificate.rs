//! A negative test's certificate, issued by the health centre (seed 002): the holder's
//! name, the test, when the sample was taken, the result, the test site, the issuer, the
//! certificate's id and its expiry, sealed with the platform's signing key
//! ([`crate::sealing`]) so that anyone can verify it offline from its QR payload. It is an
//! aggregate of its own beside the application it certifies (its id is not the case's),
//! sealed once: the consumer that hears the negative result seals it and records it with
//! the application's `CertificateIssued` in one transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::application::CONTEXT;
use super::site::TestResult;
use crate::domain::{Aggregate, DomainError, PersonName};
use crate::sealing::{self, Document, Opened, Rejected, Value};

/// The sealed claims' names, as a verifier reads them beside `iss`, `iat`, `exp`, `cti`.
pub mod claims {
    /// The holder's name.
    pub const HOLDER: &str = "holder";
    /// The test (`RT-PCR`).
    pub const TEST: &str = "test";
    /// When the sample was taken (RFC 3339).
    pub const SAMPLED_AT: &str = "sampled_at";
    /// The result (`negative`).
    pub const RESULT: &str = "result";
    /// The test site's name.
    pub const SITE: &str = "site";
}

/// A certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The certificate's id (`cti`).
    pub id: String,
    /// The application it certifies.
    pub application_id: String,
    /// Its citizen (`sub`), the only one who reads it through the API.
    pub citizen_sub: String,
    /// What it says.
    pub content: Content,
    /// The sealed document, as a QR code carries it.
    pub payload: String,
}

/// What a certificate says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Content {
    /// The holder.
    pub holder: PersonName,
    /// The test.
    pub test_type: String,
    /// When the sample was taken.
    pub sampled_at: DateTime<Utc>,
    /// The result: always negative (a positive result gets no certificate).
    pub result: TestResult,
    /// The test site's name.
    pub site_name: String,
    /// The issuer.
    pub issuer: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Until when it holds.
    pub expires_at: DateTime<Utc>,
}

impl Content {
    /// The document to seal under id `id`.
    pub fn document(&self, id: &str) -> Document {
        Document {
            issuer: self.issuer.clone(),
            id: id.to_owned(),
            issued_at: self.issued_at.timestamp(),
            expires_at: self.expires_at.timestamp(),
            claims: vec![
                (claims::HOLDER.into(), Value::Text(self.holder.as_str().to_owned())),
                (claims::TEST.into(), Value::Text(self.test_type.clone())),
                (claims::SAMPLED_AT.into(), Value::Text(self.sampled_at.to_rfc3339())),
                (claims::RESULT.into(), Value::Text(self.result.as_str().to_owned())),
                (claims::SITE.into(), Value::Text(self.site_name.clone())),
            ],
        }
    }
}

/// A presented payload, as the public verifier answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = VerificationResult)]
pub struct Verification {
    /// The signature holds and the certificate has not expired.
    pub valid: bool,
    /// Why not, when not: `expired`, `bad signature`, `unknown key`, `not a certificate`, ….
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The holder's name, when the signature holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The result, when the signature holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The test, when the signature holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// The certificate's id, when the signature holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,
    /// Its expiry, when the signature holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a verifier answers for what [`sealing::open`] made of a payload at `now`.
pub fn verification(opened: Result<Opened, Rejected>) -> Verification {
    match opened {
        Err(why) => Verification {
            valid: false,
            reason: Some(
                match why {
                    Rejected::NotSealed | Rejected::Malformed(_) => "not a certificate",
                    Rejected::Algorithm => "unsupported algorithm",
                    Rejected::UnknownKey => "unknown key",
                    Rejected::BadSignature => "bad signature",
                }
                .to_owned(),
            ),
            holder: None,
            result: None,
            test: None,
            certificate_id: None,
            expires_at: None,
        },
        Ok(Opened { document, expired }) => Verification {
            valid: !expired,
            reason: expired.then(|| "expired".to_owned()),
            holder: document.text(claims::HOLDER).map(str::to_owned),
            result: document.text(claims::RESULT).map(str::to_owned),
            test: document.text(claims::TEST).map(str::to_owned),
            certificate_id: Some(document.id.clone()),
            expires_at: DateTime::from_timestamp(document.expires_at, 0),
        },
    }
}

/// The commands on a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Record it, sealed.
    Seal {
        /// The application.
        application_id: String,
        /// Its citizen.
        citizen_sub: String,
        /// What it says.
        content: Content,
        /// The sealed document.
        payload: String,
    },
}

/// What happened to a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// The certificate was sealed and issued.
    CertificateSealed {
        /// The application it certifies.
        application_id: String,
        /// Its citizen (`sub`); the owner.
        citizen_sub: String,
        /// What it says.
        content: Content,
        /// The sealed document (`CF1:` and Base45), as its QR code carries it.
        payload: String,
    },
}

impl Aggregate for Certificate {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        match (state, command) {
            (Some(_), Command::Seal { .. }) => Ok(vec![]),
            (
                None,
                Command::Seal {
                    application_id,
                    citizen_sub,
                    content,
                    payload,
                },
            ) => Ok(vec![Event::CertificateSealed {
                application_id,
                citizen_sub,
                content,
                payload,
            }]),
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        match (state, event) {
            (Some(c), _) => Some(c),
            (
                None,
                Event::CertificateSealed {
                    application_id,
                    citizen_sub,
                    content,
                    payload,
                },
            ) => Some(Certificate {
                id: id.to_owned(),
                application_id: application_id.clone(),
                citizen_sub: citizen_sub.clone(),
                content: content.clone(),
                payload: payload.clone(),
            }),
        }
    }
}

/// Seals `content` as certificate `id` with the platform's key.
pub async fn seal(signer: &dyn sealing::Signer, id: &str, content: &Content) -> Result<String, sealing::SignError> {
    sealing::seal(signer, &content.document(id)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::{KeySigner, Signer as _};

    fn content() -> Content {
        let at = DateTime::from_timestamp(1_803_000_000, 0).expect("time");
        Content {
            holder: PersonName::parse("김서연").expect("name"),
            test_type: "RT-PCR".into(),
            sampled_at: at,
            result: TestResult::Negative,
            site_name: "마포구 선별진료소".into(),
            issuer: "clinicflow health centre".into(),
            issued_at: at + chrono::Duration::hours(3),
            expires_at: at + chrono::Duration::hours(48),
        }
    }

    #[tokio::test]
    async fn a_sealed_certificate_verifies_with_its_holder_until_it_expires() {
        let signer = KeySigner::random();
        let payload = seal(&signer, "01JCERT0000000000000000000", &content()).await.expect("sealed");
        let open = |now: i64| sealing::open(&payload, signer.verifying_key(), signer.key_id(), now);
        let fresh = verification(open(1_803_010_000));
        assert!(fresh.valid, "{fresh:?}");
        assert_eq!(fresh.holder.as_deref(), Some("김서연"));
        assert_eq!(fresh.result.as_deref(), Some("negative"));
        assert_eq!(fresh.certificate_id.as_deref(), Some("01JCERT0000000000000000000"));
        let late = verification(open(1_803_000_000 + 48 * 3600));
        assert_eq!((late.valid, late.reason.as_deref()), (false, Some("expired")));
        assert_eq!(
            late.holder.as_deref(),
            Some("김서연"),
            "an expired certificate still says whose it was"
        );
        let forged = verification(sealing::open(&payload, KeySigner::random().verifying_key(), signer.key_id(), 0));
        assert_eq!(
            (forged.valid, forged.reason.as_deref(), forged.holder),
            (false, Some("bad signature"), None)
        );
        assert_eq!(
            verification(sealing::open("hello", signer.verifying_key(), signer.key_id(), 0))
                .reason
                .as_deref(),
            Some("not a certificate")
        );
    }

    #[test]
    fn a_certificate_is_sealed_once() {
        let seal = || Command::Seal {
            application_id: "a1".into(),
            citizen_sub: "c1".into(),
            content: content(),
            payload: "CF1:X".into(),
        };
        let events = Certificate::decide(None, seal()).expect("sealed");
        let c = events
            .iter()
            .fold(None, |s, e| Certificate::apply(s, "k1", e))
            .expect("a certificate");
        assert_eq!((c.id.as_str(), c.application_id.as_str()), ("k1", "a1"));
        assert_eq!(Certificate::decide(Some(&c), seal()), Ok(vec![]));
    }
}
