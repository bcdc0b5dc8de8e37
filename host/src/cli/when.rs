//! Times for people: how long ago, and how soon.

/// How long ago `at` was, for people: `never`, `40s ago`, `5m ago`, `3h ago`, `2d ago`.
pub(crate) fn ago(at: Option<i64>, now: i64) -> String {
    let Some(at) = at else {
        return "never".to_owned();
    };
    let secs = now.saturating_sub(at).max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// When `at` comes, for people: `now`, `in 5m`, `in 3h`.
pub(crate) fn until(at: i64, now: i64) -> String {
    let secs = at.saturating_sub(now);
    match secs {
        ..=0 => "now".to_owned(),
        1..60 => format!("in {secs}s"),
        60..3600 => format!("in {}m", (secs + 59) / 60),
        3600..86_400 => format!("in {}h", secs / 3600),
        _ => format!("in {}d", secs / 86_400),
    }
}
