//! JOSE signature verification, the one place every plugin that checks a JWS does it
//! (today the OIDC relying party, for ID tokens): compact-JWS splitting, a key set
//! parsed once per fetch into ready aws-lc-rs verification keys, key selection by
//! `kid`/`alg`/`use`, and RS256/384/512, PS256/384/512, ES256, ES384, EdDSA (Ed25519)
//! and HS256 (HMAC with a shared secret, compared in constant time). It decides
//! nothing about which algorithms a provider may use, nor about claims (see `verify`).

use aws_lc_rs::{
    hmac,
    signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A JWS algorithm Gatehouse can verify. `none` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
    Hs256,
}

impl Alg {
    /// Every algorithm, in the order error messages list them.
    pub const ALL: [Alg; 10] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::Es384,
        Alg::EdDsa,
        Alg::Hs256,
    ];

    /// The algorithm a JOSE `alg` name denotes, if Gatehouse verifies it.
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// The JOSE name (RFC 7518 §3.1; EdDSA from RFC 8037).
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
            Alg::Hs256 => "HS256",
        }
    }

    /// The key type (`kty`) a key must have to verify this algorithm.
    pub fn key_type(self) -> Kty {
        match self {
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512 => Kty::Rsa,
            Alg::Es256 | Alg::Es384 => Kty::Ec,
            Alg::EdDsa => Kty::Okp,
            Alg::Hs256 => Kty::Oct,
        }
    }

    /// The RSA algorithms, in the order [`VerifyKey::Rsa`] holds their keys.
    const RSA: [Alg; 6] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
    ];

    fn rsa_index(self) -> Option<usize> {
        Alg::RSA.iter().position(|alg| *alg == self)
    }

    /// aws-lc-rs's parameters: keys of 2048 to 8192 bits, as RFC 7518 §3.3 requires.
    fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        Some(match self {
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }
}

/// A JWK key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kty {
    Rsa,
    Ec,
    Okp,
    Oct,
}

/// A JWK's own `alg`: absent, one we verify, or one we do not (such a key is never used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    Unspecified,
    Known(Alg),
    Unsupported,
}

/// A key's ready verification key, built when the key set was read.
enum VerifyKey {
    /// One parsed key per RSA algorithm (indexed as `Alg::RSA`), for the ones the
    /// key may be used with (all six when the JWK names no `alg`).
    Rsa(Box<[Option<ParsedPublicKey>; 6]>),
    /// A P-256 (ES256) or P-384 (ES384) point.
    Ec(Alg, ParsedPublicKey),
    /// An Ed25519 public key.
    Ed25519(ParsedPublicKey),
}

/// One usable signature key of a key set.
pub struct Jwk {
    pub kid: Option<String>,
    pub kty: Kty,
    pub alg: KeyAlg,
    /// `use`: `None` (any use) or as written (`sig` is the only one that verifies).
    pub key_use: Option<String>,
    key: VerifyKey,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("alg", &self.alg)
            .field("use", &self.key_use)
            .finish_non_exhaustive()
    }
}

impl Jwk {
    /// Whether this key may verify `alg`: the key type (and curve) fits, its `use`
    /// allows signatures, and its own `alg`, if any, is `alg`.
    pub fn fits(&self, alg: Alg) -> bool {
        let alg_fits = match self.alg {
            KeyAlg::Unspecified => true,
            KeyAlg::Known(own) => own == alg,
            KeyAlg::Unsupported => false,
        };
        let type_fits = match &self.key {
            VerifyKey::Rsa(keys) => alg.rsa_index().is_some_and(|i| keys[i].is_some()),
            VerifyKey::Ec(curve_alg, _) => *curve_alg == alg,
            VerifyKey::Ed25519(_) => alg == Alg::EdDsa,
        };
        alg_fits && type_fits && self.key_use.as_deref().is_none_or(|u| u == "sig")
    }

    /// Whether `signature` over `message` verifies with this key under `alg`.
    pub fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        let key = match &self.key {
            VerifyKey::Rsa(keys) => alg.rsa_index().and_then(|i| keys[i].as_ref()),
            VerifyKey::Ec(curve_alg, key) => (*curve_alg == alg).then_some(key),
            VerifyKey::Ed25519(key) => (alg == Alg::EdDsa).then_some(key),
        };
        key.is_some_and(|key| key.verify_sig(message, signature).is_ok())
    }
}

/// Why a key set could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("is not a JWK set: {0}")]
    NotAKeySet(String),
    #[error("holds no key Gatehouse can use ({0})")]
    NoUsableKey(String),
}

/// A provider's signature keys, parsed once when the key set is fetched (or read from
/// the shared store). Keys Gatehouse cannot use (symmetric, encryption-only curves,
/// RSA below 2048 bits, malformed) are left out; the set is refused if none is left.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

/// A JWK as written; only the members a verification key needs.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<Value>,
}

fn b64(member: &str, value: Option<&String>) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("no `{member}`"))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("`{member}` is not base64url"))
}

impl KeySet {
    /// Reads a JWKS document (`{"keys": [...]}`) and parses every usable key.
    pub fn from_json(body: &[u8]) -> Result<KeySet, KeySetError> {
        let raw: RawKeySet = serde_json::from_slice(body)
            .map_err(|error| KeySetError::NotAKeySet(error.to_string()))?;
        let mut keys = Vec::with_capacity(raw.keys.len());
        let mut skipped = Vec::new();
        for (index, value) in raw.keys.into_iter().enumerate() {
            match serde_json::from_value::<RawJwk>(value)
                .map_err(|error| error.to_string())
                .and_then(Self::parse_key)
            {
                Ok(Some(key)) => keys.push(key),
                Ok(None) => {}
                Err(problem) => skipped.push(format!("key {index}: {problem}")),
            }
        }
        if keys.is_empty() {
            let why = if skipped.is_empty() {
                "no RSA, EC P-256/P-384 or Ed25519 signature key".to_owned()
            } else {
                skipped.join("; ")
            };
            return Err(KeySetError::NoUsableKey(why));
        }
        Ok(KeySet { keys })
    }

