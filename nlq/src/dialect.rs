//! Fixing what models write that the server's dialect rejects, before validation.
//!
//! Two mistakes of the local models fail on ClickHouse with code 43 (illegal type of argument) although what
//! they mean is clear, and both are fixed here by wrapping an argument in a conversion — the meaning stays
//! the same on every server, so the rewrite is safe whatever the model intended:
//! - a time-of-day function of a `Date` (`toStartOfDay(today() - 45)`): servers before 20.1 take only a
//!   `DateTime` there, so the argument becomes `toDateTime(…)` (the day's midnight, as newer servers read it).
//!   Arguments known to be `DateTime` (`now()`, a column of that type) are left alone.
//! - a calendar function of a string (`toStartOfMonth('2026-11-01')`): no server converts the string
//!   implicitly, so a day becomes `toDate('…')` and a time `toDateTime('…')`.
//!
//! The result is validated like anything the model writes; nothing here decides what is allowed.

use sqlparser::dialect::ClickHouseDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::catalog::Catalog;
use crate::validate::source::Source;

/// The `toStartOf…` functions of a time of day: their result is a `DateTime`, and before 20.1 so must their
/// argument be (a `Date` is code 43 there).
const STARTS_OF_TIME: &[&str] = &[
    "tostartofday",
    "tostartofhour",
    "tostartofminute",
    "tostartoffiveminute",
    "tostartoftenminutes",
    "tostartoffifteenminutes",
];

/// Other functions that take a `DateTime` only on servers before 20.1.
const PARTS_OF_TIME: &[&str] = &["tohour", "tominute", "tosecond"];

/// Whether a time-of-day function (argument `DateTime` only, before 20.1).
fn time_of_day(name: &str) -> bool {
    STARTS_OF_TIME.contains(&name) || PARTS_OF_TIME.contains(&name)
}

/// Whether a function whose result is a `DateTime` whatever its argument.
fn datetime_result(name: &str) -> bool {
    name == "now" || name == "todatetime" || STARTS_OF_TIME.contains(&name)
}

/// Functions of a date or time that refuse a string on every server.
const CALENDAR: &[&str] = &[
    "tostartofday",
    "tostartofhour",
    "tostartofminute",
    "tostartofmonth",
    "tostartofquarter",
    "tostartofyear",
    "tostartofweek",
    "tomonday",
    "toyyyymm",
    "toyyyymmdd",
    "toyear",
    "tomonth",
    "todayofmonth",
    "todayofweek",
    "tohour",
    "tominute",
];

/// `sql` with the fixes of the module documentation for a server of `version` (major, minor); `None` when
/// nothing needed fixing (or the text does not tokenize: validation reports that).
pub fn adapt(sql: &str, version: (u32, u32), catalog: &Catalog) -> Option<String> {
    let tokens = Tokenizer::new(&ClickHouseDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let source = Source::new(sql, tokens);
    let significant: Vec<usize> = (0..source.tokens.len())
        .filter(|&i| !Source::is_trivia(&source.tokens[i].token))
        .collect();
    let token = |k: usize| &source.tokens[significant[k]].token;
    let start = |k: usize| source.offset(source.tokens[significant[k]].span.start);
    let end = |k: usize| source.offset(source.tokens[significant[k]].span.end);

    // (offset, text to insert), applied from the end.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    for k in 0..significant.len().saturating_sub(2) {
        let Token::Word(word) = token(k) else {
            continue;
        };
        if token(k + 1) != &Token::LParen {
            continue;
        }
        let name = word.value.to_ascii_lowercase();
        let Some(close) = closing_paren(&significant, &source, k + 1) else {
            continue;
        };
        let args = k + 2..close;
        if args.is_empty() || has_top_level_comma(&significant, &source, args.clone()) {
            continue;
        }
        let (Some(open_at), Some(close_at)) = (start(args.start), end(args.end - 1)) else {
            continue;
        };
        let wrapper = if args.len() == 1 && CALENDAR.contains(&name.as_str()) {
            match token(args.start) {
                Token::SingleQuotedString(text) if is_day(text) => Some("toDate"),
                Token::SingleQuotedString(text) if is_time(text) => Some("toDateTime"),
                _ => None,
            }
        } else {
            None
        };
        let wrapper = wrapper.or_else(|| {
            let old = version < (20, 1);
            let known_time = is_datetime(&significant, &source, args.clone(), catalog);
            (old && time_of_day(&name) && !known_time).then_some("toDateTime")
        });
        if let Some(wrapper) = wrapper {
            inserts.push((open_at, format!("{wrapper}(")));
            inserts.push((close_at, ")".to_string()));
        }
    }
    if inserts.is_empty() {
        return None;
    }
    // Nested calls never insert at the same offset (an argument starts and ends at different tokens than the
    // call around it), so ordering by offset is enough.
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = String::with_capacity(sql.len() + inserts.len() * 12);
    let mut at = 0;
    for (offset, text) in inserts {
        out.push_str(&sql[at..offset]);
        out.push_str(&text);
        at = offset;
    }
    out.push_str(&sql[at..]);
    Some(out)
}

