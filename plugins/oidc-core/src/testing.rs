//! A scripted test provider for the OIDC plugins' unit tests and the benchmark
//! (feature `testing`): fixed test keys, a discovery document, a JWKS, token and
//! UserInfo answers scripted on the test kit's `FakeHost`, and ID tokens signed
//! however a test needs (including hostile ways), and a host that counts key-value
//! reads ([`CountingHost`]). It is never part of a shipped plugin.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use std::sync::Mutex;

use gatehouse_plugin_api::{
    BeginRequest, Begun, CallbackRequest, ErrorKind, Host, HostFfi, HostFfi_TO, HttpRequest,
    HttpResponse, Identity, IdentityProvider, InstanceConfig, LogLevel, Pair, Plugin, PluginError,
    SessionSelector,
    abi_stable::{
        std_types::{ROption, RResult, RSlice, RStr, RVec},
        type_level::downcasting::TD_Opaque,
    },
    testkit::{Expectation, FakeHost},
};
use openidconnect::{
    JsonWebKeyId, PrivateSigningKey,
    core::{
        CoreEdDsaPrivateSigningKey, CoreHmacKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
    },
};
use serde_json::{Value, json};
use url::Url;

use crate::{provider, settings::RpConfig};

pub const RSA_A_PEM: &str = include_str!("../tests/keys/rsa-a.pem");
pub const RSA_A_PUBLIC_PEM: &str = include_str!("../tests/keys/rsa-a.pub.pem");
pub const RSA_B_PEM: &str = include_str!("../tests/keys/rsa-b.pem");
pub const ED25519_PEM: &str = include_str!("../tests/keys/ed25519.pem");

/// The client every test provider knows.
pub const CLIENT_ID: &str = "gatehouse-client";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789abcdef";
/// The callback URL test sign-ins use.
pub const CALLBACK_URL: &str = "https://gatehouse.test/sso/test/callback";
/// The subject of the test user.
pub const SUBJECT: &str = "user-1";

/// How a test token is signed.
pub enum Signer<'a> {
    /// RS256 with key A (`kid` "key-a", in the default JWKS).
    RsaA,
    /// RS256 with key B (`kid` "key-b", only in the rotated JWKS).
    RsaB,
    /// RS256 with key B but claiming `kid` "key-a": a bad signature.
    RsaBAsA,
    /// EdDSA with the Ed25519 key (`kid` "key-ed", in the default JWKS).
    Ed25519,
    /// HS256 with the given key bytes (the client secret, or an attacker's choice).
    Hs256(&'a [u8]),
    /// `alg: none`, no signature.
    Unsigned,
    /// RS256 with key A but the given `kid` in the header.
    RsaAWithKid(&'a str),
    /// RS256 with key A and no `kid` in the header.
    RsaANoKid,
    /// RS256 with key A (`kid` "key-a") and these extra header fields.
    RsaAWithHeader(Value),
}

/// A provider at `issuer` whose answers a test scripts on a [`FakeHost`].
pub struct TestProvider {
    pub issuer: String,
    key_a: CoreRsaPrivateSigningKey,
    key_b: CoreRsaPrivateSigningKey,
    key_ed: CoreEdDsaPrivateSigningKey,
}

fn key(pem: &str, kid: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.into())))
        .unwrap_or_else(|error| panic!("test key {kid}: {error}"))
}

