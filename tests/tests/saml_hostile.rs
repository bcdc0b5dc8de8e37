//! Attacks on the `saml` plugin and the host's ACS, each built from a genuine response
//! that a real IdP (npm `samlify` or PyPI `pysaml2`) issued for this browser's own
//! request, and each run with both IdPs: XML signature wrapping (XSW1–8), signature
//! exclusion, corruption and certificate swapping, weak algorithms (from the IdP itself),
//! DTDs and entity expansion, node splitting in NameID, edits after signing, malformed
//! XML, wrong Audience / Recipient / Destination / Issuer and times (re-signed with the
//! IdP's own key), another browser's InResponseTo, unsolicited and replayed responses, a
//! response for another tenant, a 2 MB body, and metadata without a signing key.
//! Every case asserts no session, no user written or changed, a plain refusal page with
//! no XML in it and an audit row naming the failed check, then an honest sign-in in the
//! same test that still works.

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::Engine as _;
use gatehouse_tests::{
    Browser, TestHost,
    saml::{
        self, ACME_HOST, ALICE, AutoPost, HOST, IdpConfig, Peer, Rig, RigOptions, SamlIdp,
        assert_refused, assert_signed_in, attack, connect, earliest_not_on_or_after,
        genuine_response, iso8601, key_file, post_and_finish, resigned_by_idp, sign_in, start,
        users_snapshot,
    },
};
use serde_json::json;

/// One test per IdP for each `attacks.py` mode that needs nothing but the genuine
/// response: the refusal must name one of the checks listed.
macro_rules! attacks {
    ($($name:ident: $mode:literal => [$($check:literal),+ $(,)?];)*) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn samlify() {
                super::refuses_attack(Peer::Samlify, $mode, &[], &[$($check),+]).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pysaml2() {
                super::refuses_attack(Peer::Pysaml2, $mode, &[], &[$($check),+]).await;
            }
        }
    )*};
}

/// What an XSW construction may be refused for: the signature that covers nothing read,
/// or more than one assertion.
const WRAPPING: [&str; 3] = ["signature", "assertion-count", "malformed"];

attacks! {
    xsw3: "xsw3" => ["signature", "assertion-count"];
    xsw4: "xsw4" => ["signature", "assertion-count"];
    xsw5: "xsw5" => ["signature", "assertion-count"];
    xsw6: "xsw6" => ["signature", "assertion-count"];
    xsw7: "xsw7" => ["signature", "assertion-count", "malformed"];
    // XSW8's clean copy carries the signed assertion's ID: two elements with one ID.
    xsw8: "xsw8" => ["signature", "assertion-count", "malformed"];
    strip_all_signatures: "strip-all-signatures" => ["signature"];
    strip_signature_value: "strip-signature-value" => ["signature", "malformed"];
    corrupt_signature_value: "corrupt-signature-value" => ["signature"];
    unsigned_assertion_beside_signed: "unsigned-assertion-beside-signed" => ["assertion-count"];
    the_same_assertion_twice: "two-assertions" => ["assertion-count", "malformed"];
    billion_laughs: "billion-laughs" => ["doctype"];
    nameid_changed: "nameid-changed" => ["signature"];
    attribute_changed: "attribute-changed" => ["signature"];
    malformed_unclosed: "malformed-unclosed" => ["malformed"];
    malformed_second_root: "malformed-second-root" => ["malformed"];
    malformed_trailing_bytes: "malformed-trailing-bytes" => ["malformed"];
}

gatehouse_tests::with_each_saml_idp!(
    xsw1_on_a_signed_response,
    xsw2_on_a_signed_response,
    resigned_with_an_attackers_key_and_certificate,
    doctype_with_an_external_entity_makes_no_connection,
    comment_in_name_id,
    cdata_in_name_id,
    processing_instruction_in_name_id,
    rsa_sha1_signature_from_the_idp,
    expired_by_moving_the_host_clock,
    exactly_at_not_on_or_after_plus_skew,
    not_before_beyond_the_skew,
    in_response_to_of_another_browsers_request,
    a_response_posted_from_another_browser_fails_at_the_finish_step,
    unsolicited_response_while_idp_initiated_is_off,
    the_same_response_posted_twice,
    an_unsolicited_response_replayed,
    a_response_for_one_tenant_posted_to_anothers_acs,
    a_two_megabyte_body,
    two_signed_assertions_for_one_request,
);