/// Index (into `significant`) of the `)` matching the `(` at `open`.
fn closing_paren(significant: &[usize], source: &Source<'_>, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &i) in significant.iter().enumerate().skip(open) {
        match source.tokens[i].token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

fn has_top_level_comma(significant: &[usize], source: &Source<'_>, args: std::ops::Range<usize>) -> bool {
    let mut depth = 0usize;
    for &i in &significant[args] {
        match source.tokens[i].token {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// Whether the argument tokens are a call that returns a `DateTime` (`now()`, `toStartOfDay(…)`) or a (qualified) column that is a `DateTime` in every table of the
/// catalog that has a column of that name.
fn is_datetime(
    significant: &[usize],
    source: &Source<'_>,
    args: std::ops::Range<usize>,
    catalog: &Catalog,
) -> bool {
    let tokens: Vec<&Token> = significant[args.clone()]
        .iter()
        .map(|&i| &source.tokens[i].token)
        .collect();
    match tokens.as_slice() {
        [Token::Word(function), Token::LParen, ..]
            if closing_paren(significant, source, args.start + 1) == Some(args.end - 1) =>
        {
            datetime_result(&function.value.to_ascii_lowercase())
        }
        [.., Token::Word(column)] if tokens.iter().all(|t| matches!(t, Token::Word(_) | Token::Period)) => {
            let mut types = catalog
                .tables
                .iter()
                .flat_map(|t| &t.columns)
                .filter(|c| c.name == column.value)
                .map(|c| c.ty.as_str())
                .peekable();
            types.peek().is_some() && types.all(|ty| ty.contains("DateTime"))
        }
        _ => false,
    }
}

/// `YYYY-MM-DD`.
fn is_day(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// `YYYY-MM-DD hh:mm:ss` (or `T` between them).
fn is_time(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 19
        && is_day(&text[..10])
        && (b[10] == b' ' || b[10] == b'T')
        && b[11..].iter().enumerate().all(|(i, c)| {
            if i == 2 || i == 5 {
                *c == b':'
            } else {
                c.is_ascii_digit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Table};
    use crate::validate::TableName;

    fn catalog() -> Catalog {
        Catalog::new(
            vec![Table {
                name: TableName::new("shop", "orders"),
                engine: "MergeTree".into(),
                columns: vec![
                    Column {
                        name: "order_time".into(),
                        ty: "DateTime".into(),
                        comment: String::new(),
                    },
                    Column {
                        name: "signup_date".into(),
                        ty: "Date".into(),
                        comment: String::new(),
                    },
                ],
            }],
            "18.16.1".into(),
            0,
        )
    }

    fn adapted(sql: &str, version: (u32, u32)) -> String {
        adapt(sql, version, &catalog()).unwrap_or_else(|| sql.to_string())
    }

    #[test]
    fn a_date_in_a_time_of_day_function_becomes_a_datetime_on_old_servers() {
        let sql =
            "SELECT count() FROM shop.orders WHERE order_time >= toStartOfDay(today() - INTERVAL 45 DAY)";
        assert_eq!(
            adapted(sql, (18, 16)),
            "SELECT count() FROM shop.orders WHERE order_time >= toStartOfDay(toDateTime(today() - INTERVAL 45 DAY))"
        );
        assert_eq!(adapted(sql, (23, 8)), sql, "newer servers take a Date there");
        assert_eq!(
            adapted(
                "SELECT toStartOfHour(o.signup_date) FROM shop.orders AS o",
                (18, 16)
            ),
            "SELECT toStartOfHour(toDateTime(o.signup_date)) FROM shop.orders AS o"
        );
    }

    #[test]
    fn datetime_arguments_and_several_arguments_stay() {
        for sql in [
            "SELECT toStartOfHour(order_time) AS h FROM shop.orders GROUP BY h",
            "SELECT toStartOfDay(o.order_time) FROM shop.orders AS o",
            "SELECT toStartOfDay(now())",
            "SELECT toStartOfDay(order_time, 'UTC') FROM shop.orders",
            "SELECT toStartOfMonth(order_time) FROM shop.orders",
        ] {
            assert_eq!(adapt(sql, (18, 16), &catalog()), None, "{sql}");
        }
    }

    #[test]
    fn a_string_in_a_calendar_function_becomes_a_date_or_time() {
        assert_eq!(
            adapted(
                "SELECT count() FROM shop.orders WHERE order_time >= toStartOfMonth('2026-11-01')",
                (23, 8)
            ),
            "SELECT count() FROM shop.orders WHERE order_time >= toStartOfMonth(toDate('2026-11-01'))"
        );
        assert_eq!(
            adapted("SELECT toStartOfDay('2026-11-01 10:00:00')", (18, 16)),
            "SELECT toStartOfDay(toDateTime('2026-11-01 10:00:00'))"
        );
        assert_eq!(adapt("SELECT toYYYYMM('soon')", (18, 16), &catalog()), None);
    }

    #[test]
    fn nested_calls_are_wrapped_inside_out_and_other_text_is_kept() {
        assert_eq!(
            adapted(
                "SELECT toStartOfHour(toStartOfDay(signup_date)) -- a comment\nFROM shop.orders WHERE x = 'é'",
                (18, 16)
            ),
            "SELECT toStartOfHour(toStartOfDay(toDateTime(signup_date))) -- a comment\nFROM shop.orders WHERE x = 'é'"
        );
    }
}
