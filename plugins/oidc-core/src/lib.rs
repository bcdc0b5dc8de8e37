//! The OpenID Connect relying party shared by the `oidc`, `auth0` and `google`
//! plugins, built on openidconnect with every request, clock reading, random byte and
//! cache entry going through the host. It is a library, not a plugin: each plugin
//! crate supplies its settings type and a [`Profile`] and exports itself.
//!
//! The flow: [`RelyingParty::begin_login`] reads the provider's discovery document
//! (parsed once and kept in the instance, with the key-value store as the copy shared
//! between hosts: `provider`) and redirects to the authorization
//! endpoint with the host's state token as `state`, a host-random nonce, and PKCE S256;
//! [`RelyingParty::complete_login`] checks the callback (error, state, RFC 9207 `iss`),
//! exchanges the code, verifies the ID token (`verify`), marks the nonce used, merges
//! UserInfo (by default when discovery names the endpoint: [`UseUserinfo`]), and
//! flattens the claims into attributes;
//! [`RelyingParty::logout`] builds the RP-initiated logout URL.

mod claims;
pub mod client_auth;
mod error;
pub mod http;
pub mod jose;
pub mod online;
pub mod profile;
pub mod provider;
pub mod settings;
pub mod verify;

#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use gatehouse_plugin_api::{
    Attribute, BeginRequest, Begun, CallbackRequest, Host, HttpRequest, Identity, IdentityProvider,
    LoginStep, LogoutRequest, OnlineReport, PluginError, constant_time_eq,
};
use oauth2::{
    ExtraTokenFields, StandardRevocableToken, StandardTokenResponse,
    basic::{
        BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
        BasicTokenType,
    },
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, LoginHint, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenUrl,
    core::{CoreAuthenticationFlow, CoreClient},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use crate::{
    claims::{flatten, merge_userinfo},
    error::OidcError,
    profile::{Attributes, Claims, Profile, StandardProfile},
    settings::{ClientAuth, RpConfig, UseUserinfo, check_issuer, defaults, parse_settings},
    verify::VerifiedIdToken,
};
use crate::{
    client_auth::AssertionKey,
    http::HostHttp,
    provider::{Metadata, ProviderCache},
};

fn redirect_url(url: &str) -> Result<RedirectUrl, OidcError> {
    RedirectUrl::new(url.to_owned()).map_err(|error| {
        OidcError::Internal(format!("the callback URL {url:?} is not a URL: {error}"))
    })
}

/// `error` with `remedy` (how to do without UserInfo) appended to its message.
fn with_remedy(error: OidcError, remedy: &str) -> OidcError {
    if remedy.is_empty() {
        return error;
    }
    match error {
        OidcError::InvalidResponse(message) => OidcError::InvalidResponse(message + remedy),
        OidcError::BadSignature(message) => OidcError::BadSignature(message + remedy),
        other => other,
    }
}

/// The attribute names every OIDC plugin can supply (more appear by claim name).
pub const STANDARD_ATTRIBUTES: [&str; 10] = [
    "sub",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "locale",
    "picture",
    "groups",
];

/// What `begin_login` keeps in the host's pending sign-in (a database row per
/// anonymous start, so it is small: 49 bytes plus the callback URL). The nonce and
/// the PKCE verifier are derived from one random seed; the host's state token is
/// kept as a digest, enough to check the callback's `state` against it.
#[derive(Debug, PartialEq, Eq)]
struct Pending {
    seed: [u8; 32],
    state_digest: [u8; 16],
    redirect_uri: String,
}

/// The first byte of the compact encoding; an older version stored JSON (`{`).
const PENDING_VERSION: u8 = 1;

impl Pending {
    fn new(seed: [u8; 32], state: &str, redirect_uri: &str) -> Self {
        Self {
            seed,
            state_digest: Self::digest_state(state),
            redirect_uri: redirect_uri.to_owned(),
        }
    }

    fn digest_state(state: &str) -> [u8; 16] {
        let digest = Sha256::digest(state.as_bytes());
        let mut out = [0; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    /// One derived secret: base64url(SHA-256(label, seed)), 43 characters (a valid
    /// PKCE verifier). SHA-256 keeps the seed, and so the other secret, hidden from
    /// whoever sees one of them (the nonce travels through the browser).
    fn derive(&self, label: &[u8]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"gatehouse-oidc ");
        hasher.update(label);
        hasher.update(b"\0");
        hasher.update(self.seed);
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            hasher.finalize(),
        )
    }

    fn nonce(&self) -> String {
        self.derive(b"nonce")
    }

    fn pkce_verifier(&self) -> String {
        self.derive(b"pkce-verifier")
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 32 + 16 + self.redirect_uri.len());
        out.push(PENDING_VERSION);
        out.extend_from_slice(&self.seed);
        out.extend_from_slice(&self.state_digest);
        out.extend_from_slice(self.redirect_uri.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        if version != PENDING_VERSION || rest.len() < 48 {
            return None;
        }
        let (seed, rest) = rest.split_at(32);
        let (state_digest, redirect_uri) = rest.split_at(16);
        Some(Self {
            seed: seed.try_into().ok()?,
            state_digest: state_digest.try_into().ok()?,
            redirect_uri: String::from_utf8(redirect_uri.to_vec()).ok()?,
        })
    }
}

/// What an older version kept (JSON), read so sign-ins begun before an upgrade finish.
#[derive(Debug, Deserialize)]
struct LegacyPending {
    state: String,
    nonce: String,
    pkce_verifier: String,
    redirect_uri: String,
}

/// The saved state of a sign-in, whichever version wrote it.
struct Saved {
    state_digest: [u8; 16],
    nonce: String,
    pkce_verifier: String,
    redirect_uri: String,
}

impl Saved {
    fn read(bytes: &[u8]) -> Option<Self> {
        if bytes.first() == Some(&b'{') {
            let legacy: LegacyPending = serde_json::from_slice(bytes).ok()?;
            return Some(Self {
                state_digest: Pending::digest_state(&legacy.state),
                nonce: legacy.nonce,
                pkce_verifier: legacy.pkce_verifier,
                redirect_uri: legacy.redirect_uri,
            });
        }
        let pending = Pending::decode(bytes)?;
        Some(Self {
            state_digest: pending.state_digest,
            nonce: pending.nonce(),
            pkce_verifier: pending.pkce_verifier(),
            redirect_uri: pending.redirect_uri,
        })
    }

    /// Whether the callback's `state` is this sign-in's (compared as digests, in
    /// constant time).
    fn state_matches(&self, state: &str) -> bool {
        constant_time_eq(&Pending::digest_state(state), &self.state_digest)
    }
}

/// The token endpoint's answer with the ID token kept as received: openidconnect's
/// typed ID token cannot hold an `iss` that is not a URL (Google's `accounts.google.com`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawIdToken {
    #[serde(default)]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for RawIdToken {}

type TokenAnswer = StandardTokenResponse<RawIdToken, BasicTokenType>;

type TokenClient = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

type RpClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// One configured relying party: validated settings and the provider's profile.
pub struct RelyingParty<P: Profile> {
    config: RpConfig,
    profile: P,
    /// This IdP's parsed discovery document and keys (each IdP is its own instance).
    cache: ProviderCache,
}

impl<P: Profile> std::fmt::Debug for RelyingParty<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<P: Profile> RelyingParty<P> {
    /// Validates `config` (refusing it with an `invalid-settings` error naming the
    /// setting) and pairs it with the profile.
    pub fn new(config: RpConfig, profile: P) -> Result<Self, PluginError> {
        Ok(Self {
            config: config.validate()?,
            profile,
            cache: ProviderCache::default(),
        })
    }

    /// Verifies an ID token for the sign-in with `nonce`, with this instance's cached
    /// provider data (what `complete_login` does after the code exchange).
    pub fn verify_id_token(
        &self,
        host: &Host<'_>,
        raw: &str,
        nonce: &str,
    ) -> Result<VerifiedIdToken, OidcError> {
        let metadata = self.cache.metadata(host, &self.config)?;
        verify::verify_id_token(
            host,
            &self.config,
            &self.profile,
            &self.cache,
            &metadata,
            raw,
            nonce,
        )
    }

    pub fn config(&self) -> &RpConfig {
        &self.config
    }

    /// The client for the authorization request.
    fn client(&self, metadata: &Metadata, redirect_uri: &str) -> Result<RpClient, OidcError> {
        Ok(CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            None,
        )
        .set_redirect_uri(redirect_url(redirect_uri)?))
    }

    /// The client for the token request, authenticating as `client_auth` says.
    fn token_client(
        &self,
        token_url: TokenUrl,
        redirect_uri: &str,
    ) -> Result<TokenClient, OidcError> {
        let auth_type = match self.config.client_auth {
            ClientAuth::ClientSecretBasic => AuthType::BasicAuth,
            ClientAuth::ClientSecretPost | ClientAuth::PrivateKeyJwt => AuthType::RequestBody,
        };
        let mut client = oauth2::Client::new(ClientId::new(self.config.client_id.clone()))
            .set_token_uri(token_url)
            .set_redirect_uri(redirect_url(redirect_uri)?)
            .set_auth_type(auth_type);
        if self.config.client_auth != ClientAuth::PrivateKeyJwt
            && let Some(secret) = &self.config.client_secret
        {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        Ok(client)
    }

    fn begin(&self, host: &Host<'_>, request: &BeginRequest) -> Result<Begun, OidcError> {
        let metadata = self.cache.metadata(host, &self.config)?;
        let client = self.client(&metadata, request.callback_url.as_str())?;
        let mut seed = [0; 32];
        let random = host.random_bytes(32);
        if random.len() != seed.len() {
            return Err(OidcError::Internal(
                "the host gave too few random bytes".into(),
            ));
        }
        seed.copy_from_slice(&random);
        let pending = Pending::new(
            seed,
            request.state_token.as_str(),
            request.callback_url.as_str(),
        );
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            pending.pkce_verifier(),
        ));
        let state = CsrfToken::new(request.state_token.to_string());
        let nonce = Nonce::new(pending.nonce());
        let mut authorization = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || state,
                move || nonce,
            )
            .set_pkce_challenge(challenge);
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            authorization = authorization.add_scope(Scope::new(scope.clone()));
        }
        for (name, value) in self.profile.authorization_params() {
            authorization = authorization.add_extra_param(name, value);
        }
        for (name, value) in &self.config.extra_params {
            authorization = authorization.add_extra_param(name.clone(), value.clone());
        }
        if let Some(prompt) = &self.config.prompt {
            authorization = authorization.add_extra_param("prompt", prompt.clone());
        }
        if let Some(hint) = request.login_hint.as_ref().into_option() {
            authorization = authorization.set_login_hint(LoginHint::new(hint.to_string()));
        }
        let (url, _, _) = authorization.url();
        Ok(Begun {
            step: LoginStep::redirect(url.to_string()),
            state: pending.encode().into(),
        })
    }

    fn complete(&self, host: &Host<'_>, request: &CallbackRequest) -> Result<Identity, OidcError> {
        if let Some(error) = request.param("error") {
            let description = request
                .param("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            return Err(OidcError::Denied(format!(
                "the provider refused the sign-in: {error}{description}"
            )));
        }
        let pending = Saved::read(&request.state).ok_or_else(|| {
            OidcError::invalid("the saved state of this sign-in is unreadable; start again")
        })?;
        match request.param("state") {
            Some(state) if pending.state_matches(state) => {}
            Some(_) => {
                return Err(OidcError::invalid(
                    "the callback's `state` does not belong to this sign-in",
                ));
            }
            None => return Err(OidcError::invalid("the callback has no `state` parameter")),
        }
        let metadata = self.cache.metadata(host, &self.config)?;
        self.check_callback_issuer(&metadata, request.param("iss"))?;
        let code = request
            .param("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OidcError::invalid("the callback has no `code` parameter"))?;

        let tokens = self.exchange(host, &metadata, &pending, code)?;
        let id_token = tokens.extra_fields().id_token.as_deref().ok_or_else(|| {
            OidcError::invalid(
                "the token endpoint answered without an ID token (is `openid` among the scopes?)",
            )
        })?;
        let verified = verify::verify_id_token(
            host,
            &self.config,
            &self.profile,
            &self.cache,
            &metadata,
            id_token,
            &pending.nonce,
        )?;
        self.mark_nonce_used(host, &pending.nonce)?;

        let mut claims = verified.claims;
        let advertised = metadata.userinfo_endpoint().is_some();
        if self.config.use_userinfo.wanted(advertised) {
            let userinfo = self.userinfo(
                host,
                &metadata,
                tokens.access_token().secret(),
                &verified.subject,
            )?;
            merge_userinfo(&mut claims, userinfo);
        }
        let mut attributes = flatten(&claims);
        self.profile.adjust_attributes(&mut attributes);
        let mut identity = Identity::new(verified.subject.as_str());
        identity.attributes = attributes
            .into_iter()
            .map(|(name, value)| Attribute {
                name: name.into(),
                values: vec![value.into()].into(),
            })
            .collect();
        identity.logout_state = verified.raw.into_bytes().into();
        Ok(identity)
    }

    /// RFC 9207: a callback `iss` must name this provider; it is required when the
    /// provider advertises it.
    fn check_callback_issuer(
        &self,
        metadata: &Metadata,
        iss: Option<&str>,
    ) -> Result<(), OidcError> {
        let advertised = metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            == Some(true);
        match iss {
            Some(iss) if self.profile.accepts_issuer(&self.config, iss) => Ok(()),
            Some(iss) => Err(OidcError::invalid(format!(
                "the callback's `iss` is `{iss}`, not this provider's issuer `{}`: the answer may \
                 come from another provider (mix-up attack)",
                self.config.issuer
            ))),
            None if advertised => Err(OidcError::invalid(
                "the callback has no `iss` parameter although the provider advertises \
                 authorization_response_iss_parameter_supported (RFC 9207)",
            )),
            None => Ok(()),
        }
    }

    fn exchange(
        &self,
        host: &Host<'_>,
        metadata: &Metadata,
        pending: &Saved,
        code: &str,
    ) -> Result<TokenAnswer, OidcError> {
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or_else(|| OidcError::invalid("the provider has no token_endpoint"))?;
        let token_endpoint = token_url.as_str().to_owned();
        let client = self.token_client(token_url, &pending.redirect_uri)?;
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
        if self.config.client_auth == ClientAuth::PrivateKeyJwt {
            let pem = self.config.private_key.as_ref().ok_or_else(|| {
                OidcError::Internal("private_key_jwt without a private key".into())
            })?;
            let key = AssertionKey::from_pem(pem.expose(), None).map_err(OidcError::Internal)?;
            let assertion = key.assertion(
                host,
                &self.config.client_id,
                &token_endpoint,
                self.config.private_key_id.as_deref(),
            )?;
            request = request
                .add_extra_param(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .add_extra_param("client_assertion", assertion);
        }
        request
            .request(&HostHttp::new(host))
            .map_err(|error| match error {
                RequestTokenError::ServerResponse(response) => {
                    let description = response
                        .error_description()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    OidcError::Denied(format!(
                        "the token endpoint refused the code: {}{description}",
                        response.error()
                    ))
                }
                RequestTokenError::Request(host_error) => OidcError::Host(host_error),
                RequestTokenError::Parse(error, _) => OidcError::invalid(format!(
                    "the token endpoint's answer could not be read: {error}"
                )),
                RequestTokenError::Other(message) => OidcError::invalid(format!(
                    "the token endpoint's answer was refused: {message}"
                )),
            })
    }

    /// Records the nonce as used; a second sign-in with the same nonce is a replay.
    fn mark_nonce_used(&self, host: &Host<'_>, nonce: &str) -> Result<(), OidcError> {
        let digest = Sha256::digest(nonce.as_bytes());
        let key = format!(
            "oidc:nonce:{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, digest)
        );
        // Long enough to outlive every token that could carry this nonce.
        let ttl = self.config.max_token_age_seconds + 2 * self.config.clock_skew_seconds;
        if host.kv_put_if_absent(&key, b"1", Some(Duration::from_secs(ttl.max(1))))? {
            Ok(())
        } else {
            Err(OidcError::invalid(
                "this sign-in's nonce was already used: the ID token is being replayed",
            ))
        }
    }

    /// The UserInfo claims, from the host's HTTP (so its time limit, egress rules and
    /// response cap apply), about the ID token's `sub` and no one else. A plain JSON
    /// answer is read as it is; a signed one (`application/jwt`) only once its signature,
    /// `iss` and `aud` verify (`verify`); an encrypted one is refused.
    fn userinfo(
        &self,
        host: &Host<'_>,
        metadata: &Metadata,
        access_token: &str,
        subject: &str,
    ) -> Result<Map<String, Value>, OidcError> {
        // With "auto", every UserInfo refusal also says how to do without it.
        let remedy = match self.config.use_userinfo {
            UseUserinfo::Auto => {
                " (UserInfo is used because the provider advertises it and `use_userinfo` is \"auto\"; \
                 set `use_userinfo = false` to sign in with the ID token's claims only)"
            }
            _ => "",
        };
        let url = metadata.userinfo_endpoint().ok_or_else(|| {
            OidcError::invalid(
                "use_userinfo = true, but the provider's discovery document has no userinfo_endpoint: \
                 set `use_userinfo = \"auto\"` or `false`",
            )
        })?;
        let response = host.http(
            HttpRequest::get(url.as_str())
                .with_header("accept", "application/json, application/jwt")
                .with_header("authorization", format!("Bearer {access_token}")),
        )?;
        if !response.is_success() {
            let message = format!(
                "the UserInfo endpoint answered HTTP {}{remedy}",
                response.status
            );
            return Err(if response.status >= 500 {
                OidcError::Unavailable(message)
            } else {
                OidcError::invalid(message)
            });
        }
        let content_type = response
            .header("content-type")
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let claims: Map<String, Value> = if content_type.starts_with("application/jwt") {
            // Signed (OpenID Connect Core §5.3.2): verified like an ID token, never read
            // unchecked; an encrypted one is refused by `verify` as not a signed JWT.
            let raw = std::str::from_utf8(&response.body).map_err(|_| {
                OidcError::invalid(format!("the signed UserInfo answer is not text{remedy}"))
            })?;
            verify::verify_signed_userinfo(
                host,
                &self.config,
                &self.profile,
                &self.cache,
                metadata,
                raw.trim(),
            )
            .map_err(|error| with_remedy(error, remedy))?
        } else if content_type.is_empty() || content_type.starts_with("application/json") {
            serde_json::from_slice(&response.body).map_err(|error| {
                OidcError::invalid(format!(
                    "the UserInfo answer is not a JSON object: {error}{remedy}"
                ))
            })?
        } else {
            return Err(OidcError::invalid(format!(
                "the UserInfo endpoint answered `{content_type}`; only JSON or a signed JWT \
                 is read{remedy}"
            )));
        };
        // OpenID Connect Core §5.3.2: a `sub` other than the ID token's means the answer
        // is about someone else (a swapped or substituted token); nothing of it is used.
        match claims.get("sub") {
            Some(Value::String(sub)) if sub == subject => Ok(claims),
            Some(Value::String(sub)) => Err(OidcError::invalid(format!(
                "the UserInfo answer is about `{sub}`, but the ID token is about `{subject}`"
            ))),
            _ => Err(OidcError::invalid("the UserInfo answer has no `sub`")),
        }
    }

    fn logout_url(
        &self,
        host: &Host<'_>,
        request: &LogoutRequest,
    ) -> Result<Option<String>, OidcError> {
        let metadata = self.cache.metadata(host, &self.config)?;
        let Some(end_session) = &metadata.additional_metadata().end_session_endpoint else {
            return Ok(self
                .profile
                .fallback_logout_url(&self.config, request.return_url.as_str()));
        };
        // Checked as https (or loopback) when the discovery document was read.
        let mut url = url::Url::parse(end_session).map_err(|error| {
            OidcError::invalid(format!("the end_session_endpoint is not a URL: {error}"))
        })?;
        {
            let mut query = url.query_pairs_mut();
            // The raw ID token this session signed in with (absent for older sessions).
            if let Ok(id_token) = std::str::from_utf8(&request.logout_state)
                && !id_token.is_empty()
            {
                query.append_pair("id_token_hint", id_token);
            }
            if !request.return_url.is_empty() {
                query.append_pair("post_logout_redirect_uri", request.return_url.as_str());
            }
            query.append_pair("client_id", &self.config.client_id);
        }
        Ok(Some(url.to_string()))
    }
}

