//! The per-instance cache of parsed provider data on the test kit's `FakeHost`: a warm
//! sign-in reads neither discovery nor the key set from the shared key-value store;
//! an unknown `kid` re-reads the shared copy (another host may have refreshed it)
//! before fetching; both expire by the host's clock. Also the pending sign-in state,
//! which is small and still reads what an older version saved.

use std::time::Duration;

use gatehouse_oidc_core::{
    RelyingParty, RpConfig, StandardProfile,
    testing::{self, CALLBACK_URL, CLIENT_ID, CLIENT_SECRET, CountingHost, Signer},
};
use gatehouse_plugin_api::{IdentityProvider, Secret};
use serde_json::json;

const ISSUER: &str = "https://idp.test";
const TTL: u64 = 3600;

fn config() -> RpConfig {
    let mut config = RpConfig::new(ISSUER.into(), "issuer", CLIENT_ID.into());
    config.client_secret = Some(Secret::new(CLIENT_SECRET));
    config
}

fn relying_party() -> RelyingParty<StandardProfile> {
    RelyingParty::new(config(), StandardProfile).expect("valid config")
}

type Harness = testing::Harness<RelyingParty<StandardProfile>>;

fn harness() -> Harness {
    testing::Harness::new(relying_party(), ISSUER, None)
}

/// One whole sign-in with key A through `host`, on `idp`.
fn sign_in_through(h: &Harness, host: &CountingHost<'_>, idp: &RelyingParty<StandardProfile>) {
    sign_in_fetching(h, host, idp, false);
}

/// Like [`sign_in_through`]; with `fetch`, the provider's discovery document and key
/// set are scripted too (in the order the sign-in asks for them).
fn sign_in_fetching(
    h: &Harness,
    host: &CountingHost<'_>,
    idp: &RelyingParty<StandardProfile>,
    fetch: bool,
) {
    if fetch {
        h.provider.expect_discovery(&h.fake);
    }
    let login = host.call(|host| {
        let request = gatehouse_plugin_api::BeginRequest {
            callback_url: CALLBACK_URL.into(),
            state_token: "host-state-token".into(),
            login_hint: None.into(),
        };
        idp.begin_login(host, &request).expect("begins")
    });
    let url = url::Url::parse(login.step.url.as_str()).expect("URL");
    let nonce = url
        .query_pairs()
        .find(|(name, _)| name == "nonce")
        .map(|(_, value)| value.into_owned())
        .expect("nonce");
    let token = h
        .provider
        .sign(Signer::RsaA, &h.provider.claims(h.now(), &nonce));
    h.provider.expect_token(&h.fake, &token);
    if fetch {
        h.provider.expect_jwks(&h.fake, &h.provider.jwks());
    }
    let callback = testing::Login {
        url,
        begun: login,
        state: "host-state-token".into(),
        nonce,
    }
    .callback(&[("iss", ISSUER)]);
    host.call(|host| idp.complete_login(host, &callback))
        .expect("signs in");
}

#[test]
fn a_warm_sign_in_reads_no_provider_data_from_the_store() {
    let h = harness();
    let cold = CountingHost::new(&h.fake);
    sign_in_through(&h, &cold, &h.idp);
    assert_eq!(
        cold.provider_reads(),
        vec![
            format!("oidc:discovery:{ISSUER}"),
            format!("oidc:jwks:{ISSUER}")
        ],
        "the first sign-in of an instance reads the shared copies once"
    );

    let warm = CountingHost::new(&h.fake);
    sign_in_through(&h, &warm, &h.idp);
    assert_eq!(warm.provider_reads(), Vec::<String>::new());
    assert_eq!(h.requests_to(&h.provider.jwks_url()), 1, "no fetch either");
    assert_eq!(h.requests_to(&h.provider.discovery_url()), 1);
    h.fake.assert_script_done();
}

