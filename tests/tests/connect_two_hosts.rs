//! Totara Connect end to end between two `gatehouse serve` processes on loopback (a server
//! on `127.0.0.1`, a client on `localhost`), registered by the admin commands: the users sync
//! (`gatehouse tasks run users`) copying profile fields and following the restricted
//! audience as `remove_user` says, a server-deleted user deleted on an unrestricted client,
//! single sign-on and sign-out at the client ending the server's session, request tokens
//! bound to their browser and single use, automatic sign-on with `?nosso=1` as the way round.

use gatehouse_tests::{
    connect::{ClientSetup, ConnectPair, sign_out, signed_in_user, sso_finish_redirect},
    served::WebClient,
};
use serde_json::Value;

/// alice and bob in audience AUD-1, carol outside it; each with a password and a department.
const DIRECTORY: &str = r#"{
  "users": [
    {"username": "alice", "email": "alice@example.test", "firstname": "Alice", "lastname": "Ng",
     "password": "alice-password-1", "fields": {"department": "Sales"}},
    {"username": "bob", "email": "bob@example.test", "firstname": "Bob", "lastname": "Lee",
     "password": "bob-password-1", "fields": {"department": "Ops"}},
    {"username": "carol", "email": "carol@example.test", "firstname": "Carol", "lastname": "Fox",
     "password": "carol-password-1", "fields": {"department": "Legal"}}
  ],
  "audiences": [{"idnumber": "AUD-1", "name": "Staff", "members": ["alice", "bob"]}]
}"#;

