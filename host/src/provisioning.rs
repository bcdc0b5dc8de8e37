//! Turns an IdP's answer into a decision about a platform user: sign in, create,
//! update or refuse. Pure: claims, policy and candidate users in; a plan out. The
//! sign-in flow applies the plan; nothing here touches the database.

use std::collections::BTreeMap;

use gatehouse_store::User;

/// The platform fields that live on the user row itself.
pub const CORE_FIELDS: [&str; 5] = ["username", "email", "firstname", "lastname", "idnumber"];

/// How one IdP instance provisions users (from its `[idp.provisioning]`).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub idp_id: String,
    pub username_attribute: String,
    /// `username`, `email` or `idnumber`.
    pub match_field: String,
    pub case_insensitive: bool,
    pub create_users: bool,
    pub update_existing: bool,
    /// Platform field → IdP attribute.
    pub mapping: Vec<(String, String)>,
    /// Fields user creation requires (names when registration requires them, and
    /// every mandatory additional field).
    pub required_on_create: Vec<String>,
}

/// The attributes an IdP asserted, first value of each.
pub type Claims = BTreeMap<String, String>;

/// A field to set, with the value the IdP gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldValue {
    pub field: String,
    pub value: String,
}

/// What to do with this sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Refuse, saying why (shown to the user plainly, logged in full).
    Refuse(String),
    /// Sign in an existing user unchanged.
    SignIn { user_id: i64 },
    /// Update these fields of an existing user, then sign in.
    Update {
        user_id: i64,
        changes: Vec<FieldValue>,
    },
    /// Create a user with these fields (username first), then sign in.
    Create { fields: Vec<FieldValue> },
}

/// The value the IdP asserted for the user's identifying attribute.
pub fn match_value<'a>(policy: &Policy, claims: &'a Claims) -> Option<&'a str> {
    claims
        .get(&policy.username_attribute)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

/// Decides what to do. `candidates` are the users of the domain's branch whose
/// `match_field` equals the match value; users of other branches must not be passed.
pub fn plan(policy: &Policy, claims: &Claims, candidates: &[User]) -> Plan {
    let Some(value) = match_value(policy, claims) else {
        return Plan::Refuse(format!(
            "the identity provider did not send `{}`, which identifies you here",
            policy.username_attribute
        ));
    };
    let mapped: Vec<FieldValue> = policy
        .mapping
        .iter()
        .filter_map(|(field, attribute)| {
            claims.get(attribute).map(|value| FieldValue {
                field: field.clone(),
                value: value.clone(),
            })
        })
        .collect();
    match candidates {
        [] if !policy.create_users => Plan::Refuse(
            "there is no account for you here, and this sign-in method does not create accounts"
                .into(),
        ),
        [] => {
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
                match fields.iter_mut().find(|f| f.field == field.field) {
                    Some(existing) => existing.value = field.value,
                    None => fields.push(field),
                }
            }
            let missing: Vec<&str> = policy
                .required_on_create
                .iter()
                .filter(|required| {
                    !fields
                        .iter()
                        .any(|f| &f.field == *required && !f.value.trim().is_empty())
                })
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Plan::Refuse(format!(
                    "your account cannot be created because the identity provider did not send: {}",
                    missing.join(", ")
                ));
            }
            Plan::Create { fields }
        }
        [user] if user.suspended => Plan::Refuse("your account is suspended".into()),
        [user] if policy.update_existing => {
            let changes: Vec<FieldValue> = mapped
                .into_iter()
                .filter(|f| {
                    f.field != "username" && current_value(user, &f.field) != Some(f.value.as_str())
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
        _ => Plan::Refuse(format!(
            "more than one account matches your {}; ask an administrator to resolve it",
            policy.match_field
        )),
    }
}

/// A user's current value of a core or additional field.
pub fn current_value<'a>(user: &'a User, field: &str) -> Option<&'a str> {
    match field {
        "username" => Some(&user.username),
        "email" => Some(&user.email),
        "firstname" => Some(&user.firstname),
        "lastname" => Some(&user.lastname),
        "idnumber" => Some(&user.idnumber),
        other => user.additional.get(other).map(String::as_str),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            idp_id: "okta".into(),
            username_attribute: "email".into(),
            match_field: "username".into(),
            create_users: true,
            update_existing: true,
            mapping: vec![
                ("firstname".into(), "given_name".into()),
                ("department".into(), "dept".into()),
            ],
            required_on_create: vec!["firstname".into(), "department".into()],
            ..Policy::default()
        }
    }

    fn claims(pairs: &[(&str, &str)]) -> Claims {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn user(id: i64) -> User {
        User {
            id,
            username: "ada@example.test".into(),
            firstname: "Ada".into(),
            ..User::default()
        }
    }

    #[test]
    fn creates_when_nobody_matches() {
        let plan = plan(
            &policy(),
            &claims(&[
                ("email", "ada@example.test"),
                ("given_name", "Ada"),
                ("dept", "R&D"),
            ]),
            &[],
        );
        let Plan::Create { fields } = plan else {
            panic!("expected create, got {plan:?}")
        };
        assert_eq!(
            fields[0],
            FieldValue {
                field: "username".into(),
                value: "ada@example.test".into()
            }
        );
        assert!(fields.contains(&FieldValue {
            field: "department".into(),
            value: "R&D".into()
        }));
    }

    #[test]
    fn refuses_creation_when_a_required_field_is_missing() {
        let plan = plan(
            &policy(),
            &claims(&[("email", "ada@example.test"), ("given_name", "Ada")]),
            &[],
        );
        assert!(
            matches!(&plan, Plan::Refuse(why) if why.contains("department")),
            "{plan:?}"
        );
    }

    #[test]
    fn refuses_without_the_username_attribute() {
        let plan = plan(&policy(), &claims(&[("given_name", "Ada")]), &[]);
        assert!(
            matches!(&plan, Plan::Refuse(why) if why.contains("`email`")),
            "{plan:?}"
        );
    }

    #[test]
    fn refuses_two_matches_rather_than_guess() {
        let plan = plan(
            &policy(),
            &claims(&[("email", "ada@example.test")]),
            &[user(1), user(2)],
        );
        assert!(
            matches!(&plan, Plan::Refuse(why) if why.contains("more than one")),
            "{plan:?}"
        );
    }

    #[test]
    fn updates_only_changed_fields_and_only_when_allowed() {
        let c = claims(&[
            ("email", "ada@example.test"),
            ("given_name", "Ada"),
            ("dept", "R&D"),
        ]);
        let plan_with_update = plan(&policy(), &c, &[user(7)]);
        assert_eq!(
            plan_with_update,
            Plan::Update {
                user_id: 7,
                changes: vec![FieldValue {
                    field: "department".into(),
                    value: "R&D".into()
                }]
            }
        );
        let no_update = Policy {
            update_existing: false,
            ..policy()
        };
        assert_eq!(
            plan(&no_update, &c, &[user(7)]),
            Plan::SignIn { user_id: 7 }
        );
    }

    #[test]
    fn refuses_without_creation_rights() {
        let no_create = Policy {
            create_users: false,
            ..policy()
        };
        let plan = plan(&no_create, &claims(&[("email", "ada@example.test")]), &[]);
        assert!(matches!(plan, Plan::Refuse(_)));
    }

    #[test]
    fn refuses_suspended_users() {
        let suspended = User {
            suspended: true,
            ..user(3)
        };
        let plan = plan(
            &policy(),
            &claims(&[("email", "ada@example.test")]),
            &[suspended],
        );
        assert!(matches!(&plan, Plan::Refuse(why) if why.contains("suspended")));
    }
}
