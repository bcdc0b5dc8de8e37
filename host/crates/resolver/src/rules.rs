//! The resolver's checks: every cross-IdP and cross-domain rule of BRIEF.md, each finding a
//! [`Diagnostic`] with its code, the key it concerns, the domain, the IdP and the fix. Key-level
//! problems (unknown keys, plugins, domains, fields) are `gatehouse-config`'s, not these.

use std::collections::HashMap;

use gatehouse_config::{
    Behaviour, Config, Diagnostic, DomainConfig, IdpConfig, LoginForm, USERNAME_ATTRIBUTE_HELP,
    codes,
};

use crate::{
    facts::Facts,
    resolution::{identity_fields, required_on_create},
};

/// Runs every rule, domain by domain in file order.
pub(crate) fn check(config: &Config, facts: &Facts) -> Vec<Diagnostic> {
    let required = required_on_create(config);
    let mut out = Vec::new();
    let mut on_domain: HashMap<&str, Vec<&IdpConfig>> = HashMap::new();
    for idp in &config.idps {
        on_domain.entry(idp.domain.as_str()).or_default().push(idp);
    }
    for idp in &config.idps {
        Rules::new(config, facts, &mut out).idp_alone(idp, &required);
    }
    for domain in &config.domains {
        let idps = on_domain
            .get(domain.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        let mut rules = Rules::new(config, facts, &mut out);
        rules.login(domain, idps);
        rules.provisioners(domain, idps, &required);
        rules.connect(domain, idps);
    }
    out
}

struct Rules<'a> {
    config: &'a Config,
    facts: &'a Facts,
    out: &'a mut Vec<Diagnostic>,
}

const CONNECT: &str = crate::provisioning::CONNECT_PROTOCOL;
/// SAML assertions carry no `email_verified`: only the admin can vouch for the addresses.
const SAML: &str = "saml";
const TRUST_EMAIL_HELP: &str =
    "if this IdP verifies every address it sends, set trust_email = true";

impl<'a> Rules<'a> {
    fn new(config: &'a Config, facts: &'a Facts, out: &'a mut Vec<Diagnostic>) -> Self {
        Self { config, facts, out }
    }

    fn push(&mut self, diagnostic: Diagnostic) {
        self.out.push(diagnostic);
    }

    fn error(&self, code: &'static str, idp: &IdpConfig, key: &str, message: String) -> Diagnostic {
        Diagnostic::error(code, message, &self.config.path, idp.key_location(key))
            .with_domain(&idp.domain)
            .with_idp(&idp.id)
    }

    fn warning(
        &self,
        code: &'static str,
        idp: &IdpConfig,
        key: &str,
        message: String,
    ) -> Diagnostic {
        Diagnostic::warning(code, message, &self.config.path, idp.key_location(key))
            .with_domain(&idp.domain)
            .with_idp(&idp.id)
    }