/// The client's synced users by email (their usernames are `tc_<id>_<server idnumber>`).
fn synced_by_email(directory: &Value) -> std::collections::BTreeMap<String, Value> {
    directory["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| u["username"].as_str().is_some_and(|n| n.starts_with("tc_")))
        .map(|u| (u["email"].as_str().expect("email").to_owned(), u.clone()))
        .collect()
}

/// Syncs a client restricted to AUD-1, takes bob out of AUD-1 on the server, syncs again:
/// bob as `remove_user` says; alice unchanged throughout.
async fn restricted_audience_sync(remove_user: &str) -> Option<Value> {
    let settings = format!("remove_user = \"{remove_user}\"\nsync_profile_fields = true");
    let pair = ConnectPair::start(
        &ClientSetup {
            settings: &settings,
            ..ClientSetup::default()
        },
        DIRECTORY,
        &["--restrict-audience", "AUD-1", "--sync-profile-fields"],
    )
    .await;
    pair.run_client_task("handshake");
    let first = pair.run_client_task("users");
    assert!(first.contains("created 2"), "{first}");

    let users = synced_by_email(&pair.client_directory());
    assert_eq!(
        users.keys().collect::<Vec<_>>(),
        ["alice@example.test", "bob@example.test"],
        "only AUD-1's members reach a client restricted to it"
    );
    let alice = &users["alice@example.test"];
    assert_eq!(alice["firstname"], "Alice");
    assert_eq!(alice["fields"]["department"], "Sales", "{alice}");
    assert_eq!(users["bob@example.test"]["fields"]["department"], "Ops");
    assert_eq!(alice["suspended"], false);

    let again = pair.run_client_task("users");
    assert!(
        again.contains("created 0") && again.contains("updated 0"),
        "a second sync changes nothing: {again}"
    );

    pair.import(r#"{"audiences": [{"idnumber": "AUD-1", "name": "Staff", "members": ["alice"]}]}"#);
    pair.run_client_task("users");
    let users = synced_by_email(&pair.client_directory());
    assert_eq!(users["alice@example.test"]["suspended"], false);
    assert_eq!(users["alice@example.test"]["fields"]["department"], "Sales");
    users.get("bob@example.test").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_leaving_the_restricted_audience_is_kept_with_keep() {
    let bob = restricted_audience_sync("keep").await.expect("bob is kept");
    assert_eq!(bob["suspended"], false, "{bob}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_leaving_the_restricted_audience_is_suspended_with_suspend() {
    let bob = restricted_audience_sync("suspend")
        .await
        .expect("bob is kept, suspended");
    assert_eq!(bob["suspended"], true, "{bob}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_leaving_the_restricted_audience_is_deleted_with_delete() {
    assert_eq!(restricted_audience_sync("delete").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deleted_on_the_server_is_deleted_on_an_unrestricted_client_even_with_keep() {
    let pair = ConnectPair::start(
        &ClientSetup {
            settings: "remove_user = \"keep\"",
            ..ClientSetup::default()
        },
        DIRECTORY,
        &[],
    )
    .await;
    pair.run_client_task("users");
    let users = synced_by_email(&pair.client_directory());
    // Every user but guest, as in Totara: the server's bootstrap admin (no email) too.
    assert_eq!(
        users.keys().collect::<Vec<_>>(),
        [
            "",
            "alice@example.test",
            "bob@example.test",
            "carol@example.test"
        ],
        "an unrestricted client gets every user: {users:?}"
    );
    assert_eq!(users[""]["lastname"], "Administrator");

    pair.import(r#"{"users": [{"username": "carol", "deleted": true}]}"#);
    let run = pair.run_client_task("users");
    assert!(run.contains("deleted 1"), "{run}");
    let users = synced_by_email(&pair.client_directory());
    assert!(
        !users.contains_key("carol@example.test"),
        "carol was deleted on the server: {users:?}"
    );
    assert!(users.contains_key("alice@example.test") && users.contains_key("bob@example.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_through_the_server_and_sign_out_at_the_client_ends_both() {
    let pair = ConnectPair::start(&ClientSetup::default(), DIRECTORY, &[]).await;
    let browser = WebClient::new();
    let chain = pair.sign_in(&browser, "alice", "alice-password-1").await;
    let landed = chain.last().expect("a page");
    assert!(
        landed.url.starts_with(&pair.client.origin()),
        "the browser ends on the client: {:?}",
        chain.iter().map(|s| (&s.url, s.status)).collect::<Vec<_>>()
    );
    let local = signed_in_user(&browser, &pair.client)
        .await
        .expect("signed in at the client");
    assert!(local.starts_with("tc_"), "{local}");
    assert_eq!(
        signed_in_user(&browser, &pair.server).await.as_deref(),
        Some("alice")
    );

    // Signing out at the client tells the server (force_sso_logout), which ends its own
    // session of that sign-on too.
    sign_out(&browser, &pair.client).await;
    assert_eq!(signed_in_user(&browser, &pair.client).await, None);
    assert_eq!(
        signed_in_user(&browser, &pair.server).await,
        None,
        "the server's session outlived the client's sign-out; server log:\n{}",
        pair.server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_token_works_once_and_only_in_the_browser_that_began_the_sign_in() {
    let pair = ConnectPair::start(&ClientSetup::default(), DIRECTORY, &[]).await;

    // The server sends alice's browser back to sso_finish.php; another browser gets there
    // first with the same URL.
    let alice = WebClient::new();
    let start = alice
        .visit(&pair.client.url("/sso/hq/start?return_to=/"))
        .await;
    let login = start.last().expect("the server's login page");
    let csrf = gatehouse_tests::connect::hidden_field(&login.body, "csrf").expect("csrf");
    let return_to =
        gatehouse_tests::connect::hidden_field(&login.body, "return_to").expect("return_to");
    let mut page = alice
        .post_form(
            &pair.server.url("/login?nosso=1"),
            &[
                ("csrf", csrf.as_str()),
                ("username", "alice"),
                ("password", "alice-password-1"),
                ("return_to", return_to.as_str()),
            ],
        )
        .await;
    let finish = loop {
        assert!(page.is_redirect(), "{} {}", page.status, page.body);
        let location = page.location.clone().expect("a location");
        if location.contains("/auth/connect/sso_finish.php") {
            break location;
        }
        page = alice.get(&location).await;
    };
    assert!(finish.contains("result=success"), "{finish}");

    let mallory = WebClient::new();
    let stolen = mallory.visit(&finish).await;
    assert!(
        stolen.last().expect("a page").status >= 400,
        "another browser finished alice's sign-in: {:?}",
        stolen
            .iter()
            .map(|s| (&s.url, s.status))
            .collect::<Vec<_>>()
    );
    assert_eq!(signed_in_user(&mallory, &pair.client).await, None);

    // The token was spent by that attempt: single use, even for its own browser.
    let late = alice.visit(&finish).await;
    assert!(late.last().expect("a page").status >= 400, "{late:?}");
    assert_eq!(signed_in_user(&alice, &pair.client).await, None);

    // A fresh sign-in works (alice is still signed in at the server: no login page);
    // replaying its finish URL afterwards signs nobody in again.
    let chain = alice
        .visit(&pair.client.url("/sso/hq/start?return_to=/"))
        .await;
    let finish = sso_finish_redirect(&chain)
        .and_then(|s| s.location.clone())
        .expect("the redirect to sso_finish.php");
    assert!(signed_in_user(&alice, &pair.client).await.is_some());
    let replayed = WebClient::new().visit(&finish).await;
    assert!(
        replayed.last().expect("a page").status >= 400,
        "a spent request token finished a sign-in: {replayed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_sign_on_sends_the_login_page_to_the_server_and_nosso_shows_the_form() {
    let pair = ConnectPair::start(
        &ClientSetup {
            idp_lines: "behaviour = \"redirect\"\nredirect_confirmed = true",
            ..ClientSetup::default()
        },
        DIRECTORY,
        &[],
    )
    .await;
    let browser = WebClient::new();
    let chain = browser.visit(&pair.client.url("/login")).await;
    assert!(
        chain
            .last()
            .expect("a page")
            .url
            .starts_with(&pair.server.url("/login")),
        "the client's login page went to the server: {:?}",
        chain.iter().map(|s| (&s.url, s.status)).collect::<Vec<_>>()
    );
    let form = browser.get(&pair.client.url("/login?nosso=1")).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(
        form.body.contains("name=\"password\""),
        "?nosso=1 shows the password form: {}",
        form.body
    );
}

/// Regression: a user deleted on the server lost their server sessions with the account (the
/// schema's cascade), and a suspended one kept a session nobody could use, but no client was
/// told, so the clients' sign-ons lived on. The server's cleanup now ends such sessions at
/// their clients (`kill_sso_user`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_deleted_or_suspended_on_the_server_are_signed_out_of_its_clients_at_the_next_cleanup()
 {
    let pair = ConnectPair::start(&ClientSetup::default(), DIRECTORY, &[]).await;
    let carol = WebClient::new();
    pair.sign_in(&carol, "carol", "carol-password-1").await;
    let bob = WebClient::new();
    pair.sign_in(&bob, "bob", "bob-password-1").await;
    let alice = WebClient::new();
    pair.sign_in(&alice, "alice", "alice-password-1").await;
    for browser in [&carol, &bob, &alice] {
        assert!(signed_in_user(browser, &pair.client).await.is_some());
    }

    pair.import(
        r#"{"users": [{"username": "carol", "deleted": true},
                      {"username": "bob", "suspended": true}]}"#,
    );
    assert_eq!(signed_in_user(&carol, &pair.server).await, None);
    assert_eq!(signed_in_user(&bob, &pair.server).await, None);
    pair.server.cli_ok(&["tasks", "run", "cleanup"]);
    for (name, browser) in [("carol", &carol), ("bob", &bob)] {
        assert_eq!(
            signed_in_user(browser, &pair.client).await,
            None,
            "{name}'s sign-on at the client outlived the change; server log:\n{}",
            pair.server.log()
        );
    }
    assert!(
        signed_in_user(&alice, &pair.client).await.is_some(),
        "alice, untouched, stays signed in"
    );
}