/// An honest first sign-in (so alice exists and a refusal could change her), then a
/// genuine response to a fresh request in a fresh browser.
async fn signed_in_then_genuine(rig: &Rig, user: &str) -> (Browser, AutoPost) {
    let mut first = rig.browser();
    rig.honest_sign_in(&mut first, ALICE).await;
    let mut browser = rig.browser();
    let form = genuine_response(&mut browser, &rig.idp, "corp", user).await;
    (browser, form)
}

/// Posts `attacked` in place of the genuine response, checks it is refused for one of
/// `checks` with nothing written, then that an honest sign-in in the same browser works.
async fn refused_then_honest(
    rig: &Rig,
    browser: &mut Browser,
    form: &AutoPost,
    attacked: String,
    checks: &[&str],
) -> String {
    let before = users_snapshot(&rig.host).await;
    let posted = post_and_finish(browser, &form.with_response(attacked)).await;
    let reason = assert_refused(&rig.host, browser, &posted, &before, checks).await;
    eprintln!("refused: {reason}");
    rig.honest_sign_in(browser, ALICE).await;
    reason
}

async fn refuses_attack(peer: Peer, mode: &str, args: &[&str], checks: &[&str]) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let (mut browser, form) = signed_in_then_genuine(&rig, ALICE).await;
    let attacked = attack(mode, &form.saml_response, args);
    refused_then_honest(&rig, &mut browser, &form, attacked, checks).await;
}

/// XSW1 and XSW2 wrap a signed Response: the IdP signs the response (not the assertion)
/// and the IdP instance accepts that (`want_assertions_signed = false`).
async fn response_wrapping(peer: Peer, mode: &str) {
    let rig = Rig::start(
        peer,
        RigOptions {
            settings: "want_assertions_signed = false",
            ..RigOptions::default()
        },
    )
    .await;
    rig.idp
        .configure(&json!({ "sign_response": true, "sign_assertion": false }))
        .await;
    let (mut browser, form) = signed_in_then_genuine(&rig, ALICE).await;
    let attacked = attack(mode, &form.saml_response, &[]);
    refused_then_honest(&rig, &mut browser, &form, attacked, &WRAPPING).await;
}

async fn xsw1_on_a_signed_response(peer: Peer) {
    response_wrapping(peer, "xsw1").await;
}

async fn xsw2_on_a_signed_response(peer: Peer) {
    response_wrapping(peer, "xsw2").await;
}

async fn resigned_with_an_attackers_key_and_certificate(peer: Peer) {
    let key = key_file("attacker.key").display().to_string();
    let cert = key_file("attacker.crt").display().to_string();
    refuses_attack(
        peer,
        "resign-with-attacker-key",
        &["--attacker-key", &key, "--attacker-cert", &cert],
        &["signature"],
    )
    .await;
}

async fn doctype_with_an_external_entity_makes_no_connection(peer: Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on loopback");
    listener.set_nonblocking(true).expect("non-blocking");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    let connections = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (connections, stop) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if listener.accept().is_ok() {
                    connections.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    refuses_attack(
        peer,
        "doctype-external-entity",
        &["--listener", &url],
        &["doctype"],
    )
    .await;
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    watcher.join().expect("watcher");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "something fetched the external entity or DTD at {url}"
    );
}

/// Node splitting (Duo, 2018): the attacker's own account at the IdP is
/// `alice@example.test.evil.test`; a comment, CDATA section or PI after `alice@example.test`
/// must not make a reader see alice. A comment or CDATA section leaves the signature valid
/// (exc-c14n drops comments and reads CDATA as text), so such a response is either refused
/// or read as the whole NameID the IdP signed: never as alice, whose row stays as it was.
/// A PI changes the canonical form, so the signature no longer verifies: refused.
/// A comment, CDATA section or processing instruction splitting a NameID that the IdP
/// signed for mallory (`alice@example.test.evil.test`) right after alice's address: the
/// signature still verifies (exclusive c14n drops comments), and a reader of the first
/// text node would sign in as alice. Refused outright.
async fn node_split(peer: Peer, mode: &str) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let mallory = "alice@example.test.evil.test";
    rig.idp
        .set_users(&json!({
            ALICE: { "givenName": "Alice", "sn": "Liddell", "mail": ALICE },
            mallory: { "givenName": "Mallory", "sn": "Evil", "mail": mallory },
        }))
        .await;
    let (mut browser, form) = signed_in_then_genuine(&rig, mallory).await;
    let attacked = attack(mode, &form.saml_response, &["--split-after", ALICE]);
    let check: &[&str] = if mode == "pi-in-nameid" {
        &["malformed"]
    } else {
        &["name-id"]
    };
    refused_then_honest(&rig, &mut browser, &form, attacked, check).await;
}

