//! `private_key_jwt` client authentication (RFC 7523): the client assertion a token
//! request carries, signed with the client's own key, with its `jti` from the host's
//! randomness and its times from the host's clock. Secret-based methods need nothing
//! here: openidconnect sends them itself.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse_plugin_api::Host;
use openidconnect::{
    JsonWebKeyId, PrivateSigningKey,
    core::{CoreEdDsaPrivateSigningKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
};
use serde_json::json;

use crate::error::OidcError;

/// The client's private key for `private_key_jwt`.
pub enum AssertionKey {
    /// RS256 with an RSA key (PEM, PKCS#1 `BEGIN RSA PRIVATE KEY`).
    Rsa(CoreRsaPrivateSigningKey),
    /// EdDSA with an Ed25519 key (PEM, PKCS#8 `BEGIN PRIVATE KEY`).
    Ed25519(CoreEdDsaPrivateSigningKey),
}

/// How long a client assertion is valid: long enough for one token request.
const ASSERTION_LIFETIME_SECONDS: i64 = 60;

impl AssertionKey {
    /// Reads a PEM key, saying plainly which formats work when it is neither.
    pub fn from_pem(pem: &str, kid: Option<&str>) -> Result<Self, String> {
        let kid = kid.map(|k| JsonWebKeyId::new(k.to_owned()));
        if let Ok(key) = CoreRsaPrivateSigningKey::from_pem(pem, kid.clone()) {
            return Ok(Self::Rsa(key));
        }
        CoreEdDsaPrivateSigningKey::from_ed25519_pem(pem, kid)
            .map(Self::Ed25519)
            .map_err(|_| {
                "`private_key` is neither an RSA private key in PEM PKCS#1 form (BEGIN RSA \
                 PRIVATE KEY; convert with `openssl rsa -traditional`) nor an Ed25519 key in \
                 PEM PKCS#8 form (BEGIN PRIVATE KEY)"
                    .to_owned()
            })
    }

    fn alg(&self) -> CoreJwsSigningAlgorithm {
        match self {
            Self::Rsa(_) => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Self::Ed25519(_) => CoreJwsSigningAlgorithm::EdDsa,
        }
    }

    /// A signed client assertion for `client_id` addressed to `token_endpoint`.
    pub fn assertion(
        &self,
        host: &Host<'_>,
        client_id: &str,
        token_endpoint: &str,
        kid: Option<&str>,
    ) -> Result<String, OidcError> {
        let alg = self.alg();
        let alg_name = match alg {
            CoreJwsSigningAlgorithm::EdDsa => "EdDSA",
            _ => "RS256",
        };
        let mut header = json!({ "alg": alg_name, "typ": "JWT" });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let now = host.now_unix_seconds();
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_endpoint,
            "jti": host.random_token(),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match self {
            Self::Rsa(key) => key.sign(&alg, signing_input.as_bytes()),
            Self::Ed25519(key) => key.sign(&alg, signing_input.as_bytes()),
        }
        .map_err(|error| {
            OidcError::Internal(format!("could not sign the client assertion: {error}"))
        })?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}
