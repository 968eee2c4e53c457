//! The KMS signer: an asymmetric KMS key (`ECC_NIST_P256`, `SIGN_VERIFY`) signs with
//! `ECDSA_SHA_256`; the private key never leaves KMS. KMS answers a DER `ECDSA-Sig-Value`,
//! which is turned into the 64 bytes `r ‖ s` that COSE's `ES256` takes (RFC 9053 §2.1).
//!
//! The signing function holds only `kms:Sign` on the key; the key id documents carry is
//! derived from the key's ARN ([`crate::sealing::key_id_of_name`]), so signing needs no
//! other call. The function that publishes the public key (and verifies presented
//! documents) holds `kms:GetPublicKey` as well; it asks once per process.

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use tokio::sync::OnceCell;

use super::aws::error_code;
use crate::sealing::{SignError, Signer, key_id_of_name};

/// Codes that say the key cannot sign as configured: retrying will not help.
const KEY_CODES: &[&str] = &[
    "NotFoundException",
    "DisabledException",
    "InvalidKeyUsageException",
    "KMSInvalidStateException",
    "AccessDeniedException",
    "AccessDeniedExceptionException",
    "UnsupportedOperationException",
    "ValidationException",
];

/// Signs with one KMS key.
#[derive(Debug)]
pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key_arn: String,
    kid: Vec<u8>,
    public: OnceCell<VerifyingKey>,
}

impl KmsSigner {
    /// A signer with the key `key_arn` (its full ARN: the key id documents carry is made
    /// from it).
    pub fn new(client: aws_sdk_kms::Client, key_arn: impl Into<String>) -> Self {
        let key_arn = key_arn.into();
        let kid = key_id_of_name(&key_arn);
        Self {
            client,
            key_arn,
            kid,
            public: OnceCell::new(),
        }
    }
}

/// The KMS signer of the key `arn`, on `sdk`'s configuration: the
/// [`crate::wiring::SignerFactory`] a bootstrap whose functions seal documents hands to
/// [`crate::bootstrap::run_flow`].
pub fn signer(sdk: &aws_config::SdkConfig, arn: String) -> std::sync::Arc<dyn Signer> {
    std::sync::Arc::new(KmsSigner::new(aws_sdk_kms::Client::new(sdk), arn))
}

fn sign_error(code: String) -> SignError {
    if KEY_CODES.contains(&code.as_str()) {
        SignError::Key(code)
    } else {
        SignError::Transient(code)
    }
}

#[async_trait]
impl Signer for KmsSigner {
    fn key_id(&self) -> &[u8] {
        &self.kid
    }

    async fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        let out = self
            .client
            .sign()
            .key_id(&self.key_arn)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| sign_error(error_code(&e)))?;
        let der = out
            .signature()
            .ok_or_else(|| SignError::Transient("Sign answered no signature".into()))?;
        let signature = Signature::from_der(der.as_ref()).map_err(|_| SignError::Key("Sign answered no P-256 ECDSA signature".into()))?;
        // KMS may answer either of an ECDSA signature's two forms; documents carry the low-S.
        Ok(crate::sealing::low_s(signature))
    }

    async fn public_key(&self) -> Result<VerifyingKey, SignError> {
        let key = self
            .public
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .get_public_key()
                    .key_id(&self.key_arn)
                    .send()
                    .await
                    .map_err(|e| sign_error(error_code(&e)))?;
                let der = out
                    .public_key()
                    .ok_or_else(|| SignError::Transient("GetPublicKey answered no key".into()))?;
                VerifyingKey::from_public_key_der(der.as_ref()).map_err(|_| SignError::Key("the key is not an ECC_NIST_P256 key".into()))
            })
            .await?;
        Ok(*key)
    }
}