    /// One key, or `None` for a kind Gatehouse never verifies with (symmetric keys in
    /// a published set, X25519 and other curves).
    fn parse_key(raw: RawJwk) -> Result<Option<Jwk>, String> {
        let alg = match raw.alg.as_deref() {
            None => KeyAlg::Unspecified,
            Some(name) => Alg::from_name(name).map_or(KeyAlg::Unsupported, KeyAlg::Known),
        };
        let (kty, key) = match raw.kty.as_str() {
            "RSA" => {
                let n = b64("n", raw.n.as_ref())?;
                let e = b64("e", raw.e.as_ref())?;
                // RFC 7518 forbids leading zero octets; some providers send them anyway.
                let strip = |bytes: &[u8]| -> Vec<u8> {
                    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
                    bytes[first..].to_vec()
                };
                let components = RsaPublicKeyComponents {
                    n: strip(&n),
                    e: strip(&e),
                };
                // The key-size range (2048..=8192 bits) is otherwise only checked at verify.
                let bits = components.n.len() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err(format!(
                        "an RSA key of {bits} bits; 2048 to 8192 are accepted"
                    ));
                }
                let mut parsed: [Option<ParsedPublicKey>; 6] = Default::default();
                for (slot, rsa_alg) in parsed.iter_mut().zip(Alg::RSA) {
                    if matches!(alg, KeyAlg::Known(own) if own != rsa_alg) {
                        continue;
                    }
                    let params = rsa_alg.rsa_parameters().ok_or("not an RSA algorithm")?;
                    *slot = Some(
                        components
                            .to_parsed_public_key(params)
                            .map_err(|error| format!("not a valid RSA public key: {error}"))?,
                    );
                }
                (Kty::Rsa, VerifyKey::Rsa(Box::new(parsed)))
            }
            "EC" => {
                let (curve_alg, verification, size): (
                    _,
                    &'static dyn signature::VerificationAlgorithm,
                    _,
                ) = match raw.crv.as_deref() {
                    Some("P-256") => (Alg::Es256, &signature::ECDSA_P256_SHA256_FIXED, 32),
                    Some("P-384") => (Alg::Es384, &signature::ECDSA_P384_SHA384_FIXED, 48),
                    _ => return Ok(None),
                };
                let x = b64("x", raw.x.as_ref())?;
                let y = b64("y", raw.y.as_ref())?;
                if x.len() != size || y.len() != size {
                    return Err(format!(
                        "an EC point whose coordinates are not {size} bytes"
                    ));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let parsed = ParsedPublicKey::new(verification, point)
                    .map_err(|error| format!("not a point on its curve: {error}"))?;
                (Kty::Ec, VerifyKey::Ec(curve_alg, parsed))
            }
            "OKP" => {
                if raw.crv.as_deref() != Some("Ed25519") {
                    return Ok(None);
                }
                let x = b64("x", raw.x.as_ref())?;
                if x.len() != 32 {
                    return Err("an Ed25519 key that is not 32 bytes".into());
                }
                let parsed = ParsedPublicKey::new(&signature::ED25519, x)
                    .map_err(|error| format!("not an Ed25519 key: {error}"))?;
                (Kty::Okp, VerifyKey::Ed25519(parsed))
            }
            _ => return Ok(None),
        };
        Ok(Some(Jwk {
            kid: raw.kid,
            kty,
            alg,
            key_use: raw.key_use,
            key,
        }))
    }

    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// The keys that could have signed with `alg` (and `kid`, when the token names one).
    /// Keys named by the token itself (`jku`, `x5u`, `jwk` headers) are never used.
    pub fn candidates(&self, kid: Option<&str>, alg: Alg) -> impl Iterator<Item = &Jwk> {
        self.keys.iter().filter(move |key| {
            kid.is_none_or(|kid| key.kid.as_deref() == Some(kid)) && key.fits(alg)
        })
    }
}

/// Verifies an HS256 MAC keyed with `secret`, in constant time.
pub fn verify_hs256(secret: &[u8], message: &[u8], mac: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, message, mac).is_ok()
}

/// The parts of a compact JWS (`header.payload.signature`), header decoded.
#[derive(Debug)]
pub struct CompactJws<'t> {
    /// `header.payload`, what the signature covers.
    pub signing_input: &'t str,
    pub header: Map<String, Value>,
    /// The payload, still base64url.
    pub payload: &'t str,
    pub signature: Vec<u8>,
}

/// Why a compact JWS could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("is not a signed JWT (three dot-separated parts)")]
    NotThreeParts,
    #[error("header {0}")]
    Header(String),
    #[error("signature is not base64url")]
    Signature,
}

impl<'t> CompactJws<'t> {
    pub fn parse(raw: &'t str) -> Result<Self, JwsError> {
        let mut parts = raw.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::NotThreeParts);
        };
        let signing_input = &raw[..header.len() + 1 + payload.len()];
        let header = decode_json(header).map_err(JwsError::Header)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwsError::Signature)?;
        Ok(Self {
            signing_input,
            header,
            payload,
            signature,
        })
    }
}

/// A base64url JSON object (a JOSE header or a JWT payload).
pub fn decode_json(part: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "is not base64url".to_owned())?;
    serde_json::from_slice(&bytes).map_err(|error| format!("is not a JSON object: {error}"))
}