/// The relying party is an identity provider; each plugin wraps one and forwards the
/// calls it offers (Google does not offer logout).
impl<P: Profile> IdentityProvider for RelyingParty<P> {
    /// Redirects to the provider's authorization endpoint (code flow, PKCE S256, a
    /// fresh nonce, `state` = the host's state token).
    fn begin_login(&self, host: &Host<'_>, request: &BeginRequest) -> Result<Begun, PluginError> {
        Ok(self.begin(host, request)?)
    }

    /// Checks the callback, exchanges the code and verifies what comes back.
    fn complete_login(
        &self,
        host: &Host<'_>,
        request: &CallbackRequest,
    ) -> Result<Identity, PluginError> {
        Ok(self.complete(host, request)?)
    }

    /// RP-initiated logout: the provider's end_session_endpoint with `id_token_hint`,
    /// `post_logout_redirect_uri` and `client_id`, the profile's fallback URL, or `None`.
    fn logout(
        &self,
        host: &Host<'_>,
        request: &LogoutRequest,
    ) -> Result<Option<LoginStep>, PluginError> {
        Ok(self.logout_url(host, request)?.map(LoginStep::redirect))
    }

    /// (API 1.3) Discovery and the key set fetched fresh and checked (`online`).
    fn check_online(&self, host: &Host<'_>) -> Result<OnlineReport, PluginError> {
        Ok(online::check(host, &self.config))
    }
}

