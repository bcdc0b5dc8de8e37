//! Locks follow provenance: who may change a profile field, given which IdP instance
//! provisioned its current value. Pure; the host supplies the provenance and the policies.
//!
//! A field is locked for a user when the IdP instance that provisioned its current value
//! locks the fields it provisions. Values a person typed in, and users without SSO
//! provenance, are never locked. An admin may change locked core fields but not locked
//! additional fields (seed 002).

use std::collections::BTreeMap;

use gatehouse_config::OWNER_EDITABLE_CORE;

use crate::provisioning::{CORE_FIELDS, Plan};

/// Who is editing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Editor {
    /// The user, on their own profile.
    Owner,
    /// An administrator, on anyone's profile.
    Admin,
}

/// The state of one field for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLock {
    /// The IdP instance whose locking applies, if any.
    pub locked_by: Option<String>,
}

impl FieldLock {
    /// `provisioned_by`: the IdP that set the current value (`None`: typed in or never set).
    /// `idp_locks`: whether a given IdP instance locks its fields (false for an IdP that no
    /// longer exists).
    pub fn of(provisioned_by: Option<&str>, idp_locks: impl Fn(&str) -> bool) -> Self {
        Self {
            locked_by: provisioned_by
                .filter(|idp| idp_locks(idp))
                .map(str::to_owned),
        }
    }
}

/// Which IdP instance each field's value will have come from once `plan` (made for IdP
/// `idp`) is applied, given the user's current provenance (field → IdP). Fields the plan
/// writes take `idp`; the rest keep theirs. A refusal changes nothing.
pub fn provenance_after(
    plan: &Plan,
    idp: &str,
    current: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut after = match plan {
        Plan::Create { .. } => BTreeMap::new(),
        _ => current.clone(),
    };
    let written: Vec<&str> = match plan {
        Plan::Create { fields } => fields.iter().map(|f| f.field.as_str()).collect(),
        Plan::Update { changes, .. } => changes.iter().map(|c| c.field.as_str()).collect(),
        Plan::SignIn { .. } | Plan::Refuse(_) => Vec::new(),
    };
    for field in written {
        after.insert(field.to_owned(), idp.to_owned());
    }
    after
}

/// The fields locked for the user by `provenance`, with the IdP that locks each.
pub fn locked_fields(
    provenance: &BTreeMap<String, String>,
    idp_locks: impl Fn(&str) -> bool,
) -> BTreeMap<String, String> {
    provenance
        .iter()
        .filter(|(_, idp)| idp_locks(idp))
        .map(|(field, idp)| (field.clone(), idp.clone()))
        .collect()
}

/// Why an edit is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditRefusal {
    /// The field is locked by this IdP instance.
    Locked { field: String, idp: String },
    /// Users cannot change this field of their own profile.
    NotUserEditable { field: String },
    /// No such field.
    UnknownField { field: String },
}

impl std::fmt::Display for EditRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Locked { field, idp } => write!(
                f,
                "`{field}` is locked: its value comes from the identity provider `{idp}`, which locks the fields it provides"
            ),
            Self::NotUserEditable { field } => {
                write!(f, "`{field}` can only be changed by an administrator")
            }
            Self::UnknownField { field } => write!(f, "there is no profile field `{field}`"),
        }
    }
}

/// What kind of field it is, as far as editing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A core field; `user_editable` when `[registration] user_editable_core` lists it.
    Core { user_editable: bool },
    /// An additional field; `user_editable` from its `[[field]]`.
    Additional { user_editable: bool },
}

impl FieldKind {
    /// A core field's kind, given the core fields users may edit (`[registration]
    /// user_editable_core`). The username and idnumber identify the account and stay with
    /// administrators whatever the list says.
    pub fn of_core(field: &str, user_editable_core: &[String]) -> Option<Self> {
        CORE_FIELDS.contains(&field).then(|| Self::Core {
            user_editable: OWNER_EDITABLE_CORE.contains(&field)
                && user_editable_core.iter().any(|f| f == field),
        })
    }
}

