//! A plugin task's output text, read without building the large part as a JSON tree: the
//! `directory.connect_users` section (a Connect server's whole user list) is kept as the
//! raw text it came in, to be read typed by `connect_sync`, and everything else becomes a
//! [`Value`] as before. Not the meaning of any key (that is `tasks::apply_task_output`).

use std::collections::BTreeMap;

use serde_json::{Value, value::RawValue};

use crate::connect_sync::{CONNECT_USERS, DIRECTORY_KEY};

/// The output, split.
#[derive(Debug)]
pub struct TaskOutput<'t> {
    /// The output, with `directory.connect_users` (if any) as `null`: its key stays, so
    /// the checks of the `directory` object see the same sections.
    pub tree: Value,
    /// The raw text of `directory.connect_users`.
    pub connect_users: Option<&'t str>,
}

impl<'t> TaskOutput<'t> {
    /// Reads `text`; an error when it is not JSON.
    pub fn parse(text: &'t str) -> Result<Self, serde_json::Error> {
        let Ok(top) = serde_json::from_str::<BTreeMap<String, &'t RawValue>>(text) else {
            // Not an object (or not JSON at all): nothing to split.
            return Ok(TaskOutput {
                tree: serde_json::from_str(text)?,
                connect_users: None,
            });
        };
        let mut tree = serde_json::Map::new();
        let mut connect_users = None;
        for (key, raw) in top {
            let value = match (key.as_str(), directory_sections(raw)) {
                (DIRECTORY_KEY, Some(sections)) => {
                    let mut directory = serde_json::Map::new();
                    for (name, section) in sections {
                        let value = if name == CONNECT_USERS {
                            connect_users = Some(section.get());
                            Value::Null
                        } else {
                            serde_json::from_str(section.get())?
                        };
                        directory.insert(name, value);
                    }
                    Value::Object(directory)
                }
                _ => serde_json::from_str(raw.get())?,
            };
            tree.insert(key, value);
        }
        Ok(TaskOutput {
            tree: Value::Object(tree),
            connect_users,
        })
    }
}

/// The sections of a `directory` that is an object.
fn directory_sections(raw: &RawValue) -> Option<BTreeMap<String, &RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_users_section_stays_text_and_the_rest_is_a_tree() {
        let text = r#"{"summary":"s","directory":{"connect_users":{"users":[1, 2]},"connect_collections":{"a":1}},"actions":[]}"#;
        let output = TaskOutput::parse(text).expect("JSON");
        assert_eq!(output.connect_users, Some(r#"{"users":[1, 2]}"#));
        assert_eq!(
            output.tree,
            json!({"summary": "s", "directory": {"connect_users": null, "connect_collections": {"a": 1}}, "actions": []})
        );
    }

    #[test]
    fn outputs_that_are_not_split_read_as_before() {
        for text in [r#"{"summary":"s"}"#, "[1]", r#""x""#, r#"{"directory":5}"#] {
            let output = TaskOutput::parse(text).expect("JSON");
            assert_eq!(output.connect_users, None);
            assert_eq!(
                output.tree,
                serde_json::from_str::<Value>(text).expect("JSON")
            );
        }
        assert!(TaskOutput::parse("{").is_err());
        assert!(TaskOutput::parse(r#"{"directory":{"connect_users":[}}"#).is_err());
    }
}
