//! ClickHouse placeholders made readable for sqlparser: untyped `{name}` given the type String, and names
//! that sqlparser reads as ODBC escapes swapped for unused ones of the same length.

use std::collections::{BTreeMap, BTreeSet};

use sqlparser::dialect::ClickHouseDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::source::Source;
use super::ValidationError;

/// The SQL as sqlparser gets it, and as it is kept.
pub(crate) struct Prepared {
    /// What is validated and kept: the model's text, with untyped placeholders given the type String.
    pub(crate) shown: String,
    /// `shown` with placeholder names that sqlparser reads as ODBC escapes (`d`, `t`, `ts`, `fn`) swapped for
    /// unused names of the same length, so every byte offset is the same in both.
    pub(crate) parsed: String,
    /// Swapped name → the name as written.
    pub(super) renamed: BTreeMap<String, String>,
    pub(super) untyped: BTreeSet<String>,
}

/// Prepares ClickHouse placeholders for sqlparser, which reads `{d …}`, `{t …}`, `{ts …}` and `{fn …}` as ODBC
/// escapes and `{name}` not at all, although ClickHouse takes any identifier as a placeholder's name.
pub(crate) fn prepare_placeholders(sql: &str) -> Prepared {
    let unchanged = || Prepared {
        shown: sql.to_string(),
        parsed: sql.to_string(),
        renamed: BTreeMap::new(),
        untyped: BTreeSet::new(),
    };
    let Ok(tokens) = Tokenizer::new(&ClickHouseDialect {}, sql).tokenize_with_location() else {
        return unchanged();
    };
    let source = Source::new(sql, tokens);
    let significant: Vec<&TokenWithSpan> = source
        .tokens
        .iter()
        .filter(|t| !Source::is_trivia(&t.token))
        .collect();
    let used: BTreeSet<String> = significant
        .iter()
        .filter_map(|t| match &t.token {
            Token::Word(w) => Some(w.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    // (byte offset, bytes replaced, text, whether only the parsed form gets it)
    let mut edits: Vec<(usize, usize, String, bool)> = Vec::new();
    let mut renamed = BTreeMap::new();
    let mut untyped = BTreeSet::new();
    let mut swaps: BTreeMap<String, String> = BTreeMap::new();
    for window in significant.windows(3) {
        let [open, name, next] = window else { continue };
        let Token::Word(word) = &name.token else { continue };
        if open.token != Token::LBrace || word.quote_style.is_some() {
            continue;
        }
        let (Some(start), Some(end)) = (source.offset(name.span.start), source.offset(name.span.end)) else {
            continue;
        };
        if !matches!(next.token, Token::RBrace | Token::Colon) {
            continue;
        }
        if is_odbc_escape(&word.value) {
            let swap = match swaps.get(&word.value) {
                Some(swap) => swap.clone(),
                None => {
                    let taken: BTreeSet<&String> = swaps.values().collect();
                    let Some(swap) = unused_name(word.value.len(), &used, &taken) else {
                        continue;
                    };
                    swaps.insert(word.value.clone(), swap.clone());
                    renamed.insert(swap.clone(), word.value.clone());
                    swap
                }
            };
            edits.push((start, end - start, swap, true));
        }
        if next.token == Token::RBrace {
            let Some(close) = source.offset(next.span.start) else {
                continue;
            };
            edits.push((close, 0, ":String".into(), false));
            untyped.insert(word.value.clone());
        }
    }
    if edits.is_empty() {
        return unchanged();
    }
    let apply = |parsed: bool| {
        let mut out = String::with_capacity(sql.len() + 8 * edits.len());
        let mut cursor = 0;
        for (at, len, text, parse_only) in &edits {
            out.push_str(&sql[cursor..*at]);
            if *parse_only && !parsed {
                out.push_str(&sql[*at..*at + *len]);
            } else {
                out.push_str(text);
            }
            cursor = at + len;
        }
        out.push_str(&sql[cursor..]);
        out
    };
    Prepared {
        shown: apply(false),
        parsed: apply(true),
        renamed,
        untyped,
    }
}

/// sqlparser reads `{d …}`, `{t …}`, `{ts …}` and `{fn …}` as ODBC escapes, even in the ClickHouse dialect.
fn is_odbc_escape(name: &str) -> bool {
    ["d", "t", "ts", "fn"]
        .iter()
        .any(|e| name.eq_ignore_ascii_case(e))
}

/// A lower-case name of `len` letters that is no word of the SQL, no ODBC escape and not yet taken.
fn unused_name(len: usize, used: &BTreeSet<String>, taken: &BTreeSet<&String>) -> Option<String> {
    let letters = || ('a'..='z').map(String::from);
    let candidates: Box<dyn Iterator<Item = String>> = match len {
        1 => Box::new(letters()),
        2 => Box::new(letters().flat_map(move |a| letters().map(move |b| format!("{a}{b}")))),
        _ => return None,
    };
    candidates
        .into_iter()
        .find(|c| !is_odbc_escape(c) && !used.contains(c) && !taken.contains(c))
}

pub(super) fn odbc_name_error(name: &str) -> ValidationError {
    ValidationError::MalformedPlaceholder {
        text: format!("{{{name} …}}"),
        reason:
            "ODBC escapes ({d '…'}, {t '…'}, {ts '…'}, {fn …}) are not ClickHouse SQL; write toDate('…'), \
                 toDateTime('…') or the function itself"
                .into(),
    }
}