async fn comment_in_name_id(peer: Peer) {
    node_split(peer, "comment-in-nameid").await;
}

async fn cdata_in_name_id(peer: Peer) {
    node_split(peer, "cdata-in-nameid").await;
}

async fn processing_instruction_in_name_id(peer: Peer) {
    node_split(peer, "pi-in-nameid").await;
}

/// A response the IdP itself signs with weak algorithms (`overrides`), posted as it is.
async fn weak_algorithm_from_the_idp(peer: Peer, overrides: serde_json::Value) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let mut first = rig.browser();
    rig.honest_sign_in(&mut first, ALICE).await;
    rig.idp.configure(&overrides).await;
    let mut browser = rig.browser();
    let form = genuine_response(&mut browser, &rig.idp, "corp", ALICE).await;
    let xml = form.xml();
    assert!(
        xml.contains("xmldsig#rsa-sha1") || xml.contains("xmldsig#sha1"),
        "the IdP did not sign with SHA-1: {xml}"
    );
    let before = users_snapshot(&rig.host).await;
    let posted = post_and_finish(&mut browser, &form).await;
    assert_refused(&rig.host, &mut browser, &posted, &before, &["algorithm"]).await;
    rig.idp.configure(&json!({})).await;
    rig.honest_sign_in(&mut browser, ALICE).await;
}

async fn rsa_sha1_signature_from_the_idp(peer: Peer) {
    // samlify pairs RSA-SHA1 with a SHA-1 digest; pysaml2 is told both.
    weak_algorithm_from_the_idp(
        peer,
        json!({ "sign_alg": "rsa-sha1", "digest_alg": "sha1" }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha1_digest_under_an_rsa_sha256_signature_from_pysaml2() {
    // Only pysaml2 chooses the digest apart from the signature algorithm.
    weak_algorithm_from_the_idp(
        Peer::Pysaml2,
        json!({ "sign_alg": "rsa-sha256", "digest_alg": "sha1" }),
    )
    .await;
}

/// One test per IdP for each content change re-signed with the IdP's own key: the
/// refusal must name the check listed.
macro_rules! resigned {
    ($($name:ident: $field:literal = $value:literal => $check:literal;)*) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn samlify() {
                super::refuses_resigned(Peer::Samlify, &[($field, $value)], &[$check]).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pysaml2() {
                super::refuses_resigned(Peer::Pysaml2, &[($field, $value)], &[$check]).await;
            }
        }
    )*};
}

resigned! {
    wrong_audience: "audience" = "http://evil.example/sso/corp/metadata" => "audience";
    wrong_recipient: "recipient" = "http://evil.example/sso/corp/callback" => "recipient";
    wrong_destination: "destination" = "http://evil.example/sso/corp/callback" => "destination";
    wrong_issuer: "issuer" = "http://evil.example/idp/metadata" => "issuer";
}

/// The genuine response with `fields` changed and signed again with the IdP's own key.
async fn refuses_resigned(peer: Peer, fields: &[(&str, &str)], checks: &[&str]) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let (mut browser, form) = signed_in_then_genuine(&rig, ALICE).await;
    let attacked = resigned_by_idp(peer, &form.saml_response, fields);
    refused_then_honest(&rig, &mut browser, &form, attacked, checks).await;
}

/// The plugin's default `clock_skew_seconds`.
const SKEW: i64 = 180;

async fn expired_by_moving_the_host_clock(peer: Peer) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let (mut browser, form) = signed_in_then_genuine(&rig, ALICE).await;
    // Move the host's clock one second past NotOnOrAfter plus the skew.
    let end = earliest_not_on_or_after(&form.xml());
    let advance = end + SKEW + 1 - rig.host.state.now();
    assert!(advance > 0, "NotOnOrAfter {end} is already past");
    rig.host
        .clock
        .advance(Duration::from_secs(advance.unsigned_abs()));
    let before = users_snapshot(&rig.host).await;
    let posted = post_and_finish(&mut browser, &form).await;
    assert_refused(&rig.host, &mut browser, &posted, &before, &["expired"]).await;

    // Honest: a fresh genuine response, its times moved as far as the host's clock
    // (re-signed with the IdP's key), signs in.
    let fresh = genuine_response(&mut browser, &rig.idp, "corp", ALICE).await;
    let shifted = resigned_by_idp(
        peer,
        &fresh.saml_response,
        &[("shift", &advance.to_string())],
    );
    let posted = post_and_finish(&mut browser, &fresh.with_response(shifted)).await;
    assert_signed_in(&posted, "/");
}

