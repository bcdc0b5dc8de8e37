//! The JOSE verifier (`jose`) on its own: every algorithm with a valid signature, a
//! signature by another key, and a tampered payload; which keys of a set fit which
//! algorithm; and the key sets it refuses. Signatures come from other implementations
//! (openidconnect's RSA signer, aws-lc-rs's EC and Ed25519 key pairs), not from itself.

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _,
    },
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse_oidc_core::{
    jose::{Alg, CompactJws, JwsError, KeySet, KeySetError, verify_hs256},
    testing::{RSA_A_PEM, RSA_B_PEM, TestProvider},
};
use openidconnect::{
    PrivateSigningKey,
    core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
};
use serde_json::{Value, json};

const HEADER: &str = "eyJhbGciOiJ0ZXN0In0";
const PAYLOAD: &str = r#"{"sub":"user-1","aud":"gatehouse-client"}"#;
const TAMPERED: &str = r#"{"sub":"admin-1","aud":"gatehouse-client"}"#;

fn input(payload: &str) -> String {
    format!("{HEADER}.{}", URL_SAFE_NO_PAD.encode(payload))
}

/// The test provider's public RSA keys: key A and key B, as JWKs without `alg`.
fn rsa_jwks() -> (Value, Value) {
    let keys = TestProvider::new("https://idp.test").rotated_jwks();
    let mut a = keys["keys"][0].clone();
    let mut b = keys["keys"][1].clone();
    for key in [&mut a, &mut b] {
        if let Some(members) = key.as_object_mut() {
            members.remove("alg");
        }
    }
    (a, b)
}

fn set(keys: &[Value]) -> KeySet {
    KeySet::from_json(json!({ "keys": keys }).to_string().as_bytes()).expect("a usable set")
}

/// Whether the one key of `jwk` that fits `alg` verifies `signature` over `message`.
fn verifies(jwk: &Value, alg: Alg, message: &str, signature: &[u8]) -> bool {
    let keys = set(std::slice::from_ref(jwk));
    let mut fitting = keys.candidates(None, alg);
    let key = fitting.next().expect("the key fits the algorithm");
    key.verify(alg, message.as_bytes(), signature)
}

/// Valid, by another key of the same kind, and over a tampered payload.
fn check_all_three(alg: Alg, own: &Value, other: &Value, sign: impl Fn(&str) -> Vec<u8>) {
    let message = input(PAYLOAD);
    let signature = sign(&message);
    assert!(verifies(own, alg, &message, &signature), "{alg:?}: valid");
    assert!(
        !verifies(other, alg, &message, &signature),
        "{alg:?}: another key must not verify"
    );
    assert!(
        !verifies(own, alg, &input(TAMPERED), &signature),
        "{alg:?}: a tampered payload must not verify"
    );
}

fn rsa_case(alg: Alg, with: CoreJwsSigningAlgorithm) {
    let (a, b) = rsa_jwks();
    let signer = CoreRsaPrivateSigningKey::from_pem(RSA_A_PEM, None).expect("key A");
    check_all_three(alg, &a, &b, |message| {
        signer.sign(&with, message.as_bytes()).expect("signs")
    });
    // And key B's own signature verifies with key B only.
    let signer_b = CoreRsaPrivateSigningKey::from_pem(RSA_B_PEM, None).expect("key B");
    let message = input(PAYLOAD);
    let signature = signer_b.sign(&with, message.as_bytes()).expect("signs");
    assert!(verifies(&b, alg, &message, &signature));
    assert!(!verifies(&a, alg, &message, &signature));
}

#[test]
fn rs256() {
    rsa_case(Alg::Rs256, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256);
}
#[test]
fn rs384() {
    rsa_case(Alg::Rs384, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384);
}
#[test]
fn rs512() {
    rsa_case(Alg::Rs512, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512);
}
#[test]
fn ps256() {
    rsa_case(Alg::Ps256, CoreJwsSigningAlgorithm::RsaSsaPssSha256);
}
#[test]
fn ps384() {
    rsa_case(Alg::Ps384, CoreJwsSigningAlgorithm::RsaSsaPssSha384);
}
#[test]
fn ps512() {
    rsa_case(Alg::Ps512, CoreJwsSigningAlgorithm::RsaSsaPssSha512);
}

