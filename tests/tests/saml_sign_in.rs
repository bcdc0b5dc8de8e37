//! Sign-in and logout with the `saml` plugin against two real SAML identity providers
//! written by others (npm `samlify`, PyPI `pysaml2`), started on 127.0.0.1 by each test and
//! driven over HTTP with no browser: the host's SP metadata handed to the IdP,
//! `/sso/{idp}/start`, the IdP's auto-POST form posted cross-site to the ACS, the same-site
//! finish step, the session and `/me`; user creation with mapped fields, matching,
//! updating per `update_existing`, locks; SP-initiated and IdP-initiated single logout.
//! Every scenario runs once with each IdP.

use axum::http::StatusCode;
use gatehouse_tests::{
    TestHost,
    saml::{
        ALICE, HOST, Peer, Rig, RigOptions, alice, assert_signed_in, entity_id_of, path_of,
        sign_in, sp_metadata,
    },
};
use serde_json::{Value, json};
use url::Url;

gatehouse_tests::with_each_saml_idp!(
    first_sign_in_creates_the_user_the_second_matches_and_updates_and_fields_are_locked,
    changed_attributes_leave_the_user_alone_when_update_existing_is_off,
    sp_initiated_logout_ends_the_session_here_and_at_the_idp,
    idp_initiated_logout_ends_the_users_session_and_answers_the_idp,
);

