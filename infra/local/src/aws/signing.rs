//! The signing key of sealed documents on the AWS path: an asymmetric KMS key at the
//! endpoint (`ECC_NIST_P256` for `SIGN_VERIFY`, as each signing stack's template holds),
//! found by its alias `alias/<prefix>-signing` or created with it, so that a restarted
//! stack on the same endpoint and prefix seals with the same key and what it sealed before
//! still verifies.

use std::sync::Arc;

use anyhow::Context;
use aws_sdk_kms::operation::describe_key::DescribeKeyError;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use clinicflow::adapters::kms::KmsSigner;
use clinicflow::sealing::Signer;
use clinicflow::topology;

/// The alias of the signing key of the stacks under `prefix`.
pub fn alias(prefix: &str) -> String {
    format!("alias/{prefix}-signing")
}

/// The KMS signer of the key under `prefix`, the key created when absent; `None` when no
/// slice seals documents.
pub async fn provision(sdk: &aws_config::SdkConfig, prefix: &str) -> anyhow::Result<Option<Arc<dyn Signer>>> {
    if clinicflow::catalog().signing_stacks().is_empty() {
        return Ok(None);
    }
    let kms = aws_sdk_kms::Client::new(sdk);
    let alias = alias(prefix);
    let existing = kms.describe_key().key_id(&alias).send().await;
    let arn = match existing {
        Ok(found) => found.key_metadata().map(|m| m.arn().unwrap_or_default().to_owned()),
        Err(e) if e.as_service_error().is_some_and(DescribeKeyError::is_not_found_exception) => None,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("looking up the signing key {alias}"))),
    };
    let arn = match arn.filter(|a| !a.is_empty()) {
        Some(arn) => arn,
        None => {
            let created = kms
                .create_key()
                .key_spec(KeySpec::from(topology::SIGNING_KEY_SPEC))
                .key_usage(KeyUsageType::from(topology::SIGNING_KEY_USAGE))
                .description(format!("clinicflow local ({prefix}): seals documents"))
                .send()
                .await
                .context("creating the signing key")?;
            let meta = created.key_metadata().context("the created key has no metadata")?;
            kms.create_alias()
                .alias_name(&alias)
                .target_key_id(meta.key_id())
                .send()
                .await
                .with_context(|| format!("naming the signing key {alias}"))?;
            meta.arn().context("the created key has no ARN")?.to_owned()
        }
    };
    Ok(Some(Arc::new(KmsSigner::new(kms, arn))))
}
