//! Turns an IdP's answer into a decision about a platform user: sign in, create, update or
//! refuse. Pure: claims, the IdP's policy and the candidate accounts in; a [`Plan`] out. The
//! host looks the candidates up and applies the plan in one transaction; nothing here
//! touches the database.

use std::collections::BTreeMap;

use gatehouse_config::IdpConfig;

/// The protocol of Totara Connect clients, whose usernames are their own.
pub const CONNECT_PROTOCOL: &str = "connect";

/// The platform fields that live on the user row itself.
pub const CORE_FIELDS: [&str; 5] = ["username", "email", "firstname", "lastname", "idnumber"];

/// How one IdP instance provisions users: its `[idp.provisioning]` and matching settings,
/// with what user creation requires folded in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub idp_id: String,
    pub username_attribute: String,
    /// `username`, `email` or `idnumber`.
    pub match_field: String,
    pub case_insensitive: bool,
    /// The admin vouches for this IdP's email addresses (`trust_email`): an email without
    /// `email_verified = "true"` may still identify a user.
    pub trust_email: bool,
    pub create_users: bool,
    pub update_existing: bool,
    /// The IdP locks the fields it provisions (see [`crate::locks`]).
    pub lock_fields: bool,
    /// Platform field → IdP attribute, in file order.
    pub mapping: Vec<(String, String)>,
    /// Fields user creation requires.
    pub required_on_create: Vec<String>,
}

impl Policy {
    /// The policy of `idp`, whose plugin speaks `protocol`. A Connect client's users are
    /// `tc_<server user id>_<server idnumber>`, which its plugin sends as `username`:
    /// its configured `username_attribute` and `match_field` are ignored (the resolver warns).
    pub fn of(idp: &IdpConfig, protocol: &str, required_on_create: &[String]) -> Self {
        let (username_attribute, match_field) = if protocol == CONNECT_PROTOCOL {
            ("username".to_owned(), "username".to_owned())
        } else {
            (
                idp.username_attribute.clone(),
                idp.match_field.as_str().to_owned(),
            )
        };
        Self {
            idp_id: idp.id.clone(),
            username_attribute,
            match_field,
            case_insensitive: idp.match_case_insensitive,
            trust_email: idp.trust_email,
            create_users: idp.provisioning.create_users,
            update_existing: idp.provisioning.update_existing,
            lock_fields: idp.provisioning.lock_fields,
            mapping: idp
                .provisioning
                .fields
                .iter()
                .map(|m| (m.field.clone(), m.attribute.clone()))
                .collect(),
            required_on_create: required_on_create.to_vec(),
        }
    }

    /// Users are matched or created by an email address, so the IdP must vouch for it.
    pub fn identifies_by_email(&self) -> bool {
        self.match_field == "email" || self.username_attribute == "email"
    }

    /// The fields this IdP writes: the identity fields and every mapped field.
    pub fn provisioned_fields(&self) -> impl Iterator<Item = &str> {
        let identity = std::iter::once("username")
            .chain((self.match_field != "username").then_some(self.match_field.as_str()));
        identity.chain(self.mapping.iter().map(|(field, _)| field.as_str()))
    }
}

/// The attributes an IdP asserted, first value of each.
pub type Claims = BTreeMap<String, String>;

/// Where an account came from, as far as SSO may sign into it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AccountOrigin {
    /// Provisioned by this IdP instance.
    Idp(String),
    /// A local account: made by an administrator or the bootstrap, signs in with a password.
    #[default]
    Local,
}

/// An existing account, as much of it as planning needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub suspended: bool,
    /// Current value of every core and additional field that has one.
    pub values: BTreeMap<String, String>,
    pub origin: AccountOrigin,
    pub is_admin: bool,
    /// The account has a local password.
    pub has_password: bool,
    /// The IdP instances an administrator linked the account to.
    pub linked_idps: Vec<String>,
}

impl Candidate {
    pub fn value(&self, field: &str) -> Option<&str> {
        self.values.get(field).map(String::as_str)
    }

    /// Whether SSO through `idp_id` may sign into this account. An administrator's or a
    /// local password account is reachable only through an IdP that provisioned it or that
    /// an administrator linked it to: an IdP user who happens to be called `admin` must
    /// never become the administrator.
    pub fn reachable_through(&self, idp_id: &str) -> bool {
        let provisioned_here = self.origin == AccountOrigin::Idp(idp_id.to_owned());
        let linked = self.linked_idps.iter().any(|linked| linked == idp_id);
        let guarded = self.is_admin || self.has_password || self.origin == AccountOrigin::Local;
        !guarded || provisioned_here || linked
    }
}

