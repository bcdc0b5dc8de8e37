//! Property tests: what this crate writes, it reads back as the same thing (parse(write(x))
//! == x) for PHP values, JSend replies, tokens, SEP calls, registrations and users; and no
//! input makes a reader panic.

use gatehouse_connect_wire::sep::{ClientStanding, read_server_sep_form, server_call_form};
use gatehouse_connect_wire::services::{self, ServerCall};
use gatehouse_connect_wire::setup::{SetupRequest, read_setup_form};
use gatehouse_connect_wire::user::{SharedUser, UserWriteOptions};
use gatehouse_connect_wire::{
    ApiVersion, ClientType, JSend, PhpValue, ProfileFieldValue, RemoteUser, Token,
};
use proptest::prelude::*;
use serde_json::Value;

fn php_value() -> impl Strategy<Value = PhpValue> {
    let leaf = prop_oneof![
        Just(PhpValue::Null),
        any::<bool>().prop_map(PhpValue::Bool),
        any::<i64>().prop_map(PhpValue::Int),
        any::<String>().prop_map(PhpValue::Str),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(PhpValue::List),
            // Distinct keys: a PHP array cannot hold one key twice.
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| PhpValue::Map(m.into_iter().collect())),
        ]
    })
}

fn token() -> impl Strategy<Value = Token> {
    any::<[u8; 20]>().prop_map(|bytes| Token::from_random_bytes(&bytes))
}

/// Text as a PHP site would hold it: anything but NUL (which `clean_result` strips).
fn text() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| s.replace('\0', ""))
}

proptest! {
    #[test]
    fn php_json_reads_back_as_json_decode_would(value in php_value()) {
        let written = value.to_json();
        // json_encode without flags writes ASCII only.
        prop_assert!(written.is_ascii());
        let read: Value = serde_json::from_str(&written).expect("valid JSON");
        prop_assert_eq!(read, value.to_value());
    }

    #[test]
    fn jsend_replies_read_back(
        data in php_value(),
        message in text(),
        code in proptest::option::of(any::<i64>()),
        kind in 0..3u8,
    ) {
        let data = data.to_value();
        let reply = match kind {
            0 => JSend::Success { data },
            1 => JSend::Fail { data },
            _ => JSend::Error {
                message,
                code: code.map(Value::from),
                data: match data {
                    Value::Array(_) | Value::Object(_) => Some(data),
                    _ => None,
                },
            },
        };
        let data_is_stripped = matches!(&reply, JSend::Success { data } | JSend::Fail { data } if contains_nul(data))
            || matches!(&reply, JSend::Error { data: Some(data), .. } if contains_nul(data));
        prop_assume!(!data_is_stripped);
        prop_assert_eq!(JSend::parse(reply.to_json().as_bytes()), Ok(reply));
    }

    #[test]
    fn any_bytes_are_a_reply_or_a_typed_error(body in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = JSend::parse(&body);
    }

    #[test]
    fn tokens_read_back(token in token()) {
        prop_assert_eq!(Token::parse(token.as_str()), Ok(token.clone()));
        prop_assert!(token.matches(token.as_str()));
    }

    #[test]
    fn server_calls_read_back(
        idnumber in token(),
        secret in token(),
        sso in token(),
        user_id in 1..i64::MAX,
        which in 0..6u8,
        version in 1..=2i64,
    ) {
        let api_version = ApiVersion::new(version).expect("1 or 2");
        let call = match which {
            0 => ServerCall::GetApiVersion { client_type: ClientType::TotaraSocial },
            1 => ServerCall::UpdateApiVersion { api_version, client_type: ClientType::TotaraLms },
            2 => ServerCall::GetUser { user_id },
            3 => ServerCall::GetSsoUser { sso_token: Some(sso.clone()) },
            4 => ServerCall::ForceSsoLogout { sso_token: Some(sso) },
            _ => ServerCall::GetUsers,
        };
        let form = server_call_form(&idnumber, &secret, call.service(), call.params());
        let envelope = read_server_sep_form(&form).expect("envelope");
        let client = ClientStanding {
            server_secret: secret,
            active: true,
            api_version: version,
            allow_plugin_services: false,
        };
        let authorized = envelope
            .authorize_at_server(Some(&client), &idnumber, true)
            .expect("authorised");
        prop_assert_eq!(ServerCall::read(authorized, &envelope.params), Ok(call));
    }

    #[test]
    fn registrations_read_back(
        tokens in prop::collection::vec(token(), 5),
        name in text(),
        host in "[a-z]{1,12}(\\.[a-z]{2,6}){1,2}",
    ) {
        let url = format!("https://{host}");
        let request = SetupRequest::new(
            tokens[0].clone(), tokens[1].clone(), tokens[2].clone(), &url, &name,
            tokens[3].clone(), tokens[4].clone(),
        );
        let accepted = read_setup_form(&request.to_form(), Some(&tokens[0]), true)
            .expect("accepted");
        prop_assert_eq!(accepted.server_idnumber, tokens[1].clone());
        prop_assert_eq!(accepted.server_secret, tokens[2].clone());
        prop_assert_eq!(accepted.server_url, url);
        prop_assert_eq!(accepted.server_name, name);
        prop_assert_eq!(accepted.client_idnumber, tokens[3].clone());
        prop_assert_eq!(accepted.client_secret, tokens[4].clone());
        prop_assert_eq!(accepted.api_version, ApiVersion::V2);
    }

    #[test]
    fn shared_users_read_back(
        id in 1..i64::MAX,
        username in text(),
        email in text(),
        firstname in text(),
        idnumber in text(),
        deleted in any::<bool>(),
        suspended in any::<bool>(),
        fields in prop::collection::vec((text(), text()), 0..3),
        v2 in any::<bool>(),
    ) {
        let user = SharedUser {
            id, username: username.clone(), email: email.clone(), firstname: firstname.clone(),
            lastname: String::new(), idnumber: idnumber.clone(), password_hash: None,
            deleted, suspended, timecreated: 0, timemodified: 0,
            profile_fields: fields.iter().map(|(shortname, data)| ProfileFieldValue {
                shortname: shortname.clone(), datatype: "text".to_owned(), data: data.clone(),
            }).collect(),
            jobs: Vec::new(),
        };
        let options = UserWriteOptions {
            sso_pictures: None,
            api_version: if v2 { ApiVersion::V2 } else { ApiVersion::V1 },
            sync_passwords: false,
            sync_profile_fields: true,
            sync_jobs: true,
        };
        let reply = services::users_reply(std::slice::from_ref(&user), &options);
        let users = services::read_users_reply(JSend::parse(reply.as_bytes()).expect("JSend"))
            .expect("users");
        let read: &RemoteUser = &users[0];
        prop_assert_eq!(read.id, id);
        prop_assert_eq!(&read.username, &username);
        prop_assert_eq!(read.deleted, deleted);
        prop_assert_eq!(read.suspended, suspended);
        prop_assert_eq!(read.column("email"), Some(email.as_str()));
        prop_assert_eq!(read.column("firstname"), Some(firstname.as_str()));
        prop_assert_eq!(read.column("idnumber"), Some(idnumber.as_str()));
        if v2 && !deleted {
            prop_assert_eq!(read.profile_fields.clone(), Some(user.profile_fields.clone()));
            prop_assert_eq!(read.jobs.clone(), Some(Vec::new()));
        } else {
            prop_assert_eq!(read.profile_fields.clone(), None);
            prop_assert_eq!(read.jobs.clone(), None);
        }
    }
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}
