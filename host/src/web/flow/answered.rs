//! The identity an IdP's cross-site POST gave, as kept between the ACS and the browser's
//! same-site finish step (the `plugin_state` of an answered pending sign-in). Only the
//! encoding; when it is written and taken is `flow`'s.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use gatehouse_plugin_api::{Attribute, Identity};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Kept {
    subject: String,
    attributes: Vec<(String, Vec<String>)>,
    /// Base64: the plugin's logout state is bytes.
    logout_state: String,
}

/// The identity as the bytes of an answered pending sign-in.
pub(super) fn encode(identity: &Identity) -> Vec<u8> {
    let kept = Kept {
        subject: identity.subject.to_string(),
        attributes: identity
            .attributes
            .iter()
            .map(|a| {
                (
                    a.name.to_string(),
                    a.values.iter().map(|v| v.to_string()).collect(),
                )
            })
            .collect(),
        logout_state: STANDARD.encode(identity.logout_state.as_slice()),
    };
    serde_json::to_vec(&kept).unwrap_or_default()
}

/// The identity back from [`encode`]'s bytes; `None` if they are not such bytes (the row
/// was written by another version, or tampered with in the database).
pub(super) fn decode(bytes: &[u8]) -> Option<Identity> {
    let kept: Kept = serde_json::from_slice(bytes).ok()?;
    let logout_state = STANDARD.decode(kept.logout_state).ok()?;
    Some(Identity {
        subject: kept.subject.into(),
        attributes: kept
            .attributes
            .into_iter()
            .map(|(name, values)| Attribute {
                name: name.into(),
                values: values.into_iter().map(Into::into).collect(),
            })
            .collect(),
        logout_state: logout_state.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_survives_the_wait_for_the_finish_step() {
        let mut identity = Identity::new("subject-1").with_attribute("email", "a@example.test");
        identity.attributes.push(Attribute {
            name: "groups".into(),
            values: vec!["a".into(), "b".into()].into(),
        });
        identity.logout_state = vec![0, 1, 255].into();
        assert_eq!(decode(&encode(&identity)), Some(identity));
    }

    #[test]
    fn bytes_that_are_no_kept_identity_are_refused() {
        assert_eq!(decode(b"plugin state"), None);
        assert_eq!(decode(b"{\"subject\":\"x\"}"), None);
    }
}
