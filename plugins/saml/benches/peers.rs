//! The SAML plugin beside two Python peers on one real signed response, in one run: the
//! plugin's `complete_login` (every ACS check and the replay cache), python's `xmlsec`
//! binding verifying the same response (the bare libxml2 + xmlsec floor), and
//! python3-saml's `Response.is_valid()` (what a Python SP pays). Prints verifications per
//! second per core and the ratios. The Python packages come from `scripts/bench-peers`.
//! Run: `cargo bench -p gatehouse-saml --bench peers`.

#[allow(dead_code)]
#[path = "../tests/saml/support.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_plugin_api::IdentityProvider;
use gatehouse_plugin_api::testkit::FakeHost;
use serde_json::json;

use support::*;

/// How long each of the three is timed, per round; the best of `ROUNDS` rounds counts
/// (the machine is shared: the best round is the one least disturbed).
const SECONDS: f64 = 3.0;
const ROUNDS: usize = 3;

fn main() {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers");
    let python = peers.join(".venv/bin/python");
    assert!(
        python.exists(),
        "the Python peers are not installed: run scripts/bench-peers first"
    );

    let flow = Flow::begin(json!({}));
    let response = flow.spec().response();
    let request = flow.callback(&b64(&response));
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("response.xml"), &response).expect("write the response");
    std::fs::write(dir.path().join("idp.crt"), IDP_CERT).expect("write the certificate");
    let case = json!({
        "sp_entity_id": SP_ENTITY,
        "acs_url": ACS,
        "idp_entity_id": IDP_ENTITY,
        "idp_sso_url": IDP_SSO,
        "request_id": flow.request_id,
        "now": flow.now(),
    });
    std::fs::write(dir.path().join("case.json"), case.to_string()).expect("write the case");

    let mut ours = 0f64;
    let mut floor = 0f64;
    let mut python3_saml = 0f64;
    for _ in 0..ROUNDS {
        ours = ours.max(rate(|| {
            // A fresh store each time, so the replay cache never refuses.
            let fake = FakeHost::new();
            let identity = fake
                .call(|host| flow.sp.complete_login(host, &request))
                .expect("the plugin verifies the response");
            std::hint::black_box(identity);
        }));
        let output = Command::new(&python)
            .arg(peers.join("compare.py"))
            .arg(dir.path())
            .arg(SECONDS.to_string())
            .output()
            .expect("run compare.py");
        assert!(
            output.status.success(),
            "compare.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let figures: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("compare.py prints JSON");
        floor = floor.max(figures["floor"].as_f64().expect("floor"));
        python3_saml = python3_saml.max(figures["python3_saml"].as_f64().expect("python3_saml"));
    }
    println!(
        "SAML ACS verifications per second, one core, best of {ROUNDS} rounds of {SECONDS} s:"
    );
    println!("  gatehouse-saml complete_login (all checks) {ours:>9.0}/s");
    println!("  python xmlsec verify (the floor)           {floor:>9.0}/s");
    println!("  python3-saml Response.is_valid()           {python3_saml:>9.0}/s");
    println!(
        "  ratio to the floor {:.2}x, to python3-saml {:.1}x",
        ours / floor,
        ours / python3_saml
    );
}

/// Calls `body` for about [`SECONDS`] on this thread and returns calls per second.
fn rate(mut body: impl FnMut()) -> f64 {
    body();
    let budget = Duration::from_secs_f64(SECONDS);
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        body();
        calls += 1;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}
