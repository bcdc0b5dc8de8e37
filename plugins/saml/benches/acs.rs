//! ACS verifications per second: `complete_login` on one real signed response (signed
//! assertion, RSA-SHA256) on a FakeHost whose store is fresh each iteration (so the
//! replay cache never refuses), next to the bare libxml2+xmlsec verification samael does
//! inside it (the floor), and the strict roxmltree parse our pre-scan adds. Run: `cargo bench -p gatehouse-saml --bench acs`.

#[allow(dead_code)]
#[path = "../tests/saml/support.rs"]
mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gatehouse_plugin_api::IdentityProvider;
use gatehouse_plugin_api::testkit::FakeHost;
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, CryptoProvider, ReduceMode, XmlSec,
};
use serde_json::json;

use support::*;

fn acs(c: &mut Criterion) {
    let flow = Flow::begin(json!({}));
    let response = flow.spec().response();
    let request = flow.callback(&b64(&response));
    let der = openssl::x509::X509::from_pem(IDP_CERT.as_bytes())
        .and_then(|c| c.to_der())
        .expect("cert");
    let certs = [CertificateDer::from(der)];

    let mut group = c.benchmark_group("saml-acs");
    group.throughput(Throughput::Elements(1));
    group.bench_function("complete_login (all checks, replay cache)", |b| {
        b.iter(|| {
            // A fresh store each time: same clock, same seed, so the same pending state.
            let fake = FakeHost::new();
            let identity = fake
                .call(|host| flow.sp.complete_login(host, &request))
                .expect("verifies");
            std::hint::black_box(identity);
        });
    });
    group.bench_function("floor: samael/xmlsec verify + PreDigest reduce only", |b| {
        b.iter(|| {
            let reduced = XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
                &response,
                &certs,
                ReduceMode::PreDigest,
                Some(&[AllowedSignatureAlgorithm::RsaSha256]),
            )
            .expect("verifies");
            std::hint::black_box(reduced);
        });
    });
    group.bench_function("roxmltree strict parse (the core of our pre-scan)", |b| {
        b.iter(|| {
            let document = roxmltree::Document::parse(&response).expect("parses");
            std::hint::black_box(document.descendants().count());
        });
    });
    group.finish();
}

criterion_group!(benches, acs);
criterion_main!(benches);
