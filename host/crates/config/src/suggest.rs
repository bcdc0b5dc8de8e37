//! "Did you mean" suggestions by string similarity. It is not a spell checker: it only picks
//! the closest of a few known names, and nothing when none is close.

/// The candidate closest to `input`, if it is close enough to be a likely typo.
pub fn closest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let input = input.to_lowercase();
    candidates
        .iter()
        .map(|&c| {
            let score = strsim::jaro_winkler(&input, &c.to_lowercase());
            let edits = strsim::levenshtein(&input, &c.to_lowercase());
            (c, score, edits)
        })
        .filter(|&(c, score, edits)| score >= 0.8 || (edits <= 2 && edits < c.len()))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _, _)| c)
}

/// `a, b, c` with each name in backticks.
pub(crate) fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"a", "b" or "c"`.
pub(crate) fn quoted_choices(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested() {
        let keys = ["behaviour", "name", "domain", "plugin"];
        assert_eq!(closest("behavour", &keys), Some("behaviour"));
        assert_eq!(closest("Plugin", &keys), Some("plugin"));
        assert_eq!(closest("client_secret", &keys), None);
        assert_eq!(
            closest("redirct", &["button", "redirect", "hidden"]),
            Some("redirect")
        );
    }

    #[test]
    fn choices_read_naturally() {
        assert_eq!(quoted_choices(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
        assert_eq!(quoted_choices(&["a"]), "\"a\"");
    }
}
