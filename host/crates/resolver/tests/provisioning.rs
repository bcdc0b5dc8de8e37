//! Provisioning plans (`provisioning::plan`: create, match, update, every refusal) and how
//! their outcome combines with locks (`locks::FieldLock::of`, `locks::may_edit`): a field an
//! IdP provisioned is locked by that IdP's policy, and only while its value is the IdP's.

use std::collections::BTreeMap;
use std::path::Path;

use gatehouse_resolver::{
    Facts,
    locks::{EditRefusal, Editor, FieldKind, FieldLock, may_edit},
    provisioning::{
        AccountOrigin, Candidate, Claims, FieldDiff, FieldValue, Lookup, Plan, Policy, Refusal,
        plan,
    },
    resolve,
};

/// An OIDC-like IdP that identifies users by `email` (matched against `username`), creates
/// and updates users, maps names and the additional field `department`, and requires
/// names and `department` on creation.
fn policy() -> Policy {
    Policy {
        idp_id: "okta".into(),
        username_attribute: "email".into(),
        match_field: "username".into(),
        case_insensitive: false,
        trust_email: false,
        create_users: true,
        update_existing: true,
        lock_fields: true,
        mapping: vec![
            ("firstname".into(), "given_name".into()),
            ("lastname".into(), "family_name".into()),
            ("department".into(), "dept".into()),
        ],
        required_on_create: vec!["firstname".into(), "lastname".into(), "department".into()],
    }
}

fn claims(pairs: &[(&str, &str)]) -> Claims {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ada() -> Claims {
    claims(&[
        ("email", "ada@example.test"),
        ("email_verified", "true"),
        ("given_name", "Ada"),
        ("family_name", "Lovelace"),
        ("dept", "Engines"),
    ])
}

/// An account `okta` provisioned.
fn user(id: i64, values: &[(&str, &str)]) -> Candidate {
    Candidate {
        id,
        values: values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        origin: AccountOrigin::Idp("okta".into()),
        ..Candidate::default()
    }
}

fn value(field: &str, value: &str) -> FieldValue {
    FieldValue {
        field: field.into(),
        value: value.into(),
    }
}

const NOBODY: Lookup<'static> = Lookup {
    in_branch: &[],
    outside_branch: 0,
};

#[test]
fn a_new_user_is_created_with_the_username_first_and_every_mapped_field() {
    assert_eq!(
        plan(&policy(), &ada(), NOBODY),
        Plan::Create {
            fields: vec![
                value("username", "ada@example.test"),
                value("firstname", "Ada"),
                value("lastname", "Lovelace"),
                value("department", "Engines"),
            ]
        }
    );
}

#[test]
fn matching_by_email_fills_the_email_field_from_the_username_attribute_too() {
    let policy = Policy {
        username_attribute: "mail".into(),
        match_field: "email".into(),
        mapping: vec![
            ("firstname".into(), "given_name".into()),
            ("lastname".into(), "family_name".into()),
            ("department".into(), "dept".into()),
            // A field-mapped-twice mistake: never overrides the identity field.
            ("email".into(), "other_mail".into()),
        ],
        ..policy()
    };
    let mut claims = ada();
    claims.insert("mail".into(), "ada@example.test".into());
    claims.insert("other_mail".into(), "someone-else@example.test".into());
    let Plan::Create { fields } = plan(&policy, &claims, NOBODY) else {
        panic!("expected a creation");
    };
    assert_eq!(fields[0], value("username", "ada@example.test"));
    assert_eq!(fields[1], value("email", "ada@example.test"));
    assert_eq!(fields.iter().filter(|f| f.field == "email").count(), 1);
}

#[test]
fn one_match_signs_in_that_user() {
    let existing = [user(
        7,
        &[
            ("username", "ada@example.test"),
            ("firstname", "Ada"),
            ("lastname", "Lovelace"),
            ("department", "Engines"),
        ],
    )];
    let lookup = Lookup {
        in_branch: &existing,
        outside_branch: 0,
    };
    // Nothing differs: a plain sign-in even though updates are on.
    assert_eq!(plan(&policy(), &ada(), lookup), Plan::SignIn { user_id: 7 });
}