async fn users(host: &TestHost) -> i64 {
    host.store.count_users().await.expect("count users")
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn first_sign_in_creates_the_user_the_second_matches_and_updates_and_fields_are_locked(
    peer: Peer,
) {
    let rig = Rig::start(peer, RigOptions::default()).await;

    // The SP metadata the IdP was given names the host's ACS and SLO for `corp`.
    let metadata = sp_metadata(&rig.host, HOST, "corp").await;
    let sp_entity_id = entity_id_of(&metadata);
    let base = sp_entity_id
        .strip_suffix("/sso/corp/metadata")
        .unwrap_or_else(|| panic!("entity id {sp_entity_id}"));
    let acs = format!("{base}/sso/corp/callback");
    assert!(metadata.contains(&acs), "{metadata}");
    assert!(
        metadata.contains(&format!("{base}/sso/corp/logout")),
        "{metadata}"
    );

    let mut browser = rig.browser();
    let first = sign_in(&mut browser, &rig.idp, "corp", "%2Fcourses%2F7", ALICE).await;
    assert_signed_in(&first.posted, "/courses/7");

    // The AuthnRequest: redirect binding, an ID of at least 128 bits, the host's opaque
    // state token as RelayState (never a URL), issued by the SP's entity id, asking for
    // the ACS the metadata names.
    let relay_state = query_param(&first.idp_url, "RelayState").expect("RelayState");
    assert!(relay_state.len() >= 32, "{relay_state}");
    assert!(!relay_state.contains('/'), "{relay_state}");
    let requests = rig.idp.logged("authn_request").await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request["relay_state"], relay_state.as_str());
    assert_eq!(request["acs"], acs.as_str());
    assert_eq!(request["issuer"], sp_entity_id.as_str());
    let request_id = request["id"].as_str().expect("request ID");
    assert!(request_id.len() >= 22, "{request_id}");
    // The IdP answered this request, with RelayState back as it was.
    assert!(
        first.form.xml().contains(request_id),
        "{}",
        first.form.xml()
    );
    assert_eq!(
        first.form.relay_state.as_deref(),
        Some(relay_state.as_str())
    );
    assert_eq!(first.form.action, acs);

    let me = browser.get("/me").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    let me = me.json();
    assert_eq!(me["username"], ALICE);
    assert_eq!(me["email"], ALICE);
    assert_eq!(me["firstname"], "Alice");
    assert_eq!(me["lastname"], "Liddell");
    assert_eq!(me["auth_source"], "idp:corp");
    assert_eq!(me["session"]["idp"], "corp");
    let user_id = me["id"].as_i64().expect("id");
    assert_eq!(users(&rig.host).await, 1);
    let provenance = rig
        .host
        .store
        .provenance(user_id)
        .await
        .expect("provenance");
    for field in ["username", "email", "firstname", "lastname"] {
        assert!(
            provenance
                .iter()
                .any(|p| p.field == field && p.idp_id == "corp"),
            "{field}: {provenance:?}"
        );
    }

    // A second sign-in in a fresh browser matches the same user.
    let mut second = rig.browser();
    rig.honest_sign_in(&mut second, ALICE).await;
    assert_eq!(second.get("/me").await.json()["id"], user_id);
    assert_eq!(users(&rig.host).await, 1);

    // The IdP changes her surname: the next sign-in updates the user (update_existing).
    rig.idp.set_users(&alice("Hargreaves")).await;
    let mut third = rig.browser();
    rig.honest_sign_in(&mut third, ALICE).await;
    let me = third.get("/me").await.json();
    assert_eq!(me["id"], user_id);
    assert_eq!(me["lastname"], "Hargreaves");
    assert_eq!(users(&rig.host).await, 1);

    // Provisioned fields are locked: her own profile edit is refused, nothing written.
    let refused = third
        .send_json(
            "PATCH",
            "/me/profile",
            &json!({ "fields": { "firstname": "Alicia" } }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
    let body = refused.json();
    assert_eq!(body["refused"][0]["field"], "firstname");
    assert_eq!(body["refused"][0]["locked_by"], "corp");
    let stored = rig
        .host
        .store
        .user_by_id(user_id)
        .await
        .expect("read")
        .expect("user");
    assert_eq!(stored.firstname, "Alice");
}

async fn changed_attributes_leave_the_user_alone_when_update_existing_is_off(peer: Peer) {
    let rig = Rig::start(
        peer,
        RigOptions {
            keep_existing: true,
            ..RigOptions::default()
        },
    )
    .await;
    let mut browser = rig.browser();
    rig.honest_sign_in(&mut browser, ALICE).await;
    let before = browser.get("/me").await.json();

    rig.idp.set_users(&alice("Hargreaves")).await;
    let mut again = rig.browser();
    rig.honest_sign_in(&mut again, ALICE).await;
    let after = again.get("/me").await.json();
    assert_eq!(
        after["id"], before["id"],
        "the same user, matched by NameID"
    );
    assert_eq!(after["lastname"], "Liddell");
    assert_eq!(users(&rig.host).await, 1);
}

/// The one log entry of `kind` at the IdP.
async fn only(rig: &Rig, kind: &str) -> Value {
    let entries = rig.idp.logged(kind).await;
    assert_eq!(
        entries.len(),
        1,
        "{kind}: {entries:?}; stderr:\n{}",
        rig.idp.stderr()
    );
    entries[0].clone()
}

async fn sp_initiated_logout_ends_the_session_here_and_at_the_idp(peer: Peer) {
    let rig = Rig::start(
        peer,
        RigOptions {
            idp_keys: "logout = { at_idp = true }",
            ..RigOptions::default()
        },
    )
    .await;
    let mut browser = rig.browser();
    rig.honest_sign_in(&mut browser, ALICE).await;
    let session_index = only(&rig, "authn_request").await["session_index"].clone();

    let csrf = browser.csrf().await;
    let out = browser.post_form("/logout", &[("csrf", &csrf)]).await;
    assert!(out.status.is_redirection(), "{out:?}");
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);

    // Sent to the IdP's SLO endpoint with a signed LogoutRequest (redirect binding).
    let slo = out.location.clone().expect("redirect to the IdP");
    assert!(
        slo.starts_with(&format!("{}/slo?SAMLRequest=", rig.idp.base_url())),
        "{slo}"
    );
    let at_idp = rig.idp.visit(&slo, reqwest::StatusCode::FOUND).await;
    let request = only(&rig, "logout_request").await;
    assert_eq!(request["name_id"], ALICE);
    assert_eq!(request["issuer"], rig.sp_entity_id.as_str());
    assert_eq!(request["signed"], true, "{request}");
    assert_eq!(
        request["sig_alg"],
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    );
    let indexes = request["session_index"].to_string();
    assert!(
        indexes.contains(session_index.as_str().expect("session index")),
        "the LogoutRequest names another session: {request} (signed in with {session_index})"
    );

    // The IdP's signed LogoutResponse comes back to the host's SLO, which lands the browser
    // on the logout landing page.
    let back = at_idp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("the IdP's redirect back")
        .to_owned();
    assert!(back.contains("/sso/corp/logout?SAMLResponse="), "{back}");
    let returned = browser.get(&path_of(&back)).await;
    assert!(returned.status.is_redirection(), "{returned:?}");
    assert_eq!(returned.location.as_deref(), Some("/logged-out"));
    let landing = browser.follow(&returned).await;
    assert_eq!(landing.status, StatusCode::OK, "{landing:?}");
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(users(&rig.host).await, 1);
}

async fn idp_initiated_logout_ends_the_users_session_and_answers_the_idp(peer: Peer) {
    let rig = Rig::start(peer, RigOptions::default()).await;
    let mut browser = rig.browser();
    rig.honest_sign_in(&mut browser, ALICE).await;
    // Someone else, signed in at the same time, stays signed in.
    rig.idp
        .set_users(&json!({
            ALICE: { "givenName": "Alice", "sn": "Liddell", "mail": ALICE },
            "bob@example.test": { "givenName": "Bob", "sn": "Builder", "mail": "bob@example.test" },
        }))
        .await;
    let mut bob = rig.browser();
    rig.honest_sign_in(&mut bob, "bob@example.test").await;
    let session_index = rig.idp.logged("authn_request").await[0]["session_index"]
        .as_str()
        .expect("session index")
        .to_owned();

    // The IdP sends the browser to the host's SLO with a signed LogoutRequest for alice.
    let (request_id, url) = rig.idp.begin_logout(ALICE, Some(&session_index)).await;
    assert!(url.contains("/sso/corp/logout?SAMLRequest="), "{url}");
    let answer = browser.get(&path_of(&url)).await;
    assert!(
        answer.status.is_redirection(),
        "the host did not answer the LogoutRequest with a redirect: {answer:?}"
    );
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bob.get("/me").await.status, StatusCode::OK);

    // Its signed LogoutResponse goes back to the IdP, which verifies it.
    let location = answer.location.clone().expect("Location");
    assert!(
        location.starts_with(&format!("{}/slo?SAMLResponse=", rig.idp.base_url())),
        "{location}"
    );
    rig.idp.visit(&location, reqwest::StatusCode::OK).await;
    let response = only(&rig, "logout_response").await;
    assert_eq!(response["in_response_to"], request_id.as_str());
    assert_eq!(
        response["status"],
        "urn:oasis:names:tc:SAML:2.0:status:Success"
    );
    assert_eq!(response["signed"], true, "{response}");
    assert_eq!(response["issuer"], rig.sp_entity_id.as_str());
}