/// A response whose NotOnOrAfter (assertion and subject confirmation) is `offset` seconds
/// from the host's now, re-signed by the IdP's key, in a fresh browser.
async fn with_not_on_or_after(rig: &Rig, offset: i64) -> (Browser, AutoPost, String) {
    let mut browser = rig.browser();
    let form = genuine_response(&mut browser, &rig.idp, "corp", ALICE).await;
    let end = iso8601(rig.host.state.now() + offset);
    let attacked = resigned_by_idp(
        rig.idp.peer,
        &form.saml_response,
        &[("not_on_or_after", &end)],
    );
    (browser, form, attacked)
}

async fn exactly_at_not_on_or_after_plus_skew(peer: Peer) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let mut first = rig.browser();
    rig.honest_sign_in(&mut first, ALICE).await;
    // NotOnOrAfter is exclusive: at exactly NotOnOrAfter + skew it has expired.
    let (mut browser, form, attacked) = with_not_on_or_after(&rig, -SKEW).await;
    refused_then_honest(&rig, &mut browser, &form, attacked, &["expired"]).await;
    // Ten seconds inside the skew it has not.
    let (mut browser, form, inside) = with_not_on_or_after(&rig, 10 - SKEW).await;
    let posted = post_and_finish(&mut browser, &form.with_response(inside)).await;
    assert_signed_in(&posted, "/");
}

async fn not_before_beyond_the_skew(peer: Peer) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let (mut browser, form) = signed_in_then_genuine(&rig, ALICE).await;
    let not_before = iso8601(rig.host.state.now() + SKEW + 30);
    let attacked = resigned_by_idp(peer, &form.saml_response, &[("not_before", &not_before)]);
    refused_then_honest(&rig, &mut browser, &form, attacked, &["not-yet-valid"]).await;
}

fn relay_state_of(url: &url::Url) -> String {
    url.query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .expect("RelayState")
}

async fn in_response_to_of_another_browsers_request(peer: Peer) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let mut first = rig.browser();
    rig.honest_sign_in(&mut first, ALICE).await;
    // The victim's browser starts a sign-in; the IdP answers the victim's request.
    let mut victim = rig.browser();
    let victim_form = genuine_response(&mut victim, &rig.idp, "corp", ALICE).await;
    // The attacker starts one of their own and posts the victim's response with it.
    let mut attacker = rig.browser();
    let own = start(&mut attacker, "corp", "%2F").await;
    let mut form = victim_form.clone();
    form.relay_state = Some(relay_state_of(&own));
    let before = users_snapshot(&rig.host).await;
    let posted = post_and_finish(&mut attacker, &form).await;
    assert_refused(
        &rig.host,
        &mut attacker,
        &posted,
        &before,
        &["in-response-to"],
    )
    .await;
    rig.honest_sign_in(&mut attacker, ALICE).await;
}

async fn a_response_posted_from_another_browser_fails_at_the_finish_step(peer: Peer) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let mut first = rig.browser();
    rig.honest_sign_in(&mut first, ALICE).await;
    // A response to the attacker's own request, posted from the victim's browser (login
    // CSRF): it validates at the ACS, and the finish step sees another browser.
    let mut attacker = rig.browser();
    let form = genuine_response(&mut attacker, &rig.idp, "corp", ALICE).await;
    let mut victim = rig.browser();
    let before = users_snapshot(&rig.host).await;
    let posted = post_and_finish(&mut victim, &form).await;
    assert!(
        posted.finish.is_some(),
        "the ACS validates the response and sends the browser to the finish step: {posted:?}"
    );
    assert_refused(
        &rig.host,
        &mut victim,
        &posted,
        &before,
        &["browser other than"],
    )
    .await;
    rig.honest_sign_in(&mut victim, ALICE).await;
}