#[test]
fn two_matches_are_refused_as_ambiguous_never_guessed() {
    let existing = [user(7, &[]), user(8, &[])];
    let lookup = Lookup {
        in_branch: &existing,
        outside_branch: 0,
    };
    let refused = plan(&policy(), &ada(), lookup);
    assert_eq!(
        refused,
        Plan::Refuse(Refusal::Ambiguous {
            match_field: "username".into(),
            count: 2
        })
    );
    let Plan::Refuse(why) = refused else {
        unreachable!()
    };
    assert!(why.to_string().contains("2 accounts"), "{why}");
}

#[test]
fn an_account_in_another_branch_is_never_matched_and_never_duplicated() {
    let lookup = Lookup {
        in_branch: &[],
        outside_branch: 1,
    };
    // Creation is on, yet no account is created beside the other branch's one.
    let refused = plan(&policy(), &ada(), lookup);
    assert_eq!(
        refused,
        Plan::Refuse(Refusal::OtherBranch {
            match_field: "username".into()
        })
    );
    assert!(!matches!(refused, Plan::Create { .. }));
    // And with creation off, the same reason (not "no account").
    let no_create = Policy {
        create_users: false,
        ..policy()
    };
    assert!(matches!(
        plan(&no_create, &ada(), lookup),
        Plan::Refuse(Refusal::OtherBranch { .. })
    ));
}

#[test]
fn a_missing_or_blank_username_attribute_is_refused() {
    let mut claims = ada();
    claims.remove("email");
    let expected = Plan::Refuse(Refusal::MissingUsernameAttribute {
        attribute: "email".into(),
    });
    assert_eq!(plan(&policy(), &claims, NOBODY), expected);
    claims.insert("email".into(), "   ".into());
    assert_eq!(plan(&policy(), &claims, NOBODY), expected);
    // Even an existing account cannot be found without it.
    let existing = [user(7, &[])];
    let lookup = Lookup {
        in_branch: &existing,
        outside_branch: 0,
    };
    assert_eq!(plan(&policy(), &claims, lookup), expected);
}

#[test]
fn a_missing_attribute_refusal_names_the_attributes_and_the_settings_for_the_admin_log() {
    let mut policy = policy();
    let missing = Refusal::MissingUsernameAttribute {
        attribute: "email".into(),
    }
    .missing_attributes(&policy)
    .expect("about an attribute");
    assert_eq!(missing.attributes, ["email"]);
    assert_eq!(missing.settings, ["`username_attribute`"]);

    // A mapped field names its attribute; a required field nothing is mapped to is named
    // as a field.
    policy.mapping.retain(|(field, _)| field != "department");
    let mut claims = ada();
    claims.remove("given_name");
    let Plan::Refuse(refusal) = plan(&policy, &claims, NOBODY) else {
        panic!("refused");
    };
    let missing = refusal
        .missing_attributes(&policy)
        .expect("about attributes");
    assert_eq!(missing.attributes, ["given_name"]);
    assert_eq!(missing.unmapped_fields, ["department"]);
    assert_eq!(missing.settings, ["`[idp.provisioning] fields`"]);

    assert_eq!(Refusal::Suspended.missing_attributes(&policy), None);
    assert_eq!(Refusal::UnverifiedEmail.missing_attributes(&policy), None);
}

#[test]
fn a_missing_mandatory_field_refuses_creation_and_names_the_field() {
    let mut claims = ada();
    claims.remove("dept");
    let refused = plan(&policy(), &claims, NOBODY);
    assert_eq!(
        refused,
        Plan::Refuse(Refusal::MissingRequiredFields {
            fields: vec!["department".into()]
        })
    );
    let Plan::Refuse(why) = refused else {
        unreachable!()
    };
    assert!(why.to_string().contains("department"), "{why}");

    // A blank value is as good as none; every missing field is named.
    claims.insert("given_name".into(), " ".into());
    assert_eq!(
        plan(&policy(), &claims, NOBODY),
        Plan::Refuse(Refusal::MissingRequiredFields {
            fields: vec!["firstname".into(), "department".into()]
        })
    );
    // An existing user signs in without them: creation rules only apply to creation.
    let existing = [user(7, &[("firstname", "Ada")])];
    let lookup = Lookup {
        in_branch: &existing,
        outside_branch: 0,
    };
    assert!(matches!(
        plan(&policy(), &claims, lookup),
        Plan::Update { user_id: 7, .. } | Plan::SignIn { user_id: 7 }
    ));
}

