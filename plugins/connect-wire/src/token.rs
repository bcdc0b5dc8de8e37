//! Connect's secrets and tokens (server and client idnumbers and secrets, setup secrets,
//! request and SSO tokens): 40 lowercase hex characters, made from 20 random bytes the caller
//! passes in (this crate never reads a random source), checked for length and alphabet, and
//! compared in constant time. Also Moodle's `clean_param` filters that the original applies
//! to these fields before it looks at them. It is not storage: hashing a token for the
//! database is the caller's.

use std::fmt;

use subtle::ConstantTimeEq;
use thiserror::Error;

/// The length of every Connect secret and token.
pub const TOKEN_LEN: usize = 40;

/// A Connect secret or token: exactly 40 characters of `0-9a-f`.
///
/// The original makes them as `sha1(...)` hex digests; Gatehouse makes them from 20 bytes of
/// its secure random source ([`Token::from_random_bytes`]). `Debug` does not show the value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

/// Why a text is not a [`Token`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("expected {TOKEN_LEN} characters, found {found}")]
    WrongLength { found: usize },
    #[error("character {position} is not a lowercase hex digit (0-9, a-f)")]
    BadCharacter { position: usize },
}

impl Token {
    /// Checks `text`: exactly 40 characters, each `0-9` or `a-f`.
    ///
    /// The original accepts any `[A-Za-z0-9]` of length 40 and then compares with what it
    /// stored; every value it stores is lowercase hex, so anything else could never match
    /// and is refused here already.
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        let found = text.chars().count();
        if found != TOKEN_LEN {
            return Err(TokenError::WrongLength { found });
        }
        if let Some(position) = text
            .chars()
            .position(|c| !(c.is_ascii_digit() || ('a'..='f').contains(&c)))
        {
            return Err(TokenError::BadCharacter { position });
        }
        Ok(Token(text.to_owned()))
    }

    /// A new token from 20 bytes of the caller's secure random source, as lowercase hex.
    pub fn from_random_bytes(bytes: &[u8; 20]) -> Token {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(TOKEN_LEN);
        for byte in bytes {
            text.push(HEX[usize::from(byte >> 4)] as char);
            text.push(HEX[usize::from(byte & 0x0f)] as char);
        }
        Token(text)
    }

    /// The token's text, to send or store.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares with a value that came from outside, in time that does not depend on where
    /// they differ (the original compares with `===` and SQL equality).
    pub fn matches(&self, other: &str) -> bool {
        constant_time_eq(&self.0, other)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Constant-time equality of two secrets. Lengths are not secret (every token has 40
/// characters), so a length difference returns early.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Moodle's `PARAM_ALPHANUM`: keeps `[A-Za-z0-9]`, drops every other character.
pub fn clean_alphanum(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// Moodle's `PARAM_ALPHANUMEXT`: keeps `[A-Za-z0-9_-]`, drops every other character.
pub fn clean_alphanumext(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// Moodle's `PARAM_COMPONENT`: the name itself when it is a normalised component name
/// (`^[a-z]+(_[a-z][a-z0-9_]*)?[a-z0-9]+$`, no `__`, and `mod_` names with one underscore),
/// otherwise the empty string. (An invalid component thus runs the core services, §8.6.)
pub fn clean_component(text: &str) -> String {
    if is_component(text) {
        text.to_owned()
    } else {
        String::new()
    }
}

fn is_component(text: &str) -> bool {
    let bytes = text.as_bytes();
    // ^[a-z]+ … [a-z0-9]+$ with an optional _[a-z][a-z0-9_]* between: the whole name is
    // lowercase letters, digits and underscores, starts with a letter, ends with a letter or
    // digit, and its first underscore (if any) is followed by a letter.
    let Some(&first) = bytes.first() else {
        return false;
    };
    if bytes.len() < 2 || !first.is_ascii_lowercase() {
        return false;
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
    {
        return false;
    }
    let last = bytes[bytes.len() - 1];
    if last == b'_' || text.contains("__") {
        return false;
    }
    match text.find('_') {
        None => {
            // ^[a-z]+[a-z0-9]+$: letters, then letters or digits.
            let leading_letters = bytes.iter().take_while(|b| b.is_ascii_lowercase()).count();
            leading_letters >= 1
                && bytes[leading_letters..]
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }
        Some(underscore) => {
            let prefix_letters = bytes[..underscore].iter().all(u8::is_ascii_lowercase);
            // `_[a-z][a-z0-9_]*` and then at least one `[a-z0-9]`: two characters or more.
            let after = bytes.get(underscore + 1).copied().unwrap_or(b'0');
            let long_enough = bytes.len() - underscore > 2;
            if !prefix_letters || !after.is_ascii_lowercase() || !long_enough {
                return false;
            }
            !(text.starts_with("mod_") && text.matches('_').count() != 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_cleaned_as_moodle_does() {
        for ok in [
            "totara_connect",
            "auth_connect",
            "mod_forum",
            "local_x1",
            "core",
        ] {
            assert_eq!(clean_component(ok), ok, "{ok}");
        }
        for bad in [
            "Totara",
            "a__b",
            "a_b",
            "mod_for_um",
            "x_",
            "_x",
            "a_1b",
            "a",
            "a-b",
            "",
        ] {
            assert_eq!(clean_component(bad), "", "{bad}");
        }
    }

    #[test]
    fn cleaning_keeps_only_the_alphabet() {
        assert_eq!(clean_alphanum("ab-c_9 \n"), "abc9");
        assert_eq!(clean_alphanumext("get_users;--"), "get_users--");
    }
}
