//! A real browser through a real SAML sign-in: Debian's headless `chromium` (driven by
//! `tests/support/saml-idps/browser.mjs` with npm `playwright-core`) against a real
//! `gatehouse serve` process on `localhost` and the samlify IdP on `127.0.0.1`, another
//! site. The IdP's auto-submitting form is a cross-site POST, which carries no
//! `SameSite=Lax` cookie: the sign-in must still complete (the host's same-site finish
//! step), and a response posted from a browser without the binding of its request (login
//! CSRF) must still fail.

use std::{path::Path, process::Command};

use gatehouse_tests::{
    peer::PeerProcess,
    saml::{self, ALICE, IdpConfig, Peer, SamlIdp, support_dir},
    served::ServedProcess,
};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_across_sites_and_a_stolen_response_still_fails() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.is_file(),
        "this test drives Debian's chromium: apt-get install chromium"
    );
    assert!(
        support_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run scripts/test-peers"
    );
    let saml_idp = SamlIdp::start(Peer::Samlify, &saml::alice("Liddell"));
    let dir = tempfile::tempdir().expect("temp dir");
    let metadata = saml_idp.metadata_file(dir.path()).await;
    let idps = saml::idp(&IdpConfig::new("corp", &metadata));
    // The public URL carries the port, so the SP's URLs are the ones the browser uses.
    let config = saml::host_config(&idps).replace(
        "public_url = \"http://localhost\"",
        "public_url = \"{origin}\"\nlisten = \"127.0.0.1:{port}\"",
    );
    let served = ServedProcess::start("localhost", &config).await;
    let origin = served.origin();

    // The IdP gets the SP metadata the served host publishes.
    let sp_metadata = reqwest::get(format!("{origin}/sso/corp/metadata"))
        .await
        .expect("GET the SP metadata")
        .text()
        .await
        .expect("metadata");
    assert!(
        sp_metadata.contains(&format!("{origin}/sso/corp/callback")),
        "{sp_metadata}"
    );
    saml_idp.set_sp_metadata(&sp_metadata).await;

    let browser_config = dir.path().join("browser.json");
    std::fs::write(
        &browser_config,
        serde_json::json!({
            "chromium": chromium,
            "origin": origin,
            "idp_origin": saml_idp.base_url(),
            "start": "/sso/corp/start?return_to=%2Fwelcome",
            "profile": dir.path().join("profiles"),
        })
        .to_string(),
    )
    .expect("write the browser config");
    let mut command = Command::new("node");
    command
        .arg(support_dir().join("browser.mjs"))
        .arg(&browser_config)
        .current_dir(support_dir());
    let driver = PeerProcess::start(
        command,
        "GATEHOUSE_BROWSER_RESULT ",
        &dir.path().join("browser.stderr"),
        "the chromium driver (node browser.mjs; run scripts/test-peers)",
    );
    let result: Value = serde_json::from_str(&driver.ready).expect("the result is JSON");

    // The sign-in completed in the browser, through the cross-site POST and the finish step.
    let signed_in = &result["sign_in"];
    let visited = signed_in["visited"].to_string();
    for step in [
        "GET http://localhost",
        &format!("GET {}/sso", saml_idp.base_url()),
        "POST http://localhost",
        "/sso/corp/finish",
    ] {
        assert!(visited.contains(step), "{step} not in {visited}");
    }
    assert_eq!(
        signed_in["final_url"],
        format!("{origin}/welcome"),
        "{signed_in}"
    );
    assert_eq!(signed_in["me"]["status"], 200, "{signed_in}");
    let me: Value =
        serde_json::from_str(signed_in["me"]["body"].as_str().expect("body")).expect("/me is JSON");
    assert_eq!(me["username"], ALICE);

    // The attacker's response, posted from the victim's browser, fails at the finish step.
    let stolen = &result["stolen"];
    assert!(
        stolen["final_url"]
            .as_str()
            .is_some_and(|url| url.contains("/sso/corp/finish")),
        "{stolen}"
    );
    let status = stolen["last"]["status"].as_u64().expect("status");
    assert!((400..500).contains(&status), "{stolen}");
    assert_eq!(stolen["me"]["status"], 401, "{stolen}");
    let body = stolen["body"].as_str().unwrap_or_default();
    assert!(!body.contains("Assertion"), "{body}");

    // Two users: the bootstrap `admin` that serve creates on an empty database, and
    // alice from her sign-in; the stolen response wrote nothing.
    let store = served.store().await;
    assert_eq!(store.count_users().await.expect("count"), 2);
    for username in ["admin", ALICE] {
        assert!(
            store
                .user_by_username(username)
                .await
                .expect("read")
                .is_some(),
            "no user {username}"
        );
    }
    let audit = store.recent_audit(1).await.expect("audit");
    assert!(
        audit[0].reason.contains("browser other than"),
        "{:?}",
        audit[0]
    );
}
