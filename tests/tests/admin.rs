//! The admin's routes through the real router: reload without downtime (a broken file keeps
//! the running configuration, a good one replaces it) and the test sign-in (nothing saved).

use axum::http::StatusCode;
use gatehouse_tests::TestHost;

fn config(label: &str, behaviour: &str, extra_idp_keys: &str) -> String {
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

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "example"
domain = "root"
plugin = "example"
name = "{label}"
behaviour = "{behaviour}"
username_attribute = "email"
{extra_idp_keys}

[idp.provisioning]
create_users = true
update_existing = true
lock_fields = true
fields = {{ firstname = "given_name", lastname = "family_name" }}
"#
    )
}

fn button(label: &str) -> String {
    config(label, "button", "")
}

#[tokio::test]
async fn a_broken_file_is_refused_and_the_running_configuration_keeps_serving() {
    let host = TestHost::start(&button("Old label")).await;
    let mut admin = host.admin_browser("localhost").await;

    // An automatic redirect to an IdP that never signed anyone in: untested-redirect.
    host.rewrite_config(&config("New label", "redirect", ""));
    let refused = admin
        .send_json("POST", "/admin/reload", &serde_json::json!({}))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused:?}"
    );
    let body = refused.json();
    assert_eq!(body["applied"], false);
    assert!(
        body["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["code"] == "untested-redirect" && d["line"].as_u64().unwrap_or(0) > 0),
        "{body}"
    );
    let mut visitor = host.browser("localhost");
    let page = visitor.get("/login").await;
    assert!(
        page.body.contains("Old label"),
        "the old configuration serves"
    );

    // A file that does not even parse is refused too.
    std::fs::write(&host.config_path, "[[domain]\nname = ").unwrap();
    let refused = admin
        .send_json("POST", "/admin/reload", &serde_json::json!({}))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused:?}"
    );
    assert!(visitor.get("/login").await.body.contains("Old label"));

    // A good file replaces it for the next request.
    host.rewrite_config(&button("New label"));
    let applied = admin
        .send_json("POST", "/admin/reload", &serde_json::json!({}))
        .await;
    assert_eq!(applied.status, StatusCode::OK, "{applied:?}");
    assert_eq!(applied.json()["applied"], true);
    let page = visitor.get("/login").await;
    assert!(page.body.contains("New label"), "{}", page.body);
    assert!(!page.body.contains("Old label"));
}

#[tokio::test]
async fn reload_needs_an_admin_and_a_csrf_token() {
    let host = TestHost::start(&button("Label")).await;
    let mut anonymous = host.browser("localhost");
    let page = anonymous
        .send_json("POST", "/admin/reload", &serde_json::json!({}))
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);

    let id = host.create_user("learner", false).await;
    let mut learner = host.signed_in_browser("localhost", id).await;
    let page = learner
        .send_json("POST", "/admin/reload", &serde_json::json!({}))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let mut admin = host.admin_browser("localhost").await;
    let page = admin.post_form("/admin/reload", &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "no X-CSRF-Token header");
}

#[tokio::test]
async fn a_test_sign_in_of_a_hidden_idp_shows_the_plan_saves_nothing_and_proves_the_idp() {
    let host = TestHost::start(&config("Example", "hidden", "")).await;
    let mut visitor = host.browser("localhost");
    assert_eq!(
        visitor.get("/sso/example/start").await.status,
        StatusCode::NOT_FOUND,
        "a hidden IdP is not offered to the public"
    );
    let mut admin = host.admin_browser("localhost").await;
    let users_before = host.store.count_users().await.unwrap();
    let page = admin.round_trip("/admin/test-login/example").await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    let result = test_result(&page.body);
    assert_eq!(result["saved"], false);
    assert_eq!(result["plan"]["action"], "create");
    assert_eq!(
        result["attributes"]["email"][0],
        "example.user@example.test"
    );
    assert_eq!(result["match"]["value"], "example.user@example.test");
    let mapped = result["mapped"].as_array().unwrap();
    assert!(
        mapped
            .iter()
            .any(|m| m["field"] == "firstname" && m["value"] == "Example")
    );
    assert_eq!(result["locks"]["firstname"], "example");
    assert_eq!(result["locks"]["username"], "example");
    assert_eq!(
        host.store.count_users().await.unwrap(),
        users_before,
        "nothing saved"
    );
    assert!(
        host.store
            .idp_last_success("example")
            .await
            .unwrap()
            .is_some()
    );

    // That success satisfies untested-redirect: the redirect configuration now reloads.
    host.rewrite_config(&config("Example", "redirect", ""));
    let applied = admin
        .send_json("POST", "/admin/reload", &serde_json::json!({}))
        .await;
    assert_eq!(applied.status, StatusCode::OK, "{applied:?}");
}

#[tokio::test]
async fn a_test_sign_in_of_an_existing_user_shows_the_field_by_field_diff() {
    let host = TestHost::start(&button("Example")).await;
    let mut learner = host.browser("localhost");
    let done = learner.round_trip("/sso/example/start?return_to=%2F").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    let user = host
        .store
        .user_by_username("example.user@example.test")
        .await
        .unwrap()
        .unwrap();
    host.store
        .update_user_fields(
            user.id,
            &[gatehouse::store::FieldChange {
                field: "firstname".into(),
                value: "Typed".into(),
                provenance: None,
            }],
            2,
        )
        .await
        .unwrap();

    let mut admin = host.admin_browser("localhost").await;
    let page = admin.round_trip("/admin/test-login/example").await;
    let result = test_result(&page.body);
    assert_eq!(result["plan"]["action"], "update", "{result}");
    assert_eq!(result["plan"]["user_id"], user.id);
    let changes = result["plan"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["field"], "firstname");
    assert_eq!(changes[0]["old"], "Typed");
    assert_eq!(changes[0]["new"], "Example");
    let unchanged = host.store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(
        unchanged.firstname, "Typed",
        "a test sign-in writes nothing"
    );
}