#[test]
fn each_instance_has_its_own_cache() {
    let h = harness();
    sign_in_through(&h, &CountingHost::new(&h.fake), &h.idp);
    let other = relying_party();
    let host = CountingHost::new(&h.fake);
    sign_in_through(&h, &host, &other);
    assert_eq!(
        host.provider_reads().len(),
        2,
        "a new instance starts cold, from the shared copies"
    );
    h.fake.assert_script_done();
}

#[test]
fn an_unknown_kid_rereads_the_shared_key_set_before_fetching() {
    // Two hosts (two instances) on one store; no rate limit, so only the re-read can
    // explain the missing fetch.
    let mut config = config();
    config.jwks_refresh_min_seconds = 0;
    let h = testing::Harness::new(
        RelyingParty::new(config.clone(), StandardProfile).expect("valid"),
        ISSUER,
        None,
    );
    let host_b = RelyingParty::new(config, StandardProfile).expect("valid");
    sign_in_through(&h, &CountingHost::new(&h.fake), &h.idp);
    sign_in_through(&h, &CountingHost::new(&h.fake), &host_b);

    // The provider rotates to key B; host B sees it first and refreshes the shared copy.
    h.fake.advance(Duration::from_secs(5));
    let login = testing::begin(&h.fake, &host_b, "state-b");
    let token = h.provider.sign(Signer::RsaB, &h.claims(&login));
    h.provider.expect_token(&h.fake, &token);
    h.provider.expect_jwks(&h.fake, &h.provider.rotated_jwks());
    h.fake
        .call(|host| host_b.complete_login(host, &login.callback(&[("iss", ISSUER)])))
        .expect("host B signs in after its refresh");
    assert_eq!(h.requests_to(&h.provider.jwks_url()), 2);

    // Host A's memory lacks key B: it reads the shared copy and finds it, no fetch.
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaB, &h.claims(&login));
    h.provider.expect_token(&h.fake, &token);
    let host_a = CountingHost::new(&h.fake);
    host_a
        .call(|host| {
            h.idp
                .complete_login(host, &login.callback(&[("iss", ISSUER)]))
        })
        .expect("host A signs in from the shared copy");
    assert_eq!(host_a.provider_reads(), vec![format!("oidc:jwks:{ISSUER}")]);
    assert_eq!(
        h.requests_to(&h.provider.jwks_url()),
        2,
        "no fetch by host A"
    );
    h.fake.assert_script_done();

    // And keeps it: the next key-B token reads nothing.
    let again = CountingHost::new(&h.fake);
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaB, &h.claims(&login));
    h.provider.expect_token(&h.fake, &token);
    again
        .call(|host| {
            h.idp
                .complete_login(host, &login.callback(&[("iss", ISSUER)]))
        })
        .expect("signs in");
    assert_eq!(again.provider_reads(), Vec::<String>::new());
}

#[test]
fn an_unknown_kid_fetches_when_the_shared_copy_is_the_same() {
    let mut config = config();
    config.jwks_refresh_min_seconds = 0;
    let h = testing::Harness::new(
        RelyingParty::new(config, StandardProfile).expect("valid"),
        ISSUER,
        None,
    );
    sign_in_through(&h, &CountingHost::new(&h.fake), &h.idp);
    let login = h.begin();
    let token = h.provider.sign(Signer::RsaB, &h.claims(&login));
    h.provider.expect_token(&h.fake, &token);
    h.provider.expect_jwks(&h.fake, &h.provider.rotated_jwks());
    let host = CountingHost::new(&h.fake);
    host.call(|host| {
        h.idp
            .complete_login(host, &login.callback(&[("iss", ISSUER)]))
    })
    .expect("signs in after the fetch");
    assert_eq!(
        host.provider_reads(),
        vec![format!("oidc:jwks:{ISSUER}")],
        "one re-read, then the fetch"
    );
    assert_eq!(h.requests_to(&h.provider.jwks_url()), 2);
    h.fake.assert_script_done();
}