#[test]
fn an_update_lists_each_changed_field_with_its_old_and_new_value() {
    let existing = [user(
        7,
        &[
            ("username", "ada@example.test"),
            ("firstname", "Augusta"),
            ("lastname", "Lovelace"),
        ],
    )];
    let lookup = Lookup {
        in_branch: &existing,
        outside_branch: 0,
    };
    assert_eq!(
        plan(&policy(), &ada(), lookup),
        Plan::Update {
            user_id: 7,
            changes: vec![
                FieldDiff {
                    field: "firstname".into(),
                    old: Some("Augusta".into()),
                    new: "Ada".into()
                },
                FieldDiff {
                    field: "department".into(),
                    old: None,
                    new: "Engines".into()
                },
            ]
        }
    );
    // Without update_existing the same sign-in changes nothing.
    let no_update = Policy {
        update_existing: false,
        ..policy()
    };
    assert_eq!(
        plan(&no_update, &ada(), lookup),
        Plan::SignIn { user_id: 7 }
    );
}

#[test]
fn an_unverified_email_is_refused_only_when_the_email_identifies_the_user() {
    let mut claims = ada();
    claims.insert("email_verified".into(), "false".into());
    assert_eq!(
        plan(&policy(), &claims, NOBODY),
        Plan::Refuse(Refusal::UnverifiedEmail),
        "username_attribute = email"
    );
    claims.insert("email_verified".into(), "FALSE".into());
    assert_eq!(
        plan(&policy(), &claims, NOBODY),
        Plan::Refuse(Refusal::UnverifiedEmail)
    );
    // Matched against the email field, from another attribute.
    let by_email_field = Policy {
        username_attribute: "mail".into(),
        match_field: "email".into(),
        ..policy()
    };
    let mut mail_claims = claims.clone();
    mail_claims.insert("mail".into(), "ada@example.test".into());
    assert_eq!(
        plan(&by_email_field, &mail_claims, NOBODY),
        Plan::Refuse(Refusal::UnverifiedEmail)
    );
    // Identified by username from `sub`: the unverified email is just a mapped value.
    let by_sub = Policy {
        username_attribute: "sub".into(),
        mapping: vec![
            ("firstname".into(), "given_name".into()),
            ("lastname".into(), "family_name".into()),
            ("department".into(), "dept".into()),
            ("email".into(), "email".into()),
        ],
        ..policy()
    };
    claims.insert("sub".into(), "00u1ada".into());
    let Plan::Create { fields } = plan(&by_sub, &claims, NOBODY) else {
        panic!("expected a creation");
    };
    assert_eq!(fields[0], value("username", "00u1ada"));
    assert!(fields.contains(&value("email", "ada@example.test")));
    // A verified email identifies fine.
    claims.insert("email_verified".into(), "true".into());
    assert!(matches!(
        plan(&policy(), &claims, NOBODY),
        Plan::Create { .. }
    ));
}

/// Regression (nOAuth): a missing `email_verified` counted as verified.
#[test]
fn an_absent_email_verified_is_unverified_unless_the_admin_trusts_the_idp() {
    let mut claims = ada();
    claims.remove("email_verified");
    assert_eq!(
        plan(&policy(), &claims, NOBODY),
        Plan::Refuse(Refusal::UnverifiedEmail)
    );
    let trusting = Policy {
        trust_email: true,
        ..policy()
    };
    assert!(matches!(
        plan(&trusting, &claims, NOBODY),
        Plan::Create { .. }
    ));
    claims.insert("email_verified".into(), "false".into());
    assert!(
        matches!(plan(&trusting, &claims, NOBODY), Plan::Create { .. }),
        "trust_email vouches for every address the IdP sends"
    );
}

