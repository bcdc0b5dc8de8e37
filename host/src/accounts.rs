//! Local accounts' password rules and what may change one: the policy every new password
//! meets (the password page and `gatehouse users set-password` alike), and why an account
//! has no password to change. Not hashing (`passwords`), not the page (`web::password`),
//! not the command (`cli::users`).

use gatehouse_store::User;

/// The fewest characters (Unicode scalar values) a new password may have. Twelve: long
/// enough that an offline guess against an argon2id hash is out of reach for anything but
/// a listed password, short enough to type (NIST SP 800-63B asks at least 8).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The most bytes a new password may have: argon2 takes any length, but a bounded input
/// keeps a form post from making the hashing threads read megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a new password is refused, in words the person who typed it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    #[error("The new password must be at least {MIN_PASSWORD_CHARS} characters long.")]
    TooShort,
    #[error("The new password must be at most {MAX_PASSWORD_BYTES} bytes long.")]
    TooLong,
    #[error("The new password must not be the username.")]
    IsUsername,
    #[error("The new password must not contain control characters (such as a line break).")]
    ControlCharacter,
}

impl PolicyRefusal {
    /// A stable name, for the audit log and JSON.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::IsUsername => "is_username",
            Self::ControlCharacter => "control_character",
        }
    }
}

/// Whether `password` may become `username`'s password. The username is compared without
/// regard to case or surrounding spaces: `Admin` is as guessable as `admin`.
pub fn check_policy(username: &str, password: &str) -> Result<(), PolicyRefusal> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PolicyRefusal::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PolicyRefusal::TooShort);
    }
    if password.chars().any(char::is_control) {
        return Err(PolicyRefusal::ControlCharacter);
    }
    if password.trim().to_lowercase() == username.trim().to_lowercase() {
        return Err(PolicyRefusal::IsUsername);
    }
    Ok(())
}

/// Why an account's user cannot change its password here, if they cannot: it has no local
/// password (it signs in through an IdP), or a Totara Connect server took it over (its old
/// hash no longer opens it; `connect_idp` names that IdP, as the store's
/// `connect_idp_of_account` answers).
pub fn no_local_password(user: &User, connect_idp: Option<&str>) -> Option<String> {
    if let Some(idp) = connect_idp {
        return Some(format!(
            "This account signs in through your organisation's main site (Totara Connect, `{idp}`), \
             so it has no password here to change. Change it there."
        ));
    }
    if user.password_hash.is_none() {
        let source = user
            .auth_source
            .strip_prefix("idp:")
            .map_or_else(|| "single sign-on".to_owned(), |idp| format!("`{idp}`"));
        return Some(format!(
            "This account signs in through {source} and has no password here to change. \
             Its password, if it has one, is managed by that identity provider."
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_long_username_and_control_characters() {
        assert_eq!(check_policy("ada", "short"), Err(PolicyRefusal::TooShort));
        // Characters, not bytes: eleven two-byte letters are still too short.
        assert_eq!(
            check_policy("ada", &"é".repeat(MIN_PASSWORD_CHARS - 1)),
            Err(PolicyRefusal::TooShort)
        );
        assert_eq!(check_policy("ada", &"é".repeat(MIN_PASSWORD_CHARS)), Ok(()));
        assert_eq!(check_policy("ada", &"x".repeat(MAX_PASSWORD_BYTES)), Ok(()));
        assert_eq!(
            check_policy("ada", &"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PolicyRefusal::TooLong)
        );
        assert_eq!(
            check_policy("administrator", "Administrator"),
            Err(PolicyRefusal::IsUsername)
        );
        assert_eq!(
            check_policy("grace.hopper", " GRACE.HOPPER "),
            Err(PolicyRefusal::IsUsername)
        );
        assert_eq!(
            check_policy("ada", "correct horse\nbattery"),
            Err(PolicyRefusal::ControlCharacter)
        );
        assert_eq!(check_policy("ada", "correct horse battery"), Ok(()));
    }

    #[test]
    fn accounts_without_a_local_password_are_told_why() {
        let local = User {
            username: "ada".into(),
            auth_source: "local".into(),
            password_hash: Some("$argon2id$…".into()),
            ..User::default()
        };
        assert_eq!(no_local_password(&local, None), None);
        let sso = User {
            auth_source: "idp:corp".into(),
            password_hash: None,
            ..local.clone()
        };
        let why = no_local_password(&sso, None).expect("refused");
        assert!(why.contains("`corp`"), "{why}");
        let taken_over = no_local_password(&local, Some("hq")).expect("refused");
        assert!(taken_over.contains("`hq`"), "{taken_over}");
    }
}