/// A genuine response without InResponseTo (re-signed by the IdP's key), as an
/// IdP-initiated sign-in sends it: posted with no RelayState.
async fn unsolicited(rig: &Rig, browser: &mut Browser) -> AutoPost {
    let form = genuine_response(browser, &rig.idp, "corp", ALICE).await;
    let stripped = resigned_by_idp(rig.idp.peer, &form.saml_response, &[("in_response_to", "")]);
    AutoPost {
        relay_state: None,
        ..form.with_response(stripped)
    }
}

async fn unsolicited_response_while_idp_initiated_is_off(peer: Peer) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let mut first = rig.browser();
    rig.honest_sign_in(&mut first, ALICE).await;
    let mut browser = rig.browser();
    let form = unsolicited(&rig, &mut browser).await;
    assert!(!form.xml().contains("InResponseTo"), "{}", form.xml());
    let before = users_snapshot(&rig.host).await;
    let posted = post_and_finish(&mut browser, &form).await;
    assert_refused(&rig.host, &mut browser, &posted, &before, &["unsolicited"]).await;
    rig.honest_sign_in(&mut browser, ALICE).await;
}

async fn the_same_response_posted_twice(peer: Peer) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let mut browser = rig.browser();
    let first = sign_in(&mut browser, &rig.idp, "corp", "%2F", ALICE).await;
    assert_signed_in(&first.posted, "/");
    // The same form again, from a browser with no session.
    let mut again = rig.browser();
    let before = users_snapshot(&rig.host).await;
    let posted = post_and_finish(&mut again, &first.form).await;
    assert_refused(
        &rig.host,
        &mut again,
        &posted,
        &before,
        &["already used", "replay"],
    )
    .await;
    rig.honest_sign_in(&mut again, ALICE).await;
}

async fn an_unsolicited_response_replayed(peer: Peer) {
    let rig = Rig::start(
        peer,
        RigOptions {
            settings: "allow_idp_initiated = true",
            ..RigOptions::default()
        },
    )
    .await;
    let mut browser = rig.browser();
    let form = unsolicited(&rig, &mut browser).await;
    // Accepted once (IdP-initiated sign-in is on: it lands on `/`)…
    let mut first = rig.browser();
    let posted = post_and_finish(&mut first, &form).await;
    assert_signed_in(&posted, "/");
    // …and refused by the replay cache the second time.
    let mut second = rig.browser();
    let before = users_snapshot(&rig.host).await;
    let posted = post_and_finish(&mut second, &form).await;
    assert_refused(&rig.host, &mut second, &posted, &before, &["replay"]).await;
    rig.honest_sign_in(&mut second, ALICE).await;
}

async fn a_response_for_one_tenant_posted_to_anothers_acs(peer: Peer) {
    // Two SAML IdP instances on two domains trusting the same IdP.
    let saml_idp = SamlIdp::start(peer, &saml::alice("Liddell"));
    let dir = tempfile::tempdir().expect("temp dir");
    let metadata = saml_idp.metadata_file(dir.path()).await;
    let corp = saml::idp(&IdpConfig::new("corp", &metadata));
    let acme = saml::idp(&IdpConfig {
        domain: "acme",
        ..IdpConfig::new("acme", &metadata)
    });
    let host = TestHost::start(&saml::host_config(&format!("{corp}\n{acme}"))).await;
    connect(&host, &saml_idp, HOST, "corp").await;

    // A genuine response for `corp` on the root domain…
    let mut at_root = host.browser(HOST);
    let form = genuine_response(&mut at_root, &saml_idp, "corp", ALICE).await;
    // …posted to `acme`'s ACS with a sign-in begun there.
    let mut at_acme = host.browser(ACME_HOST);
    let own = start(&mut at_acme, "acme", "%2F").await;
    let crossed = AutoPost {
        action: format!("http://{ACME_HOST}/sso/acme/callback"),
        relay_state: Some(relay_state_of(&own)),
        ..form
    };
    let before = users_snapshot(&host).await;
    let posted = post_and_finish(&mut at_acme, &crossed).await;
    assert_refused(
        &host,
        &mut at_acme,
        &posted,
        &before,
        &["audience", "recipient", "destination", "in-response-to"],
    )
    .await;

    // Honest: the IdP set up for `acme` signs in there.
    connect(&host, &saml_idp, ACME_HOST, "acme").await;
    let done = sign_in(&mut at_acme, &saml_idp, "acme", "%2F", ALICE).await;
    assert_signed_in(&done.posted, "/");
    assert_eq!(at_acme.get("/me").await.json()["username"], ALICE);
}