/// Regression (trimming merged identities: `"alice\u{3000}"` signed into `alice`).
#[test]
fn identifiers_with_surrounding_whitespace_or_control_characters_are_refused() {
    let existing = [user(7, &[("username", "ada@example.test")])];
    let lookup = Lookup {
        in_branch: &existing,
        outside_branch: 0,
    };
    for hostile in [
        "ada@example.test\u{3000}",
        " ada@example.test",
        "ada@example.test\t",
        "ada@example.test\u{a0}",
        "ada@exam\u{0}ple.test",
        "ada@example.test\u{200b}\n",
    ] {
        let mut claims = ada();
        claims.insert("email".into(), hostile.into());
        assert_eq!(
            plan(&policy(), &claims, lookup),
            Plan::Refuse(Refusal::MalformedIdentifier {
                attribute: "email".into()
            }),
            "{hostile:?}"
        );
    }
    // Inner spaces are part of an identifier like any other character.
    let mut claims = ada();
    claims.insert("email".into(), "ada lovelace".into());
    assert!(matches!(
        plan(&policy(), &claims, NOBODY),
        Plan::Create { .. }
    ));
}

/// Regression (an IdP user called `admin` signed in as the built-in administrator).
#[test]
fn sso_never_signs_into_an_admin_or_local_account_it_is_not_linked_to() {
    let refused = Plan::Refuse(Refusal::NotLinked {
        match_field: "username".into(),
    });
    let admin = Candidate {
        id: 1,
        is_admin: true,
        has_password: true,
        values: BTreeMap::from([("username".into(), "ada@example.test".into())]),
        ..Candidate::default()
    };
    let local = Candidate {
        id: 2,
        has_password: true,
        ..admin.clone()
    };
    let made_by_other_idp_with_password = Candidate {
        id: 3,
        origin: AccountOrigin::Idp("google".into()),
        is_admin: false,
        ..admin.clone()
    };
    for account in [&admin, &local, &made_by_other_idp_with_password] {
        let found = [account.clone()];
        let lookup = Lookup {
            in_branch: &found,
            outside_branch: 0,
        };
        assert_eq!(plan(&policy(), &ada(), lookup), refused, "{account:?}");
        let linked = [Candidate {
            linked_idps: vec!["okta".into()],
            ..account.clone()
        }];
        let lookup = Lookup {
            in_branch: &linked,
            outside_branch: 0,
        };
        assert!(
            matches!(
                plan(&policy(), &ada(), lookup),
                Plan::SignIn { .. } | Plan::Update { .. }
            ),
            "an admin's link makes it reachable: {account:?}"
        );
    }
    // An account another IdP provisioned, without a password, is an ordinary match.
    let other = [Candidate {
        origin: AccountOrigin::Idp("google".into()),
        is_admin: false,
        has_password: false,
        ..admin
    }];
    let lookup = Lookup {
        in_branch: &other,
        outside_branch: 0,
    };
    assert!(matches!(
        plan(&policy(), &ada(), lookup),
        Plan::SignIn { .. } | Plan::Update { .. }
    ));
}

#[test]
fn a_suspended_user_is_refused_even_when_an_update_is_due() {
    let mut existing = user(7, &[("firstname", "Augusta")]);
    existing.suspended = true;
    let existing = [existing];
    let lookup = Lookup {
        in_branch: &existing,
        outside_branch: 0,
    };
    assert_eq!(
        plan(&policy(), &ada(), lookup),
        Plan::Refuse(Refusal::Suspended)
    );
}

#[test]
fn without_creation_an_unknown_user_is_refused() {
    let no_create = Policy {
        create_users: false,
        ..policy()
    };
    let refused = plan(&no_create, &ada(), NOBODY);
    assert_eq!(refused, Plan::Refuse(Refusal::NoAccountAndNoCreation));
    let Plan::Refuse(why) = refused else {
        unreachable!()
    };
    assert!(!why.to_string().is_empty());
}