/// Decides whether `editor` may change `field`.
pub fn may_edit(
    editor: Editor,
    field: &str,
    kind: FieldKind,
    lock: &FieldLock,
) -> Result<(), EditRefusal> {
    let locked = |idp: &String| EditRefusal::Locked {
        field: field.to_owned(),
        idp: idp.clone(),
    };
    match (editor, kind, &lock.locked_by) {
        (Editor::Owner, _, Some(idp)) => Err(locked(idp)),
        (Editor::Admin, FieldKind::Additional { .. }, Some(idp)) => Err(locked(idp)),
        (Editor::Admin, _, _) => Ok(()),
        (
            Editor::Owner,
            FieldKind::Core {
                user_editable: true,
            }
            | FieldKind::Additional {
                user_editable: true,
            },
            None,
        ) => Ok(()),
        (Editor::Owner, _, None) => Err(EditRefusal::NotUserEditable {
            field: field.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked_by(idp: &str) -> FieldLock {
        FieldLock {
            locked_by: Some(idp.into()),
        }
    }
    const UNLOCKED: FieldLock = FieldLock { locked_by: None };
    const EDITABLE_EXTRA: FieldKind = FieldKind::Additional {
        user_editable: true,
    };

    fn core(field: &str) -> FieldKind {
        let defaults = gatehouse_config::Registration::default().user_editable_core;
        FieldKind::of_core(field, &defaults).expect("a core field")
    }

    #[test]
    fn a_lock_follows_the_idp_that_provisioned_the_value() {
        let locks = |idp: &str| idp == "okta";
        assert_eq!(FieldLock::of(Some("okta"), locks), locked_by("okta"));
        assert_eq!(FieldLock::of(Some("google"), locks), UNLOCKED);
        assert_eq!(FieldLock::of(None, locks), UNLOCKED, "typed-in values");
    }

    #[test]
    fn owners_cannot_change_locked_fields() {
        let refusal = may_edit(Editor::Owner, "email", core("email"), &locked_by("okta"));
        assert_eq!(
            refusal,
            Err(EditRefusal::Locked {
                field: "email".into(),
                idp: "okta".into()
            })
        );
        assert!(refusal.unwrap_err().to_string().contains("`okta`"));
    }

    #[test]
    fn admins_change_locked_core_fields_but_not_locked_additional_fields() {
        assert_eq!(
            may_edit(Editor::Admin, "email", core("email"), &locked_by("okta")),
            Ok(())
        );
        assert!(matches!(
            may_edit(
                Editor::Admin,
                "department",
                EDITABLE_EXTRA,
                &locked_by("okta")
            ),
            Err(EditRefusal::Locked { .. })
        ));
    }

    #[test]
    fn unlocked_fields_follow_who_may_edit_them() {
        assert_eq!(
            may_edit(Editor::Owner, "firstname", core("firstname"), &UNLOCKED),
            Ok(())
        );
        assert_eq!(
            may_edit(Editor::Owner, "department", EDITABLE_EXTRA, &UNLOCKED),
            Ok(())
        );
        assert!(matches!(
            may_edit(Editor::Owner, "username", core("username"), &UNLOCKED),
            Err(EditRefusal::NotUserEditable { .. })
        ));
        assert!(matches!(
            may_edit(
                Editor::Owner,
                "costcentre",
                FieldKind::Additional {
                    user_editable: false
                },
                &UNLOCKED
            ),
            Err(EditRefusal::NotUserEditable { .. })
        ));
        assert_eq!(
            may_edit(Editor::Admin, "username", core("username"), &UNLOCKED),
            Ok(())
        );
    }

    #[test]
    fn the_registration_list_decides_which_core_fields_owners_edit() {
        let admin_only_email = ["firstname".to_owned(), "lastname".to_owned()];
        let email = FieldKind::of_core("email", &admin_only_email).expect("core");
        assert!(matches!(
            may_edit(Editor::Owner, "email", email, &UNLOCKED),
            Err(EditRefusal::NotUserEditable { .. })
        ));
        assert_eq!(may_edit(Editor::Admin, "email", email, &UNLOCKED), Ok(()));
        let listed = ["username".to_owned(), "idnumber".to_owned()];
        for field in ["username", "idnumber"] {
            let kind = FieldKind::of_core(field, &listed).expect("core");
            assert!(
                may_edit(Editor::Owner, field, kind, &UNLOCKED).is_err(),
                "{field} is never the owner's"
            );
        }
        assert_eq!(FieldKind::of_core("department", &listed), None);
    }
}
