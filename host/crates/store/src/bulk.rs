//! Multi-row statements, written once for every bulk writer of the store: how many rows a
//! statement takes, its numbered placeholders, and the rule that the last of two writes to
//! one key wins. Not what any writer writes (`batch_writer`, the Connect syncs).

use std::collections::HashMap;

/// Parameters per statement. Far under SQLite's 32,766 and PostgreSQL's 65,535 on purpose:
/// sqlx binds each SQLite parameter by looking its name up (`sqlite3_bind_parameter_name`,
/// a linear scan), so a statement's binding costs the square of its parameters — at 9,000
/// a 100,000-user sync spent two thirds of its time there. A few hundred keep that small
/// and the round trips few.
pub(crate) const MAX_PARAMETERS: usize = 320;
/// Rows per statement, whatever the width.
pub(crate) const MAX_ROWS: usize = 320;

/// `rows`, keeping only the last of each key (in their order): one statement may not
/// upsert a key twice (PostgreSQL refuses), and one by one the last write would win.
pub(crate) fn last_per_key<T: Copy, K: std::hash::Hash + Eq>(
    rows: &[T],
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut last: HashMap<K, usize> = HashMap::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        last.insert(key(row), index);
    }
    rows.iter()
        .enumerate()
        .filter(|(index, row)| last.get(&key(row)) == Some(index))
        .map(|(_, row)| *row)
        .collect()
}

/// A statement whose text this module built: fixed SQL and numbered placeholders only,
/// every value is bound.
pub(crate) fn statement(
    sql: String,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
}

pub(crate) fn rows_per_statement(width: usize) -> usize {
    (MAX_PARAMETERS / width.max(1)).clamp(1, MAX_ROWS)
}

/// `$first, $first+1, …`: `count` numbered placeholders.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `count` rows of `width` numbered placeholders, `(…$k…<tail>)`, numbered after the
/// statement's leading parameters: `tail` may name them as `$0` (the first) and `$00` (the
/// second), which are renumbered to `$1` and `$2`, the rows starting at `$1 + leading`.
pub(crate) fn value_rows(width: usize, count: usize, tail: &str) -> String {
    let leading = usize::from(tail.contains("$0")) + usize::from(tail.contains("$00"));
    let tail = tail.replace("$00", "$2").replace("$0", "$1");
    (0..count)
        .map(|row| {
            let first = leading + 1 + row * width;
            format!("({}{tail})", placeholders(first, width))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rows_number_the_leading_parameters_first() {
        assert_eq!(value_rows(2, 2, ""), "($1, $2), ($3, $4)");
        assert_eq!(value_rows(2, 2, ", $0"), "($2, $3, $1), ($4, $5, $1)");
        assert_eq!(value_rows(1, 2, ", $0, $00"), "($3, $1, $2), ($4, $1, $2)");
    }

    #[test]
    fn the_last_write_to_a_key_wins() {
        let rows = [(1, "a", "x"), (2, "a", "y"), (1, "a", "z"), (1, "b", "w")];
        assert_eq!(
            last_per_key(&rows, |r| (r.0, r.1)),
            vec![(2, "a", "y"), (1, "a", "z"), (1, "b", "w")]
        );
    }

    #[test]
    fn statements_stay_under_the_parameter_limits() {
        assert_eq!(rows_per_statement(1), MAX_ROWS);
        assert!(rows_per_statement(40) * 40 <= MAX_PARAMETERS);
    }
}