#[tokio::test]
async fn only_admins_run_test_sign_ins() {
    let host = TestHost::start(&config("Example", "hidden", "")).await;
    let id = host.create_user("learner", false).await;
    let mut learner = host.signed_in_browser("localhost", id).await;
    assert_eq!(
        learner.get("/admin/test-login/example").await.status,
        StatusCode::FORBIDDEN
    );
    let mut anonymous = host.browser("localhost");
    assert_eq!(
        anonymous.get("/admin/test-login/example").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// The JSON the test sign-in page embeds for scripts.
fn test_result(body: &str) -> serde_json::Value {
    let start_marker = "<script type=\"application/json\" id=\"test-result\">";
    let start = body.find(start_marker).expect("test result") + start_marker.len();
    let end = body[start..].find("</script>").expect("end of test result") + start;
    serde_json::from_str(&body[start..end]).expect("test result is JSON")
}

fn sets_session(page: &gatehouse_tests::Page) -> bool {
    page.set_cookies
        .iter()
        .any(|c| c.starts_with("gh_session=") && !c.contains("Max-Age=0"))
}

/// A test sign-in's state token comes back at the ordinary callback, and the pending
/// sign-in's purpose, not the route, decides: it shows the plan and never signs in, and
/// without an administrator's session it is refused (audited) with nothing written.
#[tokio::test]
async fn a_test_sign_in_token_at_the_callback_never_signs_in() {
    let host = TestHost::start(&button("Example")).await;
    let mut admin = host.admin_browser("localhost").await;
    let admin_session = admin.cookies["gh_session"].clone();
    let users_before = host.store.count_users().await.unwrap();

    let page = admin.round_trip("/admin/test-login/example").await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(test_result(&page.body)["saved"], false);
    assert!(!sets_session(&page), "{:?}", page.set_cookies);
    assert_eq!(admin.cookies["gh_session"], admin_session);
    assert_eq!(host.store.count_users().await.unwrap(), users_before);

    // The same browser, no longer signed in as an administrator, brings a test sign-in's
    // answer back: refused, nothing saved, no session.
    let begun = admin.get("/admin/test-login/example").await;
    assert_eq!(begun.status, StatusCode::SEE_OTHER, "{begun:?}");
    admin.cookies.remove("gh_session");
    let page = admin.follow(&begun).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{page:?}");
    assert!(!sets_session(&page), "{:?}", page.set_cookies);
    assert!(!page.body.contains("test-result"), "{}", page.body);
    assert_eq!(host.store.count_users().await.unwrap(), users_before);
    let audit = host.store.recent_audit(1).await.unwrap();
    assert_eq!(audit[0].outcome, "refused", "{audit:?}");
    assert!(audit[0].reason.contains("test sign-in"), "{audit:?}");
}

/// The other way round: a real sign-in begun by an administrator's browser is a sign-in
/// (provisions, starts a session), never a test sign-in's report.
#[tokio::test]
async fn a_sign_in_token_is_never_ended_as_a_test_sign_in() {
    let host = TestHost::start(&button("Example")).await;
    let mut admin = host.admin_browser("localhost").await;
    let page = admin.round_trip("/sso/example/start?return_to=%2F").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{page:?}");
    assert!(sets_session(&page), "{:?}", page.set_cookies);
    assert!(!page.body.contains("test-result"));
    assert!(
        host.store
            .user_by_username("example.user@example.test")
            .await
            .unwrap()
            .is_some(),
        "the sign-in provisioned its user"
    );
    let audit = host.store.recent_audit(1).await.unwrap();
    assert_eq!(
        (audit[0].method.as_str(), audit[0].outcome.as_str()),
        ("sso", "success")
    );
}

/// The `Admin` extractor refuses as the handlers did: 401 signed out, 403 for anyone who is
/// not an administrator, on JSON routes in JSON.
#[tokio::test]
async fn admin_routes_refuse_non_admins_with_the_same_statuses_in_json() {
    let host = TestHost::start(&button("Example")).await;
    let id = host.create_user("learner", false).await;
    let mut learner = host.signed_in_browser("localhost", id).await;
    let mut anonymous = host.browser("localhost");
    for path in [
        format!("/admin/users/{id}/links"),
        format!("/admin/users/{id}/profile"),
    ] {
        let page = learner.get(&path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {page:?}");
        assert_eq!(page.json()["code"], "forbidden", "{path}");
        let page = anonymous.get(&path).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{path}: {page:?}");
        assert_eq!(page.json()["code"], "unauthorized", "{path}");
    }
    let page = learner
        .send_json(
            "POST",
            &format!("/admin/users/{id}/links"),
            &serde_json::json!({ "idp": "example" }),
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{page:?}");
    assert!(
        host.store.linked_idps(id).await.unwrap().is_empty(),
        "nothing linked"
    );
}
