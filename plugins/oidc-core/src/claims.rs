//! Claims to attributes: the ID token's (and UserInfo's) JSON claims flattened into
//! names an admin can map (`email`, `groups` joined with ",", `address.locality`). It
//! does not decide which claims are trustworthy; `verify` and the flow do.

use serde_json::{Map, Value};

use crate::profile::{Attributes, Claims};

/// Claims about the token itself, never taken from UserInfo.
const PROTOCOL_CLAIMS: [&str; 15] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "azp",
    "at_hash",
    "c_hash",
    "auth_time",
    "acr",
    "amr",
    "sid",
    "jti",
];

/// Merges UserInfo claims into the ID token's. UserInfo wins for profile claims, never
/// for protocol claims. An `email` that UserInfo changes without saying whether it is
/// verified counts as unverified, so a verified flag from the ID token never vouches
/// for another source's address.
pub fn merge_userinfo(claims: &mut Claims, userinfo: Map<String, Value>) {
    let id_token_email = claims.get("email").cloned();
    let userinfo_says_verified = userinfo.contains_key("email_verified");
    let userinfo_email = userinfo.get("email").cloned();
    for (name, value) in userinfo {
        if !PROTOCOL_CLAIMS.contains(&name.as_str()) {
            claims.insert(name, value);
        }
    }
    if let Some(email) = userinfo_email
        && Some(&email) != id_token_email.as_ref()
        && !userinfo_says_verified
    {
        claims.insert("email_verified".into(), Value::Bool(false));
    }
}

/// Flattens claims: strings as they are, numbers in JSON form, booleans as
/// "true"/"false", arrays of scalars joined with ",", nested objects as
/// `parent.child`; nulls are left out.
pub fn flatten(claims: &Claims) -> Attributes {
    let mut attributes = Attributes::new();
    for (name, value) in claims {
        flatten_into(name, value, &mut attributes);
    }
    attributes
}

fn flatten_into(name: &str, value: &Value, out: &mut Attributes) {
    match value {
        Value::Null => {}
        Value::Array(items) => {
            let scalars: Vec<String> = items.iter().filter_map(scalar).collect();
            if !scalars.is_empty() {
                out.insert(name.to_owned(), scalars.join(","));
            }
        }
        Value::Object(children) => {
            for (child, value) in children {
                flatten_into(&format!("{name}.{child}"), value, out);
            }
        }
        scalar_value => {
            if let Some(text) = scalar(scalar_value) {
                out.insert(name.to_owned(), text);
            }
        }
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Claims {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test claims are objects"),
        }
    }

    #[test]
    fn flattens_scalars_arrays_and_nested_objects() {
        let attributes = flatten(&claims(json!({
            "sub": "u1",
            "email_verified": false,
            "groups": ["staff", "admins"],
            "updated_at": 1700000000,
            "address": { "locality": "Paris", "geo": { "lat": 48.8 } },
            "nothing": null,
            "empty": [],
        })));
        assert_eq!(attributes["sub"], "u1");
        assert_eq!(attributes["email_verified"], "false");
        assert_eq!(attributes["groups"], "staff,admins");
        assert_eq!(attributes["updated_at"], "1700000000");
        assert_eq!(attributes["address.locality"], "Paris");
        assert_eq!(attributes["address.geo.lat"], "48.8");
        assert!(!attributes.contains_key("nothing"));
        assert!(!attributes.contains_key("empty"));
    }

    #[test]
    fn userinfo_cannot_override_protocol_claims_or_borrow_verification() {
        let mut merged = claims(json!({
            "sub": "u1", "iss": "https://idp", "email": "a@x.test", "email_verified": true
        }));
        merge_userinfo(
            &mut merged,
            claims(json!({ "sub": "u1", "iss": "https://evil", "email": "b@x.test", "name": "B" })),
        );
        assert_eq!(merged["iss"], "https://idp");
        assert_eq!(merged["email"], "b@x.test");
        assert_eq!(merged["email_verified"], false);
        assert_eq!(merged["name"], "B");

        let mut same = claims(json!({ "sub": "u1", "email": "a@x.test", "email_verified": true }));
        merge_userinfo(
            &mut same,
            claims(json!({ "sub": "u1", "email": "a@x.test" })),
        );
        assert_eq!(same["email_verified"], true);
    }
}