impl TestProvider {
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            key_a: key(RSA_A_PEM, "key-a"),
            key_b: key(RSA_B_PEM, "key-b"),
            key_ed: CoreEdDsaPrivateSigningKey::from_ed25519_pem(
                ED25519_PEM,
                Some(JsonWebKeyId::new("key-ed".into())),
            )
            .unwrap_or_else(|error| panic!("test Ed25519 key: {error}")),
        }
    }

    /// An endpoint of this provider: `{issuer without trailing /}{path}`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer.trim_end_matches('/'))
    }

    pub fn discovery_url(&self) -> String {
        self.endpoint("/.well-known/openid-configuration")
    }
    pub fn token_url(&self) -> String {
        self.endpoint("/token")
    }
    pub fn jwks_url(&self) -> String {
        self.endpoint("/jwks")
    }
    pub fn userinfo_url(&self) -> String {
        self.endpoint("/me")
    }

    /// A discovery document like node-oidc-provider's: RFC 9207 `iss` advertised,
    /// an end_session_endpoint, RS256, PS256, ES256, EdDSA and HS256, but no
    /// `userinfo_endpoint`, so a sign-in with the default `use_userinfo` ("auto") makes
    /// no UserInfo request a test has not scripted ([`Self::discovery_with_userinfo`]).
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint("/auth"),
            "token_endpoint": self.token_url(),
            "jwks_uri": self.jwks_url(),
            "end_session_endpoint": self.endpoint("/session/end"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA", "HS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile"],
            "authorization_response_iss_parameter_supported": true,
        })
    }

    /// [`Self::discovery`] advertising the UserInfo endpoint, as node-oidc-provider's does.
    pub fn discovery_with_userinfo(&self) -> Value {
        let mut doc = self.discovery();
        doc["userinfo_endpoint"] = json!(self.userinfo_url());
        doc
    }

    fn public_key(key: &impl PrivateSigningKey) -> Value {
        serde_json::to_value(key.as_verification_key()).unwrap_or(Value::Null)
    }

    /// The JWKS before rotation: key A and the Ed25519 key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [Self::public_key(&self.key_a), Self::public_key(&self.key_ed)] })
    }
    /// The JWKS after rotation: key A, key B and the Ed25519 key.
    pub fn rotated_jwks(&self) -> Value {
        json!({ "keys": [
            Self::public_key(&self.key_a),
            Self::public_key(&self.key_b),
            Self::public_key(&self.key_ed),
        ] })
    }

    pub fn expect_discovery(&self, fake: &FakeHost) {
        self.expect_discovery_doc(fake, &self.discovery());
    }
    pub fn expect_discovery_doc(&self, fake: &FakeHost, doc: &Value) {
        fake.expect(Expectation::new("GET", &self.discovery_url()).reply_json(200, doc));
    }
    pub fn expect_jwks(&self, fake: &FakeHost, jwks: &Value) {
        fake.expect(Expectation::new("GET", &self.jwks_url()).reply_json(200, jwks));
    }

    /// The token endpoint's answer carrying `id_token`.
    pub fn token_answer(id_token: &str) -> Value {
        json!({
            "access_token": "test-access-token",
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": id_token,
            "scope": "openid email profile",
        })
    }
    pub fn expect_token(&self, fake: &FakeHost, id_token: &str) {
        fake.expect(
            Expectation::new("POST", &self.token_url())
                .reply_json(200, &Self::token_answer(id_token)),
        );
    }
    /// Like [`expect_token`](Self::expect_token), also checking the request.
    pub fn expect_token_checked(
        &self,
        fake: &FakeHost,
        id_token: &str,
        check: impl Fn(&HttpRequest) -> Result<(), String> + Send + 'static,
    ) {
        fake.expect(
            Expectation::new("POST", &self.token_url())
                .check(check)
                .reply_json(200, &Self::token_answer(id_token)),
        );
    }
    pub fn expect_userinfo(&self, fake: &FakeHost, claims: &Value) {
        fake.expect(Expectation::new("GET", &self.userinfo_url()).reply_json(200, claims));
    }

    /// Valid claims for the test user, issued `now`, for `nonce`.
    pub fn claims(&self, now: i64, nonce: &str) -> Value {
        json!({
            "iss": self.issuer,
            "sub": SUBJECT,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "email": "ada@example.test",
            "email_verified": true,
            "name": "Ada Lovelace",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "groups": ["staff", "admins"],
        })
    }

    /// Signs `claims` as a compact JWT the way `signer` says.
    pub fn sign(&self, signer: Signer<'_>, claims: &Value) -> String {
        let (alg, kid) = match &signer {
            Signer::RsaA | Signer::RsaAWithHeader(_) => ("RS256", Some("key-a")),
            Signer::RsaANoKid => ("RS256", None),
            Signer::RsaB => ("RS256", Some("key-b")),
            Signer::RsaBAsA => ("RS256", Some("key-a")),
            Signer::Ed25519 => ("EdDSA", Some("key-ed")),
            Signer::Hs256(_) => ("HS256", None),
            Signer::Unsigned => ("none", None),
            Signer::RsaAWithKid(kid) => ("RS256", Some(*kid)),
        };
        let mut header = json!({ "alg": alg, "typ": "JWT" });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        if let Signer::RsaAWithHeader(Value::Object(extra)) = &signer {
            for (name, value) in extra {
                header[name] = value.clone();
            }
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rs256 = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
        let signature = match signer {
            Signer::RsaA
            | Signer::RsaAWithKid(_)
            | Signer::RsaANoKid
            | Signer::RsaAWithHeader(_) => self.key_a.sign(&rs256, input.as_bytes()),
            Signer::RsaB | Signer::RsaBAsA => self.key_b.sign(&rs256, input.as_bytes()),
            Signer::Ed25519 => self
                .key_ed
                .sign(&CoreJwsSigningAlgorithm::EdDsa, input.as_bytes()),
            Signer::Hs256(secret) => CoreHmacKey::new(secret.to_vec())
                .sign(&CoreJwsSigningAlgorithm::HmacSha256, input.as_bytes()),
            Signer::Unsigned => Ok(Vec::new()),
        }
        .unwrap_or_else(|error| panic!("signing a test token: {error}"));
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// A begun test sign-in: the authorization URL's parameters and the saved state.
pub struct Login {
    pub url: Url,
    pub begun: Begun,
    pub state: String,
    pub nonce: String,
}

impl Login {
    /// The first value of an authorization URL parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The callback the provider would send: `state`, `code` and the given extras.
    pub fn callback(&self, extra: &[(&str, &str)]) -> CallbackRequest {
        let mut query = vec![
            Pair::new("state", self.state.as_str()),
            Pair::new("code", "test-code"),
        ];
        query.extend(extra.iter().map(|(n, v)| Pair::new(*n, *v)));
        CallbackRequest {
            callback_url: CALLBACK_URL.into(),
            query: query.into(),
            form: Default::default(),
            state: self.begun.state.clone(),
        }
    }
}

/// Begins a sign-in on `idp` (discovery must be cached or scripted).
pub fn begin(fake: &FakeHost, idp: &impl IdentityProvider, state_token: &str) -> Login {
    let request = BeginRequest {
        callback_url: CALLBACK_URL.into(),
        state_token: state_token.into(),
        login_hint: None.into(),
    };
    let begun = fake
        .call(|host| idp.begin_login(host, &request))
        .unwrap_or_else(|error| panic!("begin_login failed: {error}"));
    let url = Url::parse(begun.step.url.as_str())
        .unwrap_or_else(|error| panic!("begin_login gave a bad URL: {error}"));
    let mut login = Login {
        url,
        begun,
        state: String::new(),
        nonce: String::new(),
    };
    login.state = login.param("state").unwrap_or_default();
    login.nonce = login.param("nonce").unwrap_or_default();
    login
}

/// A test sign-in bench: a fake host, a test provider and an IdP (any plugin wrapping
/// the core), with the provider's discovery document and JWKS already cached.
pub struct Harness<I: IdentityProvider> {
    pub fake: FakeHost,
    pub provider: TestProvider,
    pub idp: I,
}

impl<I: IdentityProvider> Harness<I> {
    /// Caches `discovery` (default: [`TestProvider::discovery`]) and the JWKS of a test
    /// provider at `issuer` the way the core does, so tests script only the exchanges
    /// they are about.
    pub fn new(idp: I, issuer: &str, discovery: Option<Value>) -> Self {
        let fake = FakeHost::new();
        let provider = TestProvider::new(issuer);
        let doc = discovery.unwrap_or_else(|| provider.discovery());
        provider.expect_discovery_doc(&fake, &doc);
        provider.expect_jwks(&fake, &provider.jwks());
        let config = RpConfig::new(issuer.to_owned(), "issuer", CLIENT_ID.to_owned());
        fake.call(|host| {
            let metadata = provider::metadata(host, &config)
                .unwrap_or_else(|error| panic!("test discovery: {error}"));
            provider::jwks(host, &config, &metadata)
                .unwrap_or_else(|error| panic!("test JWKS: {error}"));
        });
        fake.assert_script_done();
        Self {
            fake,
            provider,
            idp,
        }
    }

    pub fn now(&self) -> i64 {
        self.fake.now_unix_seconds()
    }

    pub fn begin(&self) -> Login {
        begin(&self.fake, &self.idp, "host-state-token")
    }

    /// Valid claims for this sign-in.
    pub fn claims(&self, login: &Login) -> Value {
        self.provider.claims(self.now(), &login.nonce)
    }

    /// Completes `login` with the token endpoint answering `id_token`.
    pub fn complete(
        &self,
        login: &Login,
        id_token: &str,
        extra: &[(&str, &str)],
    ) -> Result<Identity, PluginError> {
        self.provider.expect_token(&self.fake, id_token);
        self.fake
            .call(|host| self.idp.complete_login(host, &login.callback(extra)))
    }

    /// A whole sign-in whose ID token is the valid claims, edited, signed by `signer`;
    /// the callback carries the provider's `iss` as node-oidc-provider's does.
    pub fn sign_in(
        &self,
        signer: Signer<'_>,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Identity, PluginError> {
        let login = self.begin();
        let mut claims = self.claims(&login);
        edit(&mut claims);
        let token = self.provider.sign(signer, &claims);
        let issuer = self.provider.issuer.clone();
        self.complete(&login, &token, &[("iss", issuer.as_str())])
    }

    /// A whole sign-in (valid claims, RS256) in which the provider's UserInfo endpoint
    /// answers `userinfo` when given, and must not be asked when `None`; checks the
    /// script was used up.
    pub fn sign_in_with_userinfo(&self, userinfo: Option<&Value>) -> Result<Identity, PluginError> {
        let login = self.begin();
        let token = self.provider.sign(Signer::RsaA, &self.claims(&login));
        self.provider.expect_token(&self.fake, &token);
        if let Some(claims) = userinfo {
            self.provider.expect_userinfo(&self.fake, claims);
        }
        let issuer = self.provider.issuer.clone();
        let result = self.fake.call(|host| {
            self.idp
                .complete_login(host, &login.callback(&[("iss", issuer.as_str())]))
        });
        self.fake.assert_script_done();
        assert_eq!(
            self.requests_to(&self.provider.userinfo_url()),
            usize::from(userinfo.is_some()),
            "UserInfo requests"
        );
        result
    }

    /// How many requests went to `url`.
    pub fn requests_to(&self, url: &str) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.url.as_str() == url)
            .count()
    }
}

