//! Provisioning through the real host: concurrent first sign-ins, updates with
//! provenance, branches, mandatory fields, and locks enforced by the profile API.

use std::sync::Arc;

use axum::http::StatusCode;
use gatehouse_tests::{Browser, TestHost};
use serde_json::json;

/// One root domain and one EE domain (`acme`), an example IdP on each. `{settings}` are the
/// root IdP's `[idp.settings]` lines, `{provisioning}` its provisioning lines.
fn config(provisioning: &str, settings: &str) -> String {
    format!(
        r#"
[host]
public_url = "http://localhost:8080"
database = "{{database}}"
plugin_dir = "{{plugin_dir}}"
dev_mode = true

[[plugin]]
id = "example"
library = "gatehouse_example"

[[field]]
name = "department"
mandatory = true
user_editable = true

[[domain]]
name = "root"
hosts = ["localhost"]

[[domain]]
name = "acme"
hosts = ["acme.localhost"]
branch = "acme"

[[idp]]
id = "example"
domain = "root"
plugin = "example"
name = "Sign in with Example"
username_attribute = "email"

[idp.provisioning]
{provisioning}

[idp.settings]
{settings}

[[idp]]
id = "acme-example"
domain = "acme"
plugin = "example"
username_attribute = "email"

[idp.provisioning]
create_users = true
fields = {{ firstname = "given_name", lastname = "family_name", department = "dept" }}

[idp.settings]
extra = {{ dept = "Acme" }}
"#
    )
}

const PROVISION_AND_LOCK: &str = r#"create_users = true
update_existing = true
lock_fields = true
fields = { firstname = "given_name", lastname = "family_name", department = "dept" }"#;

const ADA: &str = r#"email = "ada@example.test"
given_name = "Ada"
family_name = "Lovelace"
extra = { dept = "Engines" }"#;

async fn sign_in(browser: &mut Browser, idp: &str) -> gatehouse_tests::Page {
    browser
        .round_trip(&format!("/sso/{idp}/start?return_to=%2F"))
        .await
}

