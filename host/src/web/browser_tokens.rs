//! Browser tokens the host mints and later recognises: the browser binding of a pending
//! SSO sign-in and the CSRF token. Each is a random nonce with an HMAC-SHA256 tag under a
//! key kept in the database (shared by every host on it), so a value the host did not
//! issue, such as one an attacker planted from a parent domain, is never adopted. Not
//! where the tokens are checked against a request: `sso` and `session` do that.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::clock::Randomness;

/// The name of the key in the store's host keys.
pub const KEY_NAME: &str = "browser-tokens-v1";
const NONCE_BYTES: usize = 24;
const KEY_BYTES: usize = 32;

/// What a token is for; a token minted for one purpose is refused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Binding,
    Csrf,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Binding => b"gatehouse browser binding\0",
            Self::Csrf => b"gatehouse csrf\0",
        }
    }
}

/// The key, loaded once per process.
pub struct BrowserKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for BrowserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrowserKey([redacted])")
    }
}

impl BrowserKey {
    /// Bytes for a new key (the store keeps the first one any host offers).
    pub fn fresh_key_bytes(random: &Randomness) -> Vec<u8> {
        random.bytes(KEY_BYTES)
    }

    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn tag(&self, purpose: Purpose, nonce: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(purpose.label());
        mac.update(nonce);
        mac
    }

    /// A new token: `nonce.tag`, both base64url.
    pub fn mint(&self, purpose: Purpose, random: &Randomness) -> String {
        let nonce = random.bytes(NONCE_BYTES);
        let tag = self.tag(purpose, &nonce).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&nonce),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Whether `token` is one this host minted for `purpose` (constant-time tag check).
    pub fn recognises(&self, purpose: Purpose, token: &str) -> bool {
        let Some((nonce, tag)) = token.split_once('.') else {
            return false;
        };
        let (Ok(nonce), Ok(tag)) = (URL_SAFE_NO_PAD.decode(nonce), URL_SAFE_NO_PAD.decode(tag))
        else {
            return false;
        };
        nonce.len() == NONCE_BYTES && self.tag(purpose, &nonce).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_this_key_minted_for_the_purpose_are_recognised() {
        let random = Randomness::seeded(1);
        let key = BrowserKey::new(BrowserKey::fresh_key_bytes(&random));
        let other = BrowserKey::new(BrowserKey::fresh_key_bytes(&random));
        let token = key.mint(Purpose::Binding, &random);
        assert!(key.recognises(Purpose::Binding, &token));
        assert!(!key.recognises(Purpose::Csrf, &token), "another purpose");
        assert!(!other.recognises(Purpose::Binding, &token), "another key");
        let (nonce, _) = token.split_once('.').expect("two parts");
        for forged in [
            "x".repeat(43),
            format!("{nonce}."),
            format!("{nonce}.AAAA"),
            format!(".{}", "A".repeat(43)),
            String::new(),
            format!("{token}x"),
        ] {
            assert!(!key.recognises(Purpose::Binding, &forged), "{forged:?}");
        }
        assert_ne!(
            key.mint(Purpose::Csrf, &random),
            key.mint(Purpose::Csrf, &random)
        );
    }
}