/// Asserts that `result` is a refusal of `kind` whose message mentions `words`.
#[track_caller]
pub fn refused(
    result: Result<Identity, PluginError>,
    kind: gatehouse_plugin_api::ErrorKind,
    words: &str,
) -> PluginError {
    let error = match result {
        Ok(identity) => panic!("signed in {:?} but must be refused", identity.subject),
        Err(error) => error,
    };
    assert_eq!(error.kind, kind, "{error}");
    assert!(
        error.message().contains(words),
        "the message should mention {words:?}: {}",
        error.message()
    );
    error
}

/// Asserts that plugin `P` refuses each of `cases` (settings, words its message must
/// contain) as `invalid-settings`: the check every OIDC plugin's settings tests share.
pub fn assert_settings_refused<P: Plugin>(instance_id: &str, cases: &[(Value, &str)]) {
    for (settings, words) in cases {
        let built = P::new(&InstanceConfig::new(instance_id, settings.clone()));
        let Err(error) = built else {
            panic!("accepted: {settings}");
        };
        assert_eq!(error.kind, ErrorKind::INVALID_SETTINGS, "{settings}");
        assert!(
            error.message().contains(words),
            "{settings}: {}",
            error.message()
        );
    }
}

/// A [`FakeHost`] seen through a host that records every key-value read, to show
/// which calls reach the shared store (each one costs a real host a thread hop and an
/// SQL statement).
pub struct CountingHost<'f> {
    fake: &'f FakeHost,
    reads: Mutex<Vec<String>>,
}

