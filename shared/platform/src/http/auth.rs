//! Dev tokens: HS256 JWTs shaped like Cognito ID tokens (`sub`, `cognito:groups`,
//! `custom:site`, `iss`, `aud`, `exp`), issued and checked by the local gateway exactly where API Gateway's JWT
//! authorizer checks Cognito's tokens in AWS.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Claims;

/// The issuer of local dev tokens.
pub const DEV_ISSUER: &str = "https://clinicflow.local/dev";
/// The audience of local dev tokens.
pub const DEV_AUDIENCE: &str = "clinicflow-local";

#[derive(Debug, Serialize, Deserialize)]
struct TokenClaims {
    sub: String,
    #[serde(rename = "cognito:groups", default)]
    groups: Vec<String>,
    #[serde(rename = "custom:site", default, skip_serializing_if = "Option::is_none")]
    site: Option<String>,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    token_use: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct TokenError(pub String);

/// Issues and verifies dev tokens with one secret.
#[derive(Clone)]
pub struct DevTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for DevTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevTokens")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl DevTokens {
    /// Dev tokens signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer: DEV_ISSUER.to_owned(),
            audience: DEV_AUDIENCE.to_owned(),
        }
    }

    /// A token for `sub` in `groups`, valid for `ttl_secs`.
    pub fn issue(&self, sub: &str, groups: &[String], ttl_secs: i64) -> Result<String, TokenError> {
        self.issue_for(
            &Claims {
                sub: sub.to_owned(),
                groups: groups.to_vec(),
                site: None,
            },
            ttl_secs,
        )
    }

    /// A token carrying `claims` (a staff member's site among them), valid for `ttl_secs`.
    pub fn issue_for(&self, claims: &Claims, ttl_secs: i64) -> Result<String, TokenError> {
        self.encode(claims, ttl_secs, &self.audience)
    }

    /// A token with another audience (to test that it is refused).
    pub fn issue_with(&self, sub: &str, groups: &[String], ttl_secs: i64, audience: &str) -> Result<String, TokenError> {
        let claims = Claims {
            sub: sub.to_owned(),
            groups: groups.to_vec(),
            site: None,
        };
        self.encode(&claims, ttl_secs, audience)
    }

    fn encode(&self, claims: &Claims, ttl_secs: i64, audience: &str) -> Result<String, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let claims = TokenClaims {
            sub: claims.sub.clone(),
            groups: claims.groups.clone(),
            site: claims.site.clone(),
            iss: self.issuer.clone(),
            aud: audience.to_owned(),
            iat: now,
            exp: now + ttl_secs,
            token_use: "id".into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| TokenError(e.to_string()))
    }

    /// Verifies signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<TokenClaims>(token, &self.decoding, &validation).map_err(|e| TokenError(e.to_string()))?;
        if data.claims.sub.is_empty() {
            return Err(TokenError("empty subject".into()));
        }
        Ok(Claims {
            sub: data.claims.sub,
            groups: data.claims.groups,
            site: data.claims.site.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_verifies_with_its_groups() {
        let t = DevTokens::new(b"secret");
        let token = t.issue("p1", &["patient".into()], 60).expect("issued");
        assert_eq!(
            t.verify(&token),
            Ok(Claims {
                sub: "p1".into(),
                groups: vec!["patient".into()],
                site: None,
            })
        );
        let staff = Claims {
            sub: "s1".into(),
            groups: vec!["test-site".into()],
            site: Some("mapo".into()),
        };
        assert_eq!(t.verify(&t.issue_for(&staff, 60).expect("issued")), Ok(staff));
    }

    #[test]
    fn expired_foreign_and_wrong_audience_tokens_are_refused() {
        let t = DevTokens::new(b"secret");
        assert!(t.verify(&t.issue("p1", &[], -600).expect("issued")).is_err());
        assert!(t.verify(&DevTokens::new(b"other").issue("p1", &[], 60).expect("issued")).is_err());
        assert!(t.verify(&t.issue_with("p1", &[], 60, "someone-else").expect("issued")).is_err());
        assert!(t.verify("not.a.token").is_err());
    }
}