#[doc(hidden)]
pub use gatehouse_plugin_api as plugin_api;

/// Implements `IdentityProvider` for a plugin's newtype over [`RelyingParty`] by delegating
/// each call. The newtype exists because the type a plugin exports must be its own; this
/// keeps the three plugins from repeating the delegation. `(Type)` delegates sign-in and the
/// online check (logout stays unsupported); `(Type, logout)` delegates logout at the IdP too.
#[macro_export]
macro_rules! delegate_to_relying_party {
    ($plugin:ty) => {
        $crate::delegate_to_relying_party!(@impl $plugin; );
    };
    ($plugin:ty, logout) => {
        $crate::delegate_to_relying_party!(@impl $plugin;
            fn logout(
                &self,
                host: &$crate::plugin_api::Host<'_>,
                request: &$crate::plugin_api::LogoutRequest,
            ) -> Result<Option<$crate::plugin_api::LoginStep>, $crate::plugin_api::PluginError>
            {
                $crate::plugin_api::IdentityProvider::logout(&self.0, host, request)
            }
        );
    };
    (@impl $plugin:ty; $($logout:tt)*) => {
        impl $crate::plugin_api::IdentityProvider for $plugin {
            fn begin_login(
                &self,
                host: &$crate::plugin_api::Host<'_>,
                request: &$crate::plugin_api::BeginRequest,
            ) -> Result<$crate::plugin_api::Begun, $crate::plugin_api::PluginError> {
                $crate::plugin_api::IdentityProvider::begin_login(&self.0, host, request)
            }
            fn complete_login(
                &self,
                host: &$crate::plugin_api::Host<'_>,
                request: &$crate::plugin_api::CallbackRequest,
            ) -> Result<$crate::plugin_api::Identity, $crate::plugin_api::PluginError> {
                $crate::plugin_api::IdentityProvider::complete_login(&self.0, host, request)
            }
            fn check_online(
                &self,
                host: &$crate::plugin_api::Host<'_>,
            ) -> Result<$crate::plugin_api::OnlineReport, $crate::plugin_api::PluginError> {
                $crate::plugin_api::IdentityProvider::check_online(&self.0, host)
            }
            $($logout)*
        }
    };
}