#[test]
fn the_memory_copy_expires_by_the_host_clock() {
    let h = harness();
    sign_in_through(&h, &CountingHost::new(&h.fake), &h.idp);

    // One second before the TTL ends (counted from the warm-up fetch): still warm.
    h.fake.advance(Duration::from_secs(TTL - 1));
    let before = CountingHost::new(&h.fake);
    sign_in_through(&h, &before, &h.idp);
    assert_eq!(before.provider_reads(), Vec::<String>::new());

    // At the TTL: memory and store are both stale, so both are fetched again.
    h.fake.advance(Duration::from_secs(1));
    let after = CountingHost::new(&h.fake);
    sign_in_fetching(&h, &after, &h.idp, true);
    assert_eq!(
        after.provider_reads().len(),
        2,
        "the stale copies are looked up"
    );
    assert_eq!(h.requests_to(&h.provider.discovery_url()), 2);
    assert_eq!(h.requests_to(&h.provider.jwks_url()), 2);
    h.fake.assert_script_done();
}

#[test]
fn an_expired_memory_copy_takes_a_newer_shared_copy_without_fetching() {
    let h = harness();
    sign_in_through(&h, &CountingHost::new(&h.fake), &h.idp);
    // Another host fetches later (its copies are newer), then this one's expire.
    h.fake.advance(Duration::from_secs(600));
    let other = relying_party();
    h.fake.call(|host| {
        host.kv_delete(&format!("oidc:discovery:{ISSUER}"))
            .and_then(|()| host.kv_delete(&format!("oidc:jwks:{ISSUER}")))
            .expect("deleted")
    });
    sign_in_fetching(&h, &CountingHost::new(&h.fake), &other, true);
    h.fake.advance(Duration::from_secs(TTL - 600));
    let host = CountingHost::new(&h.fake);
    sign_in_through(&h, &host, &h.idp);
    assert_eq!(host.provider_reads().len(), 2, "read from the store");
    assert_eq!(
        h.requests_to(&h.provider.discovery_url()),
        2,
        "no third fetch"
    );
    assert_eq!(h.requests_to(&h.provider.jwks_url()), 2);
    h.fake.assert_script_done();
}

#[test]
fn the_pending_state_is_small() {
    let h = harness();
    let login = h.begin();
    // A version byte, a 32-byte seed, a 16-byte digest of the state token, the URL.
    assert_eq!(login.begun.state.len(), 1 + 32 + 16 + CALLBACK_URL.len());
    let identity = h
        .complete(
            &login,
            &h.provider.sign(Signer::RsaA, &h.claims(&login)),
            &[("iss", ISSUER)],
        )
        .expect("signs in from the compact state");
    assert_eq!(identity.subject.as_str(), testing::SUBJECT);
}

#[test]
fn a_pending_state_saved_by_an_older_version_still_completes() {
    let h = harness();
    let login = h.begin();
    let legacy = json!({
        "state": "host-state-token",
        "nonce": "legacy-nonce-0123456789",
        "pkce_verifier": "legacy-verifier-0123456789abcdefghijklmnopqrstuvw",
        "redirect_uri": CALLBACK_URL,
    });
    let mut callback = login.callback(&[("iss", ISSUER)]);
    callback.state = legacy.to_string().into_bytes().into();
    let token = h.provider.sign(
        Signer::RsaA,
        &h.provider.claims(h.now(), "legacy-nonce-0123456789"),
    );
    h.provider.expect_token(&h.fake, &token);
    h.fake
        .call(|host| h.idp.complete_login(host, &callback))
        .expect("signs in from the JSON state");
}

#[test]
fn a_truncated_pending_state_is_refused() {
    let h = harness();
    let login = h.begin();
    let mut callback = login.callback(&[("iss", ISSUER)]);
    callback.state = login.begun.state[..48].to_vec().into();
    let error = h
        .fake
        .call(|host| h.idp.complete_login(host, &callback))
        .expect_err("unreadable");
    assert!(error.message().contains("unreadable"), "{error}");
}