    fn protocol(&self, idp: &IdpConfig) -> Option<&'a str> {
        self.facts.protocol_of(&idp.plugin)
    }

    /// A Connect IdP's users are `tc_<server user id>_<server idnumber>`, found by their
    /// Connect link: `username_attribute` and `match_field` are ignored, with a warning.
    fn connect_identity(&mut self, idp: &IdpConfig) {
        for key in ["username_attribute", "match_field"] {
            if idp.key_locations.key(key).is_none() {
                continue;
            }
            let d = self
                .warning(
                    codes::IGNORED_KEY,
                    idp,
                    key,
                    format!(
                        "IdP `{}` is a Totara Connect client: its users are `tc_<server user id>_<server idnumber>`, matched by their Connect link, so `{key}` is ignored",
                        idp.id
                    ),
                )
                .with_help(format!("remove `{key}`"));
            self.push(d);
        }
    }

    /// How an IdP identifies users: by a field they cannot change themselves, and by email
    /// only when the IdP's addresses can be trusted. Connect IdPs match by Connect's own
    /// rules (see [`Rules::connect`]).
    fn identity(&mut self, idp: &IdpConfig) {
        let protocol = self.protocol(idp);
        if protocol == Some(CONNECT) {
            self.connect_identity(idp);
            return;
        }
        if idp.key_locations.key("username_attribute").is_none() {
            let d = self
                .error(
                    codes::MISSING_KEY,
                    idp,
                    "username_attribute",
                    format!(
                        "[[idp]] `{}` is missing the required key `username_attribute`",
                        idp.id
                    ),
                )
                .with_help(USERNAME_ATTRIBUTE_HELP);
            self.push(d);
        }
        let field = idp.match_field.as_str();
        if self.config.user_editable(field) {
            let d = self
                .error(
                    codes::MATCH_FIELD_EDITABLE,
                    idp,
                    "match_field",
                    format!(
                        "IdP `{}` matches users by `{field}`, which users can change on their own profile: anyone could set it to another person's value and be signed in as them",
                        idp.id
                    ),
                )
                .with_help(if self.config.fields.iter().any(|f| f.name == field) {
                    format!("set `user_editable = false` on the [[field]] `{field}`, or match by username")
                } else {
                    format!("set `user_editable_core` in `[registration]` without \"{field}\", or match by username or idnumber")
                });
            self.push(d);
        }
        let (by_email, key) = if idp.match_field.is_email() {
            (true, "match_field")
        } else {
            (idp.username_attribute == "email", "username_attribute")
        };
        if !by_email || idp.key_locations.key("trust_email").is_some() {
            return;
        }
        let d = if protocol == Some(SAML) {
            self.error(
                codes::EMAIL_UNVERIFIABLE,
                idp,
                key,
                format!(
                    "IdP `{}` identifies users by email, but SAML sends no `email_verified`: without trust_email every sign-in through it is refused",
                    idp.id
                ),
            )
        } else {
            self.warning(
                codes::EMAIL_TRUST_UNSET,
                idp,
                key,
                format!(
                    "IdP `{}` identifies users by email and does not set trust_email: sign-ins whose `email_verified` is absent or false are now refused",
                    idp.id
                ),
            )
        };
        self.push(d.with_help(TRUST_EMAIL_HELP));
    }

    /// Rules about one IdP on its own: how it identifies users, its mapping and its logout.
    fn idp_alone(&mut self, idp: &IdpConfig, required: &[String]) {
        self.identity(idp);
        let fields = &idp.provisioning.fields;
        let identity = identity_fields(idp);
        for mapping in fields {
            if identity.contains(&mapping.field.as_str())
                && mapping.attribute != idp.username_attribute
            {
                let d = Diagnostic::error(
                    codes::FIELD_MAPPED_TWICE,
                    format!(
                        "IdP `{}` maps `{}` from `{}`, but that field is already set from the username attribute `{}`",
                        idp.id, mapping.field, mapping.attribute, idp.username_attribute
                    ),
                    &self.config.path,
                    mapping.location,
                )
                .with_domain(&idp.domain)
                .with_idp(&idp.id)
                .with_help(format!(
                    "remove `{}` from provisioning.fields, or set username_attribute = \"{}\"",
                    mapping.field, mapping.attribute
                ));
                self.push(d);
            }
        }
        for (index, mapping) in fields.iter().enumerate() {
            if let Some(first) = fields[..index]
                .iter()
                .find(|m| m.attribute == mapping.attribute)
            {
                let d = Diagnostic::error(
                    codes::ATTRIBUTE_MAPPED_TWICE,
                    format!(
                        "IdP `{}` feeds the attribute `{}` into both `{}` and `{}`",
                        idp.id, mapping.attribute, first.field, mapping.field
                    ),
                    &self.config.path,
                    mapping.attribute_location,
                )
                .with_domain(&idp.domain)
                .with_idp(&idp.id)
                .with_help(format!(
                    "each IdP attribute feeds one platform field: map `{}` from another attribute or remove it",
                    mapping.field
                ));
                self.push(d);
            }
        }
        if idp.provisioning.create_users {
            let fed =
                |field: &str| identity.contains(&field) || fields.iter().any(|m| m.field == field);
            let missing: Vec<&str> = required
                .iter()
                .map(String::as_str)
                .filter(|field| !fed(field))
                .collect();
            if !missing.is_empty() {
                let why = missing
                    .iter()
                    .map(|f| {
                        if self.config.field(f).is_some() {
                            format!("`{f}` (a mandatory field)")
                        } else {
                            format!("`{f}` ([registration] require_names)")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let example = missing
                    .iter()
                    .map(|f| format!("{f} = \"<attribute>\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                let d = self
                    .error(
                        codes::MANDATORY_FIELD_UNMAPPED,
                        idp,
                        "provisioning.fields",
                        format!(
                            "IdP `{}` creates users but does not map {why}, so no user can be created",
                            idp.id
                        ),
                    )
                    .with_help(format!(
                        "add to provisioning.fields: {example}; or set create_users = false"
                    ));
                self.push(d);
            }
        }
        if idp.logout.at_idp
            && self
                .facts
                .plugins
                .get(&idp.plugin)
                .is_some_and(|p| !p.can_logout_at_idp)
        {
            let d = self
                .warning(
                    codes::LOGOUT_UNSUPPORTED,
                    idp,
                    "logout",
                    format!(
                        "IdP `{}` asks to sign out at the IdP, but plugin `{}` cannot; users are signed out of Gatehouse only",
                        idp.id, idp.plugin
                    ),
                )
                .with_help("set logout = { at_idp = false }, or use a plugin that supports logout");
            self.push(d);
        }
    }

    /// How people get in: protocols, redirects, lockout, the external URL.
    fn login(&mut self, domain: &DomainConfig, idps: &[&IdpConfig]) {
        let mut by_protocol: HashMap<&str, &IdpConfig> = HashMap::new();
        for idp in idps {
            let Some(protocol) = self.protocol(idp) else {
                continue;
            };
            if let Some(first) = by_protocol.get(protocol) {
                let d = self
                    .error(
                        codes::DUPLICATE_PROTOCOL,
                        idp,
                        "plugin",
                        format!(
                            "domain `{}` already has an IdP of protocol `{protocol}` (`{}`, line {}); one IdP per protocol per domain",
                            domain.name, first.id, first.location.line
                        ),
                    )
                    .with_help(format!(
                        "move `{}` to another domain, or remove one of the two; another domain may use {protocol} too",
                        idp.id
                    ));
                self.push(d);
            } else {
                by_protocol.insert(protocol, idp);
            }
        }

        let redirects: Vec<&&IdpConfig> = idps
            .iter()
            .filter(|i| i.behaviour == Behaviour::Redirect)
            .collect();
        if let Some((first, rest)) = redirects.split_first() {
            for idp in rest {
                let d = self
                    .error(
                        codes::MULTIPLE_REDIRECTS,
                        idp,
                        "behaviour",
                        format!(
                            "domain `{}` already redirects automatically to `{}`; a browser can only be sent to one IdP",
                            domain.name, first.id
                        ),
                    )
                    .with_help(format!(
                        "set behaviour = \"button\" on `{}` (or on `{}`)",
                        idp.id, first.id
                    ));
                self.push(d);
            }
        }
        for idp in &redirects {
            if idp.logout.at_idp {
                let d = self
                    .warning(
                        codes::REDIRECT_WITH_IDP_LOGOUT,
                        idp,
                        "logout",
                        format!(
                            "IdP `{}` redirects automatically and also signs users out at the IdP: after sign-out the next visit sends them straight back to sign in",
                            idp.id
                        ),
                    )
                    .with_help("set logout = { at_idp = false }, or behaviour = \"button\"");
                self.push(d);
            }
            if !idp.redirect_confirmed && !self.facts.proven_idps.contains(&idp.id) {
                let d = self
                    .error(
                        codes::UNTESTED_REDIRECT,
                        idp,
                        "behaviour",
                        format!(
                            "IdP `{}` would redirect everyone automatically, but it has never completed a successful sign-in: if it does not work, nobody can sign in",
                            idp.id
                        ),
                    )
                    .with_help(format!(
                        "sign in once with it (behaviour = \"button\" or \"hidden\" and /admin/test-login/{}), or set redirect_confirmed = true",
                        idp.id
                    ));
                self.push(d);
            }
        }
        if let Some(url) = &domain.force_external_sso_url {
            let shadowed: Vec<&str> = idps
                .iter()
                .filter(|i| i.behaviour != Behaviour::Hidden)
                .map(|i| i.id.as_str())
                .collect();
            if !shadowed.is_empty() {
                let d = Diagnostic::warning(
                    codes::EXTERNAL_URL_SHADOWS,
                    format!(
                        "domain `{}` sends every visitor to {url}, so its IdPs ({}) and its login form are never reached",
                        domain.name,
                        shadowed
                            .iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    &self.config.path,
                    domain.key_location("force_external_sso_url"),
                )
                .with_domain(&domain.name)
                .with_help("clear force_external_sso_url, or remove the IdPs this domain no longer uses");
                self.push(d);
            }
        } else if let Some(first) = redirects.first() {
            let buttons: Vec<&str> = idps
                .iter()
                .filter(|i| i.behaviour == Behaviour::Button)
                .map(|i| i.id.as_str())
                .collect();
            if !buttons.is_empty() {
                let d = self
                    .warning(
                        codes::REDIRECT_SHADOWS_BUTTONS,
                        first,
                        "behaviour",
                        format!(
                            "domain `{}` redirects to `{}` automatically, so the buttons of {} only appear with ?nosso=1",
                            domain.name,
                            first.id,
                            buttons
                                .iter()
                                .map(|s| format!("`{s}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .with_help("set behaviour = \"button\" to let visitors choose");
                self.push(d);
            }
        }
        let servable = |i: &&&IdpConfig| self.facts.plugins.contains_key(&i.plugin);
        let way_in = domain.force_external_sso_url.is_some()
            || domain.login_form == LoginForm::Shown
            || idps
                .iter()
                .filter(servable)
                .any(|i| matches!(i.behaviour, Behaviour::Button | Behaviour::Redirect));
        if !way_in {
            let d = Diagnostic::error(
                codes::LOCKOUT,
                format!(
                    "nobody could sign in on domain `{}`: the login form is hidden and there is no button, automatic redirect or external URL",
                    domain.name
                ),
                &self.config.path,
                domain.key_location("login_form"),
            )
            .with_domain(&domain.name)
            .with_help("set login_form = \"shown\", or give an IdP behaviour = \"button\"");
            self.push(d);
        }
    }

    /// Several IdPs writing the same users: every disagreement named.
    fn provisioners(&mut self, domain: &DomainConfig, idps: &[&IdpConfig], required: &[String]) {
        let writers: Vec<&IdpConfig> = idps
            .iter()
            .copied()
            .filter(|i| i.provisioning.provisions())
            .collect();
        let Some((first, rest)) = writers.split_first() else {
            return;
        };
        for idp in rest {
            let d = self
                .warning(
                    codes::MULTIPLE_PROVISIONERS,
                    idp,
                    "provisioning",
                    format!(
                        "domain `{}` has more than one IdP that creates or updates users (`{}` and `{}`)",
                        domain.name, first.id, idp.id
                    ),
                )
                .with_help("keep provisioning on one IdP per domain, or align their fields and locking");
            self.push(d);
        }
        for (index, later) in writers.iter().enumerate() {
            for earlier in &writers[..index] {
                self.pair(domain, earlier, later, required);
            }
        }
    }

    fn pair(&mut self, domain: &DomainConfig, a: &IdpConfig, b: &IdpConfig, required: &[String]) {
        for mapping in &b.provisioning.fields {
            let field = mapping.field.as_str();
            if a.provisioning.attribute_for(field).is_none() {
                continue;
            }
            if a.provisioning.update_existing && b.provisioning.update_existing {
                let d = Diagnostic::warning(
                    codes::UPDATE_DISAGREEMENT,
                    format!(
                        "on domain `{}`, both `{}` and `{}` update `{field}`: its value changes with whichever IdP the user signed in with last",
                        domain.name, a.id, b.id
                    ),
                    &self.config.path,
                    mapping.location,
                )
                .with_domain(&domain.name)
                .with_idp(&b.id)
                .with_help(format!(
                    "let one of them update `{field}`: remove it from one mapping, or set update_existing = false on one"
                ));
                self.push(d);
            }
            if a.provisioning.lock_fields != b.provisioning.lock_fields {
                let (locker, other) = if a.provisioning.lock_fields {
                    (a, b)
                } else {
                    (b, a)
                };
                let d = Diagnostic::warning(
                    codes::LOCK_DISAGREEMENT,
                    format!(
                        "on domain `{}`, `{field}` is locked when `{}` provided it but not when `{}` did",
                        domain.name, locker.id, other.id
                    ),
                    &self.config.path,
                    mapping.location,
                )
                .with_domain(&domain.name)
                .with_idp(&b.id)
                .with_help("give both IdPs the same lock_fields setting");
                self.push(d);
            }
        }
        // Seed 002's `myfield`: one IdP locks a mandatory field the other never fills.
        for (locker, other) in [(a, b), (b, a)] {
            if !locker.provisioning.lock_fields {
                continue;
            }
            for field in required.iter().filter(|f| self.config.field(f).is_some()) {
                let locks_it = locker.provisioning.attribute_for(field).is_some();
                let other_fills = other.provisioning.attribute_for(field).is_some()
                    || identity_fields(other).contains(&field.as_str());
                if locks_it && !other_fills {
                    let d = self
                        .error(
                            codes::LOCKED_MANDATORY_UNPROVISIONED,
                            other,
                            "provisioning.fields",
                            format!(
                                "`{}` locks the mandatory field `{field}`, which `{}` does not provide: users of `{}` cannot fill it in and cannot have it filled",
                                locker.id, other.id, other.id
                            ),
                        )
                        .with_help(format!(
                            "map `{field}` in `{}`'s provisioning.fields, turn off lock_fields on `{}`, or make `{field}` not mandatory",
                            other.id, locker.id
                        ));
                    self.push(d);
                }
            }
        }
    }

    /// Connect's rules (seeds 000 and 001).
    fn connect(&mut self, domain: &DomainConfig, idps: &[&IdpConfig]) {
        let connect: Vec<&IdpConfig> = idps
            .iter()
            .copied()
            .filter(|i| self.protocol(i) == Some(CONNECT))
            .collect();
        for idp in connect {
            if domain.guest_access {
                let d = self
                    .error(
                        codes::CONNECT_GUEST_ACCESS,
                        idp,
                        "plugin",
                        format!(
                            "Connect IdP `{}` is on domain `{}`, which allows guest access; Connect does not work with guest access",
                            idp.id, domain.name
                        ),
                    )
                    .with_help(format!(
                        "set guest_access = false on domain `{}` (line {})",
                        domain.name,
                        domain.key_location("guest_access").line
                    ));
                self.push(d);
            }
            let migrates = idp
                .settings
                .get("migrate_users")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            if !migrates {
                continue;
            }
            let map = idp
                .settings
                .get("migrate_map")
                .and_then(|v| v.as_str())
                .unwrap_or("username");
            // `uniqueid` is Connect's own id, not a profile field: never user-editable.
            let editable = self.config.user_editable(map);
            if editable {
                let d = Diagnostic::error(
                    codes::CONNECT_MAPPING_EDITABLE,
                    format!(
                        "Connect IdP `{}` takes over local accounts by `{map}`, which users can change themselves: anyone could claim another person's account",
                        idp.id
                    ),
                    &self.config.path,
                    idp.key_location("settings.migrate_map"),
                )
                .with_domain(&domain.name)
                .with_idp(&idp.id)
                .with_help("use migrate_map = \"username\" or \"idnumber\", a field with user_editable = false, or remove \"email\" from `user_editable_core` in `[registration]`");
                self.push(d);
            }
        }
    }
}