impl<'f> CountingHost<'f> {
    pub fn new(fake: &'f FakeHost) -> Self {
        Self {
            fake,
            reads: Mutex::new(Vec::new()),
        }
    }

    /// Runs `body` with a [`Host`] backed by the fake, counting its reads.
    pub fn call<T>(&self, body: impl FnOnce(&Host<'_>) -> T) -> T {
        let object = HostFfi_TO::from_ptr(self, TD_Opaque);
        body(&Host::new(object))
    }

    /// The keys read so far, in order.
    pub fn kv_reads(&self) -> Vec<String> {
        self.reads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The reads of the provider's discovery document or key set.
    pub fn provider_reads(&self) -> Vec<String> {
        self.kv_reads()
            .into_iter()
            .filter(|key| key.starts_with("oidc:discovery:") || key.starts_with("oidc:jwks:"))
            .collect()
    }
}

impl HostFfi for CountingHost<'_> {
    fn now_unix_millis(&self) -> i64 {
        self.fake.now_unix_millis()
    }
    fn random_bytes(&self, len: u32) -> RVec<u8> {
        self.fake.random_bytes(len)
    }
    fn http(&self, request: HttpRequest) -> RResult<HttpResponse, PluginError> {
        self.fake.http(request)
    }
    fn kv_get(&self, key: RStr<'_>) -> RResult<ROption<RVec<u8>>, PluginError> {
        self.reads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(key.as_str().to_owned());
        self.fake.kv_get(key)
    }
    fn kv_put(
        &self,
        key: RStr<'_>,
        value: RSlice<'_, u8>,
        ttl_seconds: u64,
        only_if_absent: bool,
    ) -> RResult<bool, PluginError> {
        self.fake.kv_put(key, value, ttl_seconds, only_if_absent)
    }
    fn kv_delete(&self, key: RStr<'_>) -> RResult<(), PluginError> {
        self.fake.kv_delete(key)
    }
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        self.fake.log(level, message)
    }
    fn sessions_alive(&self, sessions: SessionSelector) -> RResult<u32, PluginError> {
        self.fake.sessions_alive(sessions)
    }
}