/// The accounts the host found for the match value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lookup<'a> {
    /// Accounts of the domain's branch whose match field equals the value.
    pub in_branch: &'a [Candidate],
    /// Accounts of other branches that would match, or that hold the username a new account
    /// would take. They are never matched; they only stop a creation.
    pub outside_branch: usize,
}

/// A field to set, with the value the IdP gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldValue {
    pub field: String,
    pub value: String,
}

/// One field an update changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: String,
    /// `None` when the user had no value.
    pub old: Option<String>,
    pub new: String,
}

/// Why a sign-in cannot produce a valid user. The `Display` text is plain enough for the
/// person signing in; the admin log gets it with the IdP and claims around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    MissingUsernameAttribute {
        attribute: String,
    },
    /// The identifying value has leading or trailing whitespace or control characters: it
    /// is refused rather than trimmed, because trimming would merge distinct identities.
    MalformedIdentifier {
        attribute: String,
    },
    UnverifiedEmail,
    NoAccountAndNoCreation,
    MissingRequiredFields {
        fields: Vec<String>,
    },
    Ambiguous {
        match_field: String,
        count: usize,
    },
    OtherBranch {
        match_field: String,
    },
    Suspended,
    /// The matched account is an administrator's or a local password account that is not
    /// linked to this IdP.
    NotLinked {
        match_field: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingUsernameAttribute { attribute } => write!(
                f,
                "the identity provider did not send `{attribute}`, which identifies you here"
            ),
            Self::MalformedIdentifier { attribute } => write!(
                f,
                "the identity provider sent a `{attribute}` with spaces or control characters around it, which cannot identify you"
            ),
            Self::UnverifiedEmail => f.write_str(
                "the identity provider has not verified your email address, which identifies you here",
            ),
            Self::NoAccountAndNoCreation => f.write_str(
                "there is no account for you here, and this sign-in method does not create accounts",
            ),
            Self::MissingRequiredFields { fields } => write!(
                f,
                "your account cannot be created because the identity provider did not send: {}",
                fields.join(", ")
            ),
            Self::Ambiguous { match_field, count } => write!(
                f,
                "{count} accounts match your {match_field}; ask an administrator to resolve it"
            ),
            Self::OtherBranch { match_field } => write!(
                f,
                "an account with your {match_field} belongs to another part of the platform"
            ),
            Self::Suspended => f.write_str("your account is suspended"),
            Self::NotLinked { match_field } => write!(
                f,
                "an account with your {match_field} exists here but is not linked to this sign-in method; please contact the administrator"
            ),
        }
    }
}

/// What a refusal for an attribute the IdP did not send was missing, for the admin log
/// (the person signing in sees only the refusal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MissingAttributes {
    /// The IdP attributes that were needed and absent (or blank).
    pub attributes: Vec<String>,
    /// Required fields no attribute is mapped to.
    pub unmapped_fields: Vec<String>,
    /// The plugins.toml settings that would help, e.g. "`username_attribute`".
    pub settings: Vec<&'static str>,
}

impl Refusal {
    /// For a refusal about attributes the IdP did not send, which ones and the settings
    /// that would help; `None` for any other refusal.
    pub fn missing_attributes(&self, policy: &Policy) -> Option<MissingAttributes> {
        let mut missing = MissingAttributes::default();
        match self {
            Self::MissingUsernameAttribute { attribute } => {
                missing.attributes.push(attribute.clone());
                missing.settings.push("`username_attribute`");
            }
            Self::MissingRequiredFields { fields } => {
                for field in fields {
                    let identity = field == "username" || *field == policy.match_field;
                    let mapped = policy.mapping.iter().find(|(f, _)| f == field);
                    match (identity, mapped) {
                        (true, _) => missing.attributes.push(policy.username_attribute.clone()),
                        (false, Some((_, attribute))) => missing.attributes.push(attribute.clone()),
                        (false, None) => missing.unmapped_fields.push(field.clone()),
                    }
                }
                missing.settings.push("`[idp.provisioning] fields`");
            }
            _ => return None,
        }
        Some(missing)
    }
}

/// What to do with this sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Refuse(Refusal),
    /// Sign in an existing user unchanged.
    SignIn {
        user_id: i64,
    },
    /// Update these fields of an existing user (each recorded as provisioned by the IdP),
    /// then sign in.
    Update {
        user_id: i64,
        changes: Vec<FieldDiff>,
    },
    /// Create a user with these fields (username first), then sign in.
    Create {
        fields: Vec<FieldValue>,
    },
}