#[test]
fn a_pkcs1_signature_does_not_pass_as_pss() {
    let (a, _) = rsa_jwks();
    let signer = CoreRsaPrivateSigningKey::from_pem(RSA_A_PEM, None).expect("key A");
    let message = input(PAYLOAD);
    let signature = signer
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            message.as_bytes(),
        )
        .expect("signs");
    assert!(!verifies(&a, Alg::Ps256, &message, &signature));
}

fn ec_key(alg: &'static EcdsaSigningAlgorithm, crv: &str) -> (EcdsaKeyPair, Value) {
    let pair = EcdsaKeyPair::generate(alg).expect("EC key");
    let point = pair.public_key().as_ref();
    let size = (point.len() - 1) / 2;
    let jwk = json!({
        "kty": "EC",
        "crv": crv,
        "x": URL_SAFE_NO_PAD.encode(&point[1..=size]),
        "y": URL_SAFE_NO_PAD.encode(&point[1 + size..]),
    });
    (pair, jwk)
}

fn ec_case(alg: Alg, signing: &'static EcdsaSigningAlgorithm, crv: &str) {
    let (pair, own) = ec_key(signing, crv);
    let (_, other) = ec_key(signing, crv);
    let rng = SystemRandom::new();
    check_all_three(alg, &own, &other, |message| {
        pair.sign(&rng, message.as_bytes())
            .expect("signs")
            .as_ref()
            .to_vec()
    });
}

#[test]
fn es256() {
    ec_case(Alg::Es256, &ECDSA_P256_SHA256_FIXED_SIGNING, "P-256");
}
#[test]
fn es384() {
    ec_case(Alg::Es384, &ECDSA_P384_SHA384_FIXED_SIGNING, "P-384");
}

fn ed_key() -> (Ed25519KeyPair, Value) {
    let pair = Ed25519KeyPair::generate().expect("Ed25519 key");
    let jwk = json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
    });
    (pair, jwk)
}

#[test]
fn eddsa() {
    let (pair, own) = ed_key();
    let (_, other) = ed_key();
    check_all_three(Alg::EdDsa, &own, &other, |message| {
        pair.sign(message.as_bytes()).as_ref().to_vec()
    });
}

#[test]
fn hs256() {
    let secret = b"test-client-secret-0123456789abcdef";
    let message = input(PAYLOAD);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let mac = aws_lc_rs::hmac::sign(&key, message.as_bytes());
    assert!(verify_hs256(secret, message.as_bytes(), mac.as_ref()));
    assert!(!verify_hs256(
        b"another-secret",
        message.as_bytes(),
        mac.as_ref()
    ));
    assert!(!verify_hs256(
        secret,
        input(TAMPERED).as_bytes(),
        mac.as_ref()
    ));
    assert!(!verify_hs256(
        secret,
        message.as_bytes(),
        &mac.as_ref()[..31]
    ));
}

#[test]
fn keys_fit_only_their_algorithms() {
    let (a, _) = rsa_jwks();
    let (_, p256) = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256");
    let (_, ed) = ed_key();
    let mut rs256_only = a.clone();
    rs256_only["alg"] = json!("RS256");
    rs256_only["kid"] = json!("rs256-only");
    let mut encryption = a.clone();
    encryption["use"] = json!("enc");
    encryption["kid"] = json!("enc");
    let mut unknown_alg = a.clone();
    unknown_alg["alg"] = json!("RSA-OAEP");
    unknown_alg["kid"] = json!("oaep");
    let keys = set(&[rs256_only, encryption, unknown_alg, p256, ed]);
    let kids = |kid: Option<&str>, alg: Alg| -> Vec<Option<String>> {
        keys.candidates(kid, alg)
            .map(|key| key.kid.clone())
            .collect()
    };
    assert_eq!(kids(None, Alg::Rs256), vec![Some("rs256-only".into())]);
    assert!(kids(None, Alg::Ps256).is_empty(), "alg RS256 is not PS256");
    assert!(kids(Some("enc"), Alg::Rs256).is_empty(), "use enc");
    assert!(
        kids(Some("oaep"), Alg::Rs256).is_empty(),
        "an alg we do not know"
    );
    assert_eq!(keys.candidates(None, Alg::Es256).count(), 1);
    assert_eq!(
        keys.candidates(None, Alg::Es384).count(),
        0,
        "P-256 is not ES384"
    );
    assert_eq!(keys.candidates(None, Alg::EdDsa).count(), 1);
    assert_eq!(
        keys.candidates(None, Alg::Hs256).count(),
        0,
        "never from a JWKS"
    );
    assert!(kids(Some("other"), Alg::Rs256).is_empty(), "kid must match");
}