#[tokio::test]
async fn fifty_concurrent_first_sign_ins_of_one_identity_make_exactly_one_user() {
    let host = Arc::new(TestHost::start(&config(PROVISION_AND_LOCK, ADA)).await);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let host = Arc::clone(&host);
        tasks.push(tokio::spawn(async move {
            let mut browser = host.browser("localhost");
            let begun = browser.get("/sso/example/start?return_to=%2F").await;
            assert_eq!(begun.status, StatusCode::SEE_OTHER);
            begun
        }));
    }
    // All begin first, then all callbacks race.
    let mut callbacks = Vec::new();
    for task in tasks {
        let begun = task.await.expect("task");
        let host = Arc::clone(&host);
        callbacks.push((host, begun));
    }
    let mut racing = Vec::new();
    for (host, begun) in callbacks {
        racing.push(tokio::spawn(async move {
            // Each callback needs the browser that began it: rebuild its pending cookie.
            let mut browser = host.browser("localhost");
            for cookie in &begun.set_cookies {
                if let Some((name, value)) =
                    cookie.split(';').next().and_then(|p| p.split_once('='))
                {
                    browser.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
            browser.follow(&begun).await.status
        }));
    }
    let mut signed_in = 0;
    for task in racing {
        if task.await.expect("task") == StatusCode::SEE_OTHER {
            signed_in += 1;
        }
    }
    assert_eq!(signed_in, 50, "every sign-in succeeds");
    assert_eq!(host.store.count_users().await.expect("count"), 1);
    let user = host
        .store
        .user_by_username("ada@example.test")
        .await
        .expect("lookup")
        .expect("the one user");
    assert_eq!(user.firstname, "Ada");
}

#[tokio::test]
async fn changed_fields_are_updated_with_provenance_only_where_update_existing() {
    let host = TestHost::start(&config(PROVISION_AND_LOCK, ADA)).await;
    let mut browser = host.browser("localhost");
    assert_eq!(
        sign_in(&mut browser, "example").await.status,
        StatusCode::SEE_OTHER
    );
    let user = host
        .store
        .user_by_username("ada@example.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.additional.get("department").map(String::as_str),
        Some("Engines")
    );

    // The IdP now says something else; update_existing is on.
    host.rewrite_config(&config(
        PROVISION_AND_LOCK,
        &ADA.replace("Engines", "Analytical"),
    ));
    assert!(
        gatehouse::reload::reload(&host.state)
            .await
            .unwrap()
            .applied()
    );
    let mut again = host.browser("localhost");
    assert_eq!(
        sign_in(&mut again, "example").await.status,
        StatusCode::SEE_OTHER
    );
    let updated = host.store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(
        updated.additional.get("department").map(String::as_str),
        Some("Analytical")
    );
    let provenance = host.store.provenance(user.id).await.unwrap();
    assert!(
        provenance
            .iter()
            .any(|p| p.field == "department" && p.idp_id == "example"),
        "{provenance:?}"
    );

    // update_existing off: the account is matched but left alone.
    host.rewrite_config(&config(
        &PROVISION_AND_LOCK.replace("update_existing = true", "update_existing = false"),
        &ADA.replace("Engines", "Babbage"),
    ));
    assert!(
        gatehouse::reload::reload(&host.state)
            .await
            .unwrap()
            .applied()
    );
    let mut third = host.browser("localhost");
    assert_eq!(
        sign_in(&mut third, "example").await.status,
        StatusCode::SEE_OTHER
    );
    let unchanged = host.store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(
        unchanged.additional.get("department").map(String::as_str),
        Some("Analytical")
    );
    assert_eq!(host.store.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn a_user_of_another_branch_is_never_matched_or_duplicated() {
    // Both IdPs assert the example plugin's default identity.
    let host = TestHost::start(&config(
        PROVISION_AND_LOCK,
        r#"extra = { dept = "Engines" }"#,
    ))
    .await;
    // The person first signs in on the EE domain: the account lives in branch `acme`.
    let mut acme = host.browser("acme.localhost");
    let done = acme
        .round_trip("/sso/acme-example/start?return_to=%2F")
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(host.store.count_users().await.unwrap(), 1);

    // The same identity on the root domain is neither matched nor created again.
    let mut root = host.browser("localhost");
    let refused = sign_in(&mut root, "example").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(
        refused
            .body
            .contains("belongs to another part of the platform"),
        "{}",
        refused.body
    );
    assert!(!root.cookies.contains_key("gh_session"));
    assert_eq!(host.store.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn a_missing_mandatory_field_refuses_creation_and_writes_nothing() {
    let host = TestHost::start(&config(PROVISION_AND_LOCK, r#"email = "bob@example.test""#)).await;
    let mut browser = host.browser("localhost");
    let refused = sign_in(&mut browser, "example").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(refused.body.contains("department"), "{}", refused.body);
    assert_eq!(host.store.count_users().await.unwrap(), 0);
    let audit = host.store.recent_audit(5).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.outcome == "refused" && e.reason.contains("department")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn locks_follow_provenance_for_owners_and_admins() {
    let host = TestHost::start(&config(PROVISION_AND_LOCK, ADA)).await;
    let mut ada = host.browser("localhost");
    assert_eq!(
        sign_in(&mut ada, "example").await.status,
        StatusCode::SEE_OTHER
    );
    let user = host
        .store
        .user_by_username("ada@example.test")
        .await
        .unwrap()
        .unwrap();

    let profile = ada.get("/me/profile").await;
    assert_eq!(profile.status, StatusCode::OK, "{profile:?}");
    let fields = profile.json()["fields"].clone();
    let field = |name: &str| {
        fields
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(field("firstname")["locked_by"], "example");
    assert_eq!(field("department")["locked_by"], "example");
    assert_eq!(
        field("email")["locked_by"],
        serde_json::Value::Null,
        "email was not provisioned by a mapping... it is the username attribute"
    );

    // The owner cannot change a locked field, and nothing is written.
    let refused = ada
        .send_json(
            "PATCH",
            "/me/profile",
            &json!({ "fields": { "firstname": "Augusta", "lastname": "King" } }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
    let body = refused.json();
    assert_eq!(body["refused"][0]["field"], "firstname");
    assert_eq!(body["refused"][0]["locked_by"], "example");
    let after = host.store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(after.firstname, "Ada");
    assert_eq!(after.lastname, "Lovelace", "no partial write");

    // An admin may change a locked core field, not a locked additional field.
    let mut admin = host.admin_browser("localhost").await;
    let uri = format!("/admin/users/{}/profile", user.id);
    let ok = admin
        .send_json(
            "PATCH",
            &uri,
            &json!({ "fields": { "firstname": "Augusta" } }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    let refused = admin
        .send_json(
            "PATCH",
            &uri,
            &json!({ "fields": { "department": "Poetry" } }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
    assert!(refused.body.contains("`example`"), "{}", refused.body);

    // The admin's value was typed in: it is no longer locked for Ada.
    let profile = ada.get("/me/profile").await.json();
    let firstname = profile["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "firstname")
        .cloned()
        .unwrap();
    assert_eq!(firstname["value"], "Augusta");
    assert_eq!(firstname["locked_by"], serde_json::Value::Null);
    assert_eq!(firstname["editable"], true);

    // A user who is not an admin cannot use the admin API.
    let denied = ada.get(&uri).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    // The admin's one edit that went through is an event; the refused ones are not.
    let metrics = host.state.metrics().render(host.store.pool_status());
    assert!(
        metrics.contains(r#"gatehouse_account_changes_total{idp="",change="edited_by_admin"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains("edited_by_owner"), "{metrics}");
}

#[tokio::test]
async fn password_users_have_no_locks() {
    let host = TestHost::start(&config(PROVISION_AND_LOCK, ADA)).await;
    let id = host.create_user("grace", false).await;
    let mut grace = host.signed_in_browser("localhost", id).await;
    let changed = grace
        .send_json(
            "PATCH",
            "/me/profile",
            &json!({ "fields": { "firstname": "Grace", "department": "Navy" } }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    let user = host.store.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(user.firstname, "Grace");
    assert_eq!(
        user.additional.get("department").map(String::as_str),
        Some("Navy")
    );
    let metrics = host.state.metrics().render(host.store.pool_status());
    assert!(
        metrics.contains(r#"gatehouse_account_changes_total{idp="",change="edited_by_owner"} 1"#),
        "{metrics}"
    );

    // Owners cannot rename themselves; the refusal says why.
    let refused = grace
        .send_json(
            "PATCH",
            "/me/profile",
            &json!({ "fields": { "username": "admin2" } }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.body.contains("administrator"), "{}", refused.body);

    // Without the CSRF header the edit is refused.
    let mut no_csrf = grace.clone();
    no_csrf.cookies.remove("gh_csrf");
    no_csrf.cookies.insert("gh_csrf".into(), "x".repeat(40));
    let request = axum::http::Request::builder()
        .method("PATCH")
        .uri("/me/profile")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .header(
            "cookie",
            format!("gh_session={}", grace.cookies["gh_session"]),
        )
        .body(axum::body::Body::from(r#"{"fields":{"firstname":"X"}}"#))
        .unwrap();
    assert_eq!(no_csrf.send(request).await.status, StatusCode::FORBIDDEN);
}

/// `match_field` may name an additional field: the first sign-in creates the account with
/// the IdP's value (and its provenance), the second finds it by that value.
#[tokio::test]
async fn users_are_matched_on_an_additional_field() {
    let config = gatehouse_tests::EXAMPLE_CONFIG
        .replace(
            "username_attribute = \"email\"\n\n[idp.provisioning]",
            "username_attribute = \"employee\"\nmatch_field = \"employee\"\n\n[idp.provisioning]",
        )
        .replace(
            "family_name = \"Lovelace\"\n",
            "family_name = \"Lovelace\"\nextra = { employee = \"E-1815\" }\n",
        )
        .replace(
            "[[domain]]\nname = \"root\"",
            "[[field]]\nname = \"employee\"\nuser_editable = false\n\n[[domain]]\nname = \"root\"",
        );
    let host = gatehouse_tests::TestHost::start(&config).await;
    let mut first = host.browser("localhost");
    first.round_trip("/sso/example/start").await;
    let me = first.get("/me").await.json();
    assert_eq!(me["username"], "E-1815", "{me}");
    let created = me["id"].clone();

    let mut second = host.browser("localhost");
    second.round_trip("/sso/example/start").await;
    let again = second.get("/me").await.json();
    assert_eq!(
        again["id"], created,
        "matched by employee, not created twice: {again}"
    );
    assert_eq!(host.store.count_users().await.expect("count"), 1);
}