async fn a_two_megabyte_body(peer: Peer) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let (mut browser, form) = signed_in_then_genuine(&rig, ALICE).await;
    // The genuine response with 2 MB of padding in a comment inside it.
    let xml = form.xml();
    let at = xml.rfind("</").expect("a closing tag");
    let padded = format!(
        "{}<!--{}-->{}",
        &xml[..at],
        "x".repeat(2 * 1024 * 1024),
        &xml[at..]
    );
    let attacked = base64::engine::general_purpose::STANDARD.encode(padded);
    let before = users_snapshot(&rig.host).await;
    let posted = post_and_finish(&mut browser, &form.with_response(attacked)).await;
    // The host refuses the body before the plugin sees it, and audits it.
    assert_refused(&rig.host, &mut browser, &posted, &before, &["too-large"]).await;
    rig.honest_sign_in(&mut browser, ALICE).await;
}

async fn two_signed_assertions_for_one_request(peer: Peer) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    rig.idp
        .set_users(&json!({
            ALICE: { "givenName": "Alice", "sn": "Liddell", "mail": ALICE },
            "admin@example.test": { "givenName": "Admin", "sn": "Istrator", "mail": "admin@example.test" },
        }))
        .await;
    let mut first = rig.browser();
    rig.honest_sign_in(&mut first, ALICE).await;
    // The IdP answers the same request twice, for alice and for admin: two genuinely
    // signed assertions (distinct IDs), the second put beside the first.
    let mut browser = rig.browser();
    let url = start(&mut browser, "corp", "%2F").await;
    let form = rig.idp.sso(&url, ALICE).await;
    let other = rig.idp.sso(&url, "admin@example.test").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let other_path = dir.path().join("other.b64");
    std::fs::write(&other_path, &other.saml_response).expect("write the other response");
    let other_arg = other_path.display().to_string();
    let attacked = attack(
        "two-assertions",
        &form.saml_response,
        &["--other", &other_arg],
    );
    refused_then_honest(&rig, &mut browser, &form, attacked, &["assertion-count"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_with_only_an_encryption_key_is_refused_by_gatehouse_check() {
    let saml_idp = SamlIdp::start(Peer::Samlify, &saml::alice("Liddell"));
    let dir = tempfile::tempdir().expect("temp dir");
    let genuine = saml_idp.metadata_file(dir.path()).await;
    let text = std::fs::read_to_string(&genuine).expect("metadata");
    assert!(text.contains("use=\"signing\""), "{text}");
    let encryption_only = dir.path().join("encryption-only.xml");
    std::fs::write(
        &encryption_only,
        text.replace("use=\"signing\"", "use=\"encryption\""),
    )
    .expect("write metadata");

    let check = |metadata: &std::path::Path, name: &str| {
        let config = saml::host_config(&saml::idp(&IdpConfig::new("corp", metadata)));
        let database = format!("sqlite://{}", dir.path().join("gh.db").display());
        let path = dir.path().join(name);
        std::fs::write(&path, gatehouse_tests::config_text(&config, &database))
            .expect("write config");
        let output = std::process::Command::new(gatehouse_tests::plugin_dir().join("gatehouse"))
            .args(["check", "--format", "json", "--config"])
            .arg(&path)
            .output()
            .expect("run gatehouse check");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code(), stdout)
    };

    let (status, report) = check(&genuine, "genuine.toml");
    assert!(
        !report.contains("invalid-settings"),
        "the genuine metadata is refused: {report}"
    );
    assert_eq!(status, Some(0), "{report}");

    let (status, report) = check(&encryption_only, "encryption-only.toml");
    assert_eq!(status, Some(1), "{report}");
    let json: serde_json::Value =
        serde_json::from_str(report.lines().next().unwrap_or_default()).expect("one JSON object");
    let refusals: Vec<&serde_json::Value> = json["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["code"] == "invalid-settings")
        .collect();
    assert_eq!(refusals.len(), 1, "{report}");
    let message = refusals[0].to_string().to_lowercase();
    assert!(message.contains("signing"), "{message}");
    assert!(
        !dir.path().join("gh.db").exists(),
        "check creates no database"
    );
}