#[test]
fn rsa_components_with_a_leading_zero_still_verify() {
    let (mut a, _) = rsa_jwks();
    let n = URL_SAFE_NO_PAD
        .decode(a["n"].as_str().expect("n"))
        .expect("base64url");
    let mut padded = vec![0];
    padded.extend(n);
    a["n"] = json!(URL_SAFE_NO_PAD.encode(padded));
    let signer = CoreRsaPrivateSigningKey::from_pem(RSA_A_PEM, None).expect("key A");
    let message = input(PAYLOAD);
    let signature = signer
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            message.as_bytes(),
        )
        .expect("signs");
    assert!(verifies(&a, Alg::Rs256, &message, &signature));
}

#[test]
fn unusable_keys_are_left_out_and_a_set_of_none_is_refused() {
    let (a, _) = rsa_jwks();
    let symmetric = json!({ "kty": "oct", "k": "c2VjcmV0" });
    let x25519 = json!({ "kty": "OKP", "crv": "X25519", "x": URL_SAFE_NO_PAD.encode([9u8; 32]) });
    let keys = set(&[symmetric.clone(), x25519.clone(), a]);
    assert_eq!(keys.keys().len(), 1);

    let error = KeySet::from_json(
        json!({ "keys": [symmetric, x25519] })
            .to_string()
            .as_bytes(),
    )
    .expect_err("nothing usable");
    assert!(matches!(error, KeySetError::NoUsableKey(_)), "{error}");
    let error = KeySet::from_json(b"{\"keys\": 3}").expect_err("not a set");
    assert!(matches!(error, KeySetError::NotAKeySet(_)), "{error}");
}

#[test]
fn rsa_keys_below_2048_bits_are_refused() {
    let (mut a, _) = rsa_jwks();
    // 2040 bits: one octet short of the smallest accepted modulus.
    let n = URL_SAFE_NO_PAD
        .decode(a["n"].as_str().expect("n"))
        .expect("base64url");
    a["n"] = json!(URL_SAFE_NO_PAD.encode(&n[1..]));
    let error =
        KeySet::from_json(json!({ "keys": [a] }).to_string().as_bytes()).expect_err("too small");
    assert!(error.to_string().contains("2040 bits"), "{error}");
}

#[test]
fn ec_points_off_the_curve_are_refused() {
    let (_, mut p256) = ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256");
    p256["y"] = json!(URL_SAFE_NO_PAD.encode([1u8; 32]));
    let error = KeySet::from_json(json!({ "keys": [p256] }).to_string().as_bytes())
        .expect_err("not on the curve");
    assert!(error.to_string().contains("curve"), "{error}");
}

#[test]
fn compact_jws_splits_into_three_parts() {
    let token = format!("{}.{}", input(PAYLOAD), URL_SAFE_NO_PAD.encode(b"sig"));
    let jws = CompactJws::parse(&token).expect("splits");
    assert_eq!(jws.signing_input, input(PAYLOAD));
    assert_eq!(jws.header["alg"], json!("test"));
    assert_eq!(jws.signature, b"sig");
    assert_eq!(
        CompactJws::parse("a.b").expect_err("two parts"),
        JwsError::NotThreeParts
    );
    assert_eq!(
        CompactJws::parse("a.b.c.d.e").expect_err("a JWE"),
        JwsError::NotThreeParts
    );
    assert_eq!(
        CompactJws::parse(&format!("{}.!!", input(PAYLOAD))).expect_err("bad signature"),
        JwsError::Signature
    );
}