#[test]
fn the_policy_of_a_configured_idp_carries_what_creation_requires() {
    let text = r#"
[[plugin]]
id = "oidc"
library = "gatehouse_oidc"

[registration]
user_editable_core = ["firstname", "lastname"]

[[field]]
name = "department"
mandatory = true

[[field]]
name = "nickname"

[[domain]]
name = "root"
hosts = ["localhost"]

[[idp]]
id = "okta"
domain = "root"
plugin = "oidc"
username_attribute = "email"
match_field = "email"
trust_email = true

[idp.provisioning]
create_users = true
update_existing = true
lock_fields = true
fields = { firstname = "given_name", lastname = "family_name", department = "dept" }
"#;
    let loaded = gatehouse_config::parse(Path::new("provisioning.toml"), text).expect("TOML");
    let config = loaded.config.expect("valid");
    let resolved = resolve(&config, &Facts::default().with_plugin("oidc", "oidc", true));
    assert!(
        resolved.diagnostics.is_empty(),
        "{:#?}",
        resolved.diagnostics
    );
    let domain = resolved.resolution.domain("root").expect("root");
    let policy = &domain.idp("okta").expect("okta").policy;
    assert_eq!(
        policy.required_on_create,
        vec!["firstname", "lastname", "department"]
    );
    assert_eq!(policy.match_field, "email");
    assert!(policy.identifies_by_email());
    assert_eq!(
        policy.provisioned_fields().collect::<Vec<_>>(),
        vec!["username", "email", "firstname", "lastname", "department"]
    );
    let mut claims = ada();
    claims.remove("dept");
    assert_eq!(
        plan(policy, &claims, NOBODY),
        Plan::Refuse(Refusal::MissingRequiredFields {
            fields: vec!["department".into()]
        })
    );
}

// ----- plans and locks together ---------------------------------------------------------

/// The host's record of one user: each field's value and which IdP provisioned it.
#[derive(Default)]
struct Profile {
    values: BTreeMap<String, String>,
    provisioned_by: BTreeMap<String, String>,
}

impl Profile {
    /// Applies a plan as the host does: every written field is recorded as `idp`'s.
    fn apply(&mut self, idp: &str, plan: &Plan) {
        let written: Vec<(String, String)> = match plan {
            Plan::Create { fields } => fields
                .iter()
                .map(|f| (f.field.clone(), f.value.clone()))
                .collect(),
            Plan::Update { changes, .. } => changes
                .iter()
                .map(|c| (c.field.clone(), c.new.clone()))
                .collect(),
            Plan::SignIn { .. } | Plan::Refuse(_) => Vec::new(),
        };
        for (field, value) in written {
            self.values.insert(field.clone(), value);
            self.provisioned_by.insert(field, idp.to_owned());
        }
    }

    /// The user typed a value in: no provenance any more.
    fn type_in(&mut self, field: &str, value: &str) {
        self.values.insert(field.into(), value.into());
        self.provisioned_by.remove(field);
    }

    fn candidate(&self, id: i64) -> Candidate {
        Candidate {
            id,
            values: self.values.clone(),
            origin: AccountOrigin::Idp("okta".into()),
            ..Candidate::default()
        }
    }

    fn lock(&self, field: &str, policies: &[&Policy]) -> FieldLock {
        FieldLock::of(self.provisioned_by.get(field).map(String::as_str), |idp| {
            policies.iter().any(|p| p.idp_id == idp && p.lock_fields)
        })
    }
}

fn kind(field: &str) -> FieldKind {
    let editable_core = gatehouse_config::Registration::default().user_editable_core;
    FieldKind::of_core(field, &editable_core).unwrap_or(FieldKind::Additional {
        user_editable: true,
    })
}