/// The value the IdP asserted for the user's identifying attribute, exactly as sent.
///
/// Never trimmed: `"alice\u{3000}"` is not `alice`. A value with surrounding whitespace or
/// any control character is not an identifier at all (see [`identifier_problem`]). A blank
/// value is no value.
pub fn match_value<'a>(policy: &Policy, claims: &'a Claims) -> Option<&'a str> {
    claims
        .get(&policy.username_attribute)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

/// Why `value` cannot identify anyone, if it cannot: surrounding (Unicode) whitespace or a
/// control character anywhere.
pub fn identifier_problem(value: &str) -> Option<&'static str> {
    if value.chars().any(char::is_control) {
        Some("contains control characters")
    } else if value.trim() != value {
        Some("has leading or trailing whitespace")
    } else {
        None
    }
}

/// The platform values the IdP's mapping gives, in mapping order.
pub fn mapped_values(policy: &Policy, claims: &Claims) -> Vec<FieldValue> {
    policy
        .mapping
        .iter()
        .filter_map(|(field, attribute)| {
            claims.get(attribute).map(|value| FieldValue {
                field: field.clone(),
                value: value.clone(),
            })
        })
        .collect()
}

/// Decides what to do with a sign-in.
pub fn plan(policy: &Policy, claims: &Claims, lookup: Lookup<'_>) -> Plan {
    let Some(value) = match_value(policy, claims) else {
        return Plan::Refuse(Refusal::MissingUsernameAttribute {
            attribute: policy.username_attribute.clone(),
        });
    };
    if identifier_problem(value).is_some() {
        return Plan::Refuse(Refusal::MalformedIdentifier {
            attribute: policy.username_attribute.clone(),
        });
    }
    // Absent is unverified (Entra sends no `email_verified`: the nOAuth shape), unless the
    // admin vouches for the IdP's addresses.
    if policy.identifies_by_email()
        && !policy.trust_email
        && !claims
            .get("email_verified")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Plan::Refuse(Refusal::UnverifiedEmail);
    }
    let mapped = mapped_values(policy, claims);
    if let [user] = lookup.in_branch
        && !user.reachable_through(&policy.idp_id)
    {
        return Plan::Refuse(Refusal::NotLinked {
            match_field: policy.match_field.clone(),
        });
    }
    match lookup.in_branch {
        [] if lookup.outside_branch > 0 => Plan::Refuse(Refusal::OtherBranch {
            match_field: policy.match_field.clone(),
        }),
        [] if !policy.create_users => Plan::Refuse(Refusal::NoAccountAndNoCreation),
        [] => create(policy, value, mapped),
        [user] if user.suspended => Plan::Refuse(Refusal::Suspended),
        [user] if policy.update_existing => {
            let changes: Vec<FieldDiff> = mapped
                .into_iter()
                .filter(|f| f.field != "username" && user.value(&f.field) != Some(&f.value))
                // A blank value never replaces a field that accounts must have.
                .filter(|f| {
                    !(f.value.trim().is_empty() && policy.required_on_create.contains(&f.field))
                })
                .map(|f| FieldDiff {
                    old: user.value(&f.field).map(str::to_owned),
                    field: f.field,
                    new: f.value,
                })
                .collect();
            if changes.is_empty() {
                Plan::SignIn { user_id: user.id }
            } else {
                Plan::Update {
                    user_id: user.id,
                    changes,
                }
            }
        }
        [user] => Plan::SignIn { user_id: user.id },
        many => Plan::Refuse(Refusal::Ambiguous {
            match_field: policy.match_field.clone(),
            count: many.len(),
        }),
    }
}

fn create(policy: &Policy, value: &str, mapped: Vec<FieldValue>) -> Plan {
    let mut fields = vec![FieldValue {
        field: "username".into(),
        value: value.to_owned(),
    }];
    if policy.match_field != "username" {
        fields.push(FieldValue {
            field: policy.match_field.clone(),
            value: value.to_owned(),
        });
    }
    for field in mapped {
        // The identity fields come from the username attribute; a mapping of the same
        // field is a `field-mapped-twice` error and never overrides them.
        if !fields.iter().any(|f| f.field == field.field) {
            fields.push(field);
        }
    }
    let missing: Vec<String> = policy
        .required_on_create
        .iter()
        .filter(|required| {
            !fields
                .iter()
                .any(|f| &f.field == *required && !f.value.trim().is_empty())
        })
        .cloned()
        .collect();
    if missing.is_empty() {
        Plan::Create { fields }
    } else {
        Plan::Refuse(Refusal::MissingRequiredFields { fields: missing })
    }
}
