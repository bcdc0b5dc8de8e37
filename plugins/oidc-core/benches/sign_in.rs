//! The host-side cost of an OIDC sign-in, with the provider answered from memory by
//! the test kit's `FakeHost` (so provider time is excluded): one whole
//! `complete_login`, one ID-token verification with the provider data warm in the
//! instance, and the pieces the time goes to (RSA verify, JWKS and discovery
//! parsing). Throughput lines ("elem/s") are per core: every benchmark runs on one
//! thread. The `verify` bench puts verification beside a bare RSA verify and Node's jose.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gatehouse_oidc_core::{
    RelyingParty, RpConfig, StandardProfile,
    jose::{Alg, KeySet},
    provider,
    testing::{CLIENT_ID, CLIENT_SECRET, Harness, Signer},
};
use gatehouse_plugin_api::{IdentityProvider, Secret};

const ISSUER: &str = "https://idp.test";

fn config() -> RpConfig {
    let mut config = RpConfig::new(ISSUER.into(), "issuer", CLIENT_ID.into());
    config.client_secret = Some(Secret::new(CLIENT_SECRET));
    config
}

fn harness() -> Harness<RelyingParty<StandardProfile>> {
    let idp = RelyingParty::new(config(), StandardProfile).expect("valid config");
    Harness::new(idp, ISSUER, None)
}

fn complete_login(c: &mut Criterion) {
    let h = harness();
    let mut group = c.benchmark_group("oidc");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    group.bench_function("complete_login (host side, RS256)", |b| {
        b.iter_batched(
            || {
                // A fresh sign-in per iteration: nonces are single-use.
                let login = h.begin();
                let token = h.provider.sign(Signer::RsaA, &h.claims(&login));
                h.provider.expect_token(&h.fake, &token);
                login.callback(&[("iss", ISSUER)])
            },
            |callback| {
                h.fake
                    .call(|host| h.idp.complete_login(host, &callback))
                    .expect("signs in")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn verification(c: &mut Criterion) {
    let h = harness();
    let config = config();
    let login = h.begin();
    let claims = h.claims(&login);
    let token = h.provider.sign(Signer::RsaA, &claims);
    let ed_token = h.provider.sign(Signer::Ed25519, &claims);

    let mut group = c.benchmark_group("id_token");
    group.throughput(Throughput::Elements(1));
    for (name, token) in [("RS256", &token), ("EdDSA", &ed_token)] {
        group.bench_function(format!("gatehouse verify ({name}, warm instance)"), |b| {
            b.iter(|| {
                h.fake
                    .call(|host| h.idp.verify_id_token(host, black_box(token), &login.nonce))
                    .expect("verifies")
            })
        });
    }
    group.finish();

    // Where the time goes.
    let mut parts = c.benchmark_group("id_token_parts");
    parts.throughput(Throughput::Elements(1));
    let mut pieces = token.split('.');
    let (header, payload, signature) = (
        pieces.next().unwrap_or_default(),
        pieces.next().unwrap_or_default(),
        pieces.next().unwrap_or_default(),
    );
    let signing_input = format!("{header}.{payload}");
    let signature =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
            .expect("signature");
    let jwks = KeySet::from_json(h.provider.jwks().to_string().as_bytes()).expect("test JWKS");
    let key = jwks
        .candidates(Some("key-a"), Alg::Rs256)
        .next()
        .expect("key A");
    parts.bench_function(
        "RSA-2048 PKCS#1 v1.5 verify only (aws-lc-rs, parsed key)",
        |b| {
            b.iter(|| {
                assert!(key.verify(Alg::Rs256, black_box(signing_input.as_bytes()), &signature))
            })
        },
    );
    let jwks_bytes = h.provider.jwks().to_string().into_bytes();
    parts.bench_function("JWKS parse into verification keys (2 keys)", |b| {
        b.iter(|| {
            KeySet::from_json(black_box(&jwks_bytes))
                .expect("parses")
                .keys()
                .len()
        })
    });
    parts.bench_function("discovery from the KV cache (get + parse + checks)", |b| {
        b.iter(|| {
            h.fake
                .call(|host| provider::metadata(host, &config))
                .expect("metadata")
        })
    });
    parts.bench_function("payload decode (base64url + JSON)", |b| {
        b.iter(|| {
            let bytes = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                black_box(payload),
            )
            .expect("base64");
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes)
                .expect("json")
                .len()
        })
    });
    parts.finish();
}

criterion_group!(benches, complete_login, verification);
criterion_main!(benches);