#[test]
fn fields_an_update_from_a_locking_idp_changed_are_locked_for_the_owner() {
    let okta = policy();
    let google = Policy {
        idp_id: "google".into(),
        lock_fields: false,
        ..policy()
    };
    let policies = [&okta, &google];

    // The user had a password account; names typed in, nothing locked.
    let mut profile = Profile::default();
    profile.type_in("username", "ada@example.test");
    profile.type_in("firstname", "Augusta");
    profile.type_in("lastname", "Lovelace");
    for field in ["firstname", "lastname"] {
        let lock = profile.lock(field, &policies);
        assert_eq!(lock.locked_by, None, "{field} typed in");
        assert_eq!(may_edit(Editor::Owner, field, kind(field), &lock), Ok(()));
    }

    // First SSO sign-in through okta (locks): firstname and department change.
    let existing = [profile.candidate(7)];
    let update = plan(
        &okta,
        &ada(),
        Lookup {
            in_branch: &existing,
            outside_branch: 0,
        },
    );
    let Plan::Update { changes, .. } = &update else {
        panic!("expected an update, got {update:?}");
    };
    let changed: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(changed, ["firstname", "department"]);
    profile.apply("okta", &update);

    for field in &changed {
        let lock = profile.lock(field, &policies);
        assert_eq!(lock.locked_by.as_deref(), Some("okta"), "{field}");
        assert_eq!(
            may_edit(Editor::Owner, field, kind(field), &lock),
            Err(EditRefusal::Locked {
                field: (*field).to_owned(),
                idp: "okta".into()
            })
        );
    }
    // Admins may change the locked core field, not the locked additional one.
    let firstname = profile.lock("firstname", &policies);
    assert_eq!(
        may_edit(
            Editor::Admin,
            "firstname",
            FieldKind::Core {
                user_editable: true
            },
            &firstname
        ),
        Ok(())
    );
    let department = profile.lock("department", &policies);
    assert!(matches!(
        may_edit(Editor::Admin, "department", kind("department"), &department),
        Err(EditRefusal::Locked { .. })
    ));
    // The field the update left alone is still the user's own.
    let lastname = profile.lock("lastname", &policies);
    assert_eq!(lastname.locked_by, None);
    assert_eq!(
        may_edit(
            Editor::Owner,
            "lastname",
            FieldKind::Core {
                user_editable: true
            },
            &lastname
        ),
        Ok(())
    );

    // Then google (does not lock) provides a new first name: the lock follows the value.
    let mut renamed = ada();
    renamed.insert("given_name".into(), "Ada Augusta".into());
    let existing = [profile.candidate(7)];
    let update = plan(
        &google,
        &renamed,
        Lookup {
            in_branch: &existing,
            outside_branch: 0,
        },
    );
    assert_eq!(
        update,
        Plan::Update {
            user_id: 7,
            changes: vec![FieldDiff {
                field: "firstname".into(),
                old: Some("Ada".into()),
                new: "Ada Augusta".into()
            }]
        }
    );
    profile.apply("google", &update);
    let firstname = profile.lock("firstname", &policies);
    assert_eq!(firstname.locked_by, None, "google's values are not locked");
    assert_eq!(
        may_edit(
            Editor::Owner,
            "firstname",
            FieldKind::Core {
                user_editable: true
            },
            &firstname
        ),
        Ok(())
    );
    assert_eq!(
        profile.lock("department", &policies).locked_by.as_deref(),
        Some("okta"),
        "okta's department is still okta's"
    );
}

#[test]
fn a_user_created_by_a_non_locking_idp_has_nothing_locked() {
    let google = Policy {
        idp_id: "google".into(),
        lock_fields: false,
        ..policy()
    };
    let created = plan(&google, &ada(), NOBODY);
    assert!(matches!(created, Plan::Create { .. }));
    let mut profile = Profile::default();
    profile.apply("google", &created);
    for field in ["firstname", "lastname", "department"] {
        let lock = profile.lock(field, &[&google]);
        assert_eq!(lock.locked_by, None, "{field}");
        assert_eq!(may_edit(Editor::Owner, field, kind(field), &lock), Ok(()));
    }
    // The username stays with administrators whether or not anything locks it.
    let username = profile.lock("username", &[&google]);
    assert!(matches!(
        may_edit(
            Editor::Owner,
            "username",
            FieldKind::Core {
                user_editable: false
            },
            &username
        ),
        Err(EditRefusal::NotUserEditable { .. })
    ));
    // An IdP that no longer exists locks nothing.
    profile
        .provisioned_by
        .insert("lastname".into(), "deleted-idp".into());
    assert_eq!(profile.lock("lastname", &[&google]).locked_by, None);
}
