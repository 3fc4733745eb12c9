//! Recognition of Aurora's own statements inside the SQL a client sends.
//!
//! Both sides of the proxy (native and HTTP) call [`classify`] on every query text. Only two statement shapes
//! belong to Aurora:
//!
//! ```text
//! [EXPLAIN] ASK '<question>' [FORMAT <name>] [SETTINGS k = v, ...] [;]
//! ```
//!
//! and, for clients that parse SQL before sending it (clickhouse-client refuses `ASK '…'` locally), the same as a
//! table function in the one query shape Aurora claims:
//!
//! ```text
//! SELECT * FROM ask('<question>') [FORMAT <name>] [SETTINGS k = v, ...] [;]
//! SELECT * FROM explain_ask('<question>') [FORMAT <name>] [SETTINGS k = v, ...] [;]
//! ```
//!
//! (ClickHouse has no table functions of these names, so no working SQL changes meaning.)
//! Keywords in any case, leading whitespace and SQL comments (`-- …`, `# …`, `/* … */`) allowed, the question a
//! ClickHouse string literal (`''` and backslash escapes). Everything else is SQL and the caller forwards it byte
//! for byte. A text that starts with the `ASK` keyword but does not follow the grammar is an [`AskSyntaxError`]:
//! it is not valid SQL either, and the user deserves to be told what Aurora expected.

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_until, take_while, take_while1};
use nom::character::complete::{char, multispace1};
use nom::combinator::{all_consuming, cut, map, opt, recognize, value};
use nom::error::{context, ContextError, ErrorKind, ParseError};
use nom::multi::{many0, separated_list1};
use nom::sequence::{delimited, pair, preceded, terminated};
use nom::{IResult, Parser};

/// What a query text is, as far as Aurora is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// Ordinary SQL: forward it untouched.
    Sql,
    /// `ASK` or `EXPLAIN ASK`: Aurora answers it.
    Ask(AskStatement),
}

/// A parsed `ASK` / `EXPLAIN ASK` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskStatement {
    /// `EXPLAIN ASK`: describe the generated query instead of running it.
    pub explain: bool,
    /// The question with the string literal's escapes resolved.
    pub question: String,
    /// `FORMAT <name>` if given: the output format the client asked for.
    pub format: Option<String>,
    /// `SETTINGS k = v, …` in the order written.
    pub settings: Vec<(String, SettingValue)>,
}

/// The value of one `SETTINGS` entry, kept as the literal's meaning rather than its spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    /// A number as written (`10000`, `0.5`, `-1`).
    Number(String),
    /// A string literal with escapes resolved.
    String(String),
    /// A bare word such as `true`, `false` or an enum value.
    Word(String),
}

/// A text that starts like an `ASK` statement but does not follow its grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in ASK statement at position {position}: expected {expected}")]
pub struct AskSyntaxError {
    /// Byte offset into the query text where parsing stopped.
    pub position: usize,
    /// What the grammar expected there, in words.
    pub expected: String,
}

/// The outcome of looking only at the beginning of a query text (for bodies that are still arriving).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// The text is SQL whatever follows.
    Sql,
    /// The text starts with `ASK` or `EXPLAIN ASK`: read it whole and call [`classify`].
    Ask,
    /// Not enough bytes to tell yet.
    NeedMore,
}

/// Classifies a complete query text.
pub fn classify(text: &[u8]) -> Result<Statement, AskSyntaxError> {
    if classify_prefix(text, true) != Prefix::Ask {
        return Ok(Statement::Sql);
    }
    let text = std::str::from_utf8(text).map_err(|e| AskSyntaxError {
        position: e.valid_up_to(),
        expected: "a UTF-8 question".to_string(),
    })?;
    match all_consuming(ask_statement).parse(text) {
        Ok((_, statement)) => Ok(Statement::Ask(statement)),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e.into_syntax_error(text)),
        Err(nom::Err::Incomplete(_)) => Err(AskSyntaxError {
            position: text.len(),
            expected: "more input".to_string(),
        }),
    }
}

/// Looks at the first keywords of a possibly incomplete text. `complete` says no more bytes will follow.
pub fn classify_prefix(text: &[u8], complete: bool) -> Prefix {
    let mut rest = text;
    let mut saw_explain = false;
    loop {
        let (word, after) = match next_word(rest, complete) {
            Step::Word(word, after) => (word, after),
            Step::NeedMore => return Prefix::NeedMore,
            Step::End => return Prefix::Sql,
        };
        if word.eq_ignore_ascii_case(b"ask") {
            return Prefix::Ask;
        }
        if word.eq_ignore_ascii_case(b"explain") && !saw_explain {
            saw_explain = true;
            rest = after;
            continue;
        }
        if word.eq_ignore_ascii_case(b"select") && !saw_explain {
            return table_function_prefix(after, complete);
        }
        return Prefix::Sql;
    }
}

enum Step<'a> {
    /// A word (possibly empty: the next byte is punctuation) and what follows it.
    Word(&'a [u8], &'a [u8]),
    NeedMore,
    End,
}

/// Skips trivia and reads one word.
fn next_word(text: &[u8], complete: bool) -> Step<'_> {
    let rest = match skip_trivia(text) {
        Some(rest) => rest,
        None if complete => return Step::End,
        None => return Step::NeedMore,
    };
    let word_len = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    if word_len == rest.len() && !complete {
        // The word may go on in bytes we have not seen.
        return Step::NeedMore;
    }
    Step::Word(&rest[..word_len], &rest[word_len..])
}

/// After `SELECT`: is it `* FROM ask(` or `* FROM explain_ask(`?
fn table_function_prefix(mut rest: &[u8], complete: bool) -> Prefix {
    for expected in [&b"*"[..], b"from", b"ask|explain_ask", b"("] {
        if expected.len() == 1 {
            match skip_trivia(rest) {
                Some([b, tail @ ..]) if *b == expected[0] => rest = tail,
                Some(_) => return Prefix::Sql,
                None if complete => return Prefix::Sql,
                None => return Prefix::NeedMore,
            }
            continue;
        }
        match next_word(rest, complete) {
            Step::Word(word, after) => {
                let matches = expected
                    .split(|b| *b == b'|')
                    .any(|w| word.eq_ignore_ascii_case(w));
                if !matches {
                    return Prefix::Sql;
                }
                rest = after;
            }
            Step::NeedMore => return Prefix::NeedMore,
            Step::End => return Prefix::Sql,
        }
    }
    Prefix::Ask
}

/// Skips whitespace and comments; `None` when the text ends (or may end) inside them.
fn skip_trivia(mut rest: &[u8]) -> Option<&[u8]> {
    loop {
        match rest {
            [] => return None,
            [b, tail @ ..] if b.is_ascii_whitespace() => rest = tail,
            [b'-', b'-', tail @ ..] | [b'#', tail @ ..] => {
                let end = tail.iter().position(|b| *b == b'\n')?;
                rest = &tail[end + 1..];
            }
            [b'/', b'*', tail @ ..] => {
                let end = tail.windows(2).position(|w| w == b"*/")?;
                rest = &tail[end + 2..];
            }
            [b'-'] | [b'/'] => return None,
            _ => return Some(rest),
        }
    }
}

/// Parse error that remembers the innermost `context` label, for a message in words.
#[derive(Debug)]
struct GrammarError<'a> {
    input: &'a str,
    expected: &'static str,
}

impl<'a> GrammarError<'a> {
    fn into_syntax_error(self, whole: &str) -> AskSyntaxError {
        AskSyntaxError {
            position: whole.len() - self.input.len(),
            expected: self.expected.to_string(),
        }
    }
}

impl<'a> ParseError<&'a str> for GrammarError<'a> {
    fn from_error_kind(input: &'a str, kind: ErrorKind) -> Self {
        let expected = match kind {
            ErrorKind::Eof => "the end of the statement",
            _ => "valid ASK syntax",
        };
        GrammarError { input, expected }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

impl<'a> ContextError<&'a str> for GrammarError<'a> {
    fn add_context(input: &'a str, ctx: &'static str, other: Self) -> Self {
        // Keep the label closest to where parsing stopped.
        if other.input.len() <= input.len() && other.expected != "valid ASK syntax" {
            other
        } else {
            GrammarError { input, expected: ctx }
        }
    }
}

type Res<'a, T> = IResult<&'a str, T, GrammarError<'a>>;

/// Whitespace and comments, possibly none.
fn trivia(i: &str) -> Res<'_, ()> {
    value(
        (),
        many0(alt((
            value((), multispace1),
            value((), (alt((tag("--"), tag("#"))), take_while(|c| c != '\n'))),
            value((), (tag("/*"), take_until("*/"), tag("*/"))),
        ))),
    )
    .parse(i)
}

/// A keyword that is not the start of a longer identifier.
fn keyword<'a>(word: &'static str) -> impl Parser<&'a str, Output = &'a str, Error = GrammarError<'a>> {
    terminated(
        tag_no_case(word),
        nom::combinator::not(nom::character::complete::satisfy(is_ident_char)),
    )
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn identifier(i: &str) -> Res<'_, &str> {
    recognize(pair(
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(is_ident_char),
    ))
    .parse(i)
}

/// A ClickHouse string literal: `'…'` with `''` and backslash escapes.
fn string_literal(i: &str) -> Res<'_, String> {
    let (mut rest, _) = char('\'').parse(i)?;
    let mut out = String::new();
    loop {
        let mut chars = rest.chars();
        match chars.next() {
            None => {
                return Err(nom::Err::Failure(GrammarError {
                    input: rest,
                    expected: "the closing quote of the string",
                }))
            }
            Some('\'') => {
                if chars.as_str().starts_with('\'') {
                    out.push('\'');
                    rest = &chars.as_str()[1..];
                } else {
                    return Ok((chars.as_str(), out));
                }
            }
            Some('\\') => {
                let escaped = chars.next().ok_or(nom::Err::Failure(GrammarError {
                    input: rest,
                    expected: "a character after the backslash",
                }))?;
                match escaped {
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    '0' => out.push('\0'),
                    'a' => out.push('\u{7}'),
                    'v' => out.push('\u{b}'),
                    'x' => {
                        let hex = chars
                            .as_str()
                            .get(..2)
                            .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
                        let Some(hex) = hex else {
                            return Err(nom::Err::Failure(GrammarError {
                                input: chars.as_str(),
                                expected: "two hexadecimal digits after \\x",
                            }));
                        };
                        let byte = u8::from_str_radix(hex, 16).unwrap_or_default();
                        if !byte.is_ascii() {
                            return Err(nom::Err::Failure(GrammarError {
                                input: chars.as_str(),
                                expected: "an ASCII character (\\x00 to \\x7f)",
                            }));
                        }
                        out.push(char::from(byte));
                        chars = chars.as_str()[2..].chars();
                    }
                    other => out.push(other),
                }
                rest = chars.as_str();
            }
            Some(c) => {
                out.push(c);
                rest = chars.as_str();
            }
        }
    }
}

fn number(i: &str) -> Res<'_, &str> {
    recognize((
        opt(alt((char('-'), char('+')))),
        take_while1(|c: char| c.is_ascii_digit()),
        opt(pair(char('.'), take_while(|c: char| c.is_ascii_digit()))),
    ))
    .parse(i)
}

fn setting_value(i: &str) -> Res<'_, SettingValue> {
    alt((
        map(string_literal, SettingValue::String),
        map(number, |n| SettingValue::Number(n.to_string())),
        map(identifier, |w| SettingValue::Word(w.to_string())),
    ))
    .parse(i)
}

fn setting(i: &str) -> Res<'_, (String, SettingValue)> {
    map(
        (
            context("a setting name", identifier),
            trivia,
            context("'=' after the setting name", char('=')),
            trivia,
            context("a setting value (number, string or word)", setting_value),
        ),
        |(name, _, _, _, value)| (name.to_string(), value),
    )
    .parse(i)
}

enum Clause {
    Format(String),
    Settings(Vec<(String, SettingValue)>),
}

fn format_clause(i: &str) -> Res<'_, Clause> {
    map(
        preceded(
            (keyword("format"), trivia),
            cut(context("a format name after FORMAT", identifier)),
        ),
        |name| Clause::Format(name.to_string()),
    )
    .parse(i)
}

fn settings_clause(i: &str) -> Res<'_, Clause> {
    map(
        preceded(
            (keyword("settings"), trivia),
            cut(separated_list1(delimited(trivia, char(','), trivia), setting)),
        ),
        Clause::Settings,
    )
    .parse(i)
}

/// `[EXPLAIN] ASK '…'`.
fn keyword_form(i: &str) -> Res<'_, (bool, String)> {
    let (i, explain) = opt(terminated(keyword("explain"), trivia)).parse(i)?;
    let (i, _) = keyword("ask").parse(i)?;
    let (i, _) = trivia(i)?;
    let (i, question) = cut(context(
        "the question as a string literal, e.g. ASK 'top 5 tenants'",
        string_literal,
    ))
    .parse(i)?;
    Ok((i, (explain.is_some(), question)))
}

/// `SELECT * FROM ask('…')` / `SELECT * FROM explain_ask('…')`.
fn table_function_form(i: &str) -> Res<'_, (bool, String)> {
    let (i, _) = (
        keyword("select"),
        trivia,
        char('*'),
        trivia,
        keyword("from"),
        trivia,
    )
        .parse(i)?;
    let (i, explain) = alt((value(true, keyword("explain_ask")), value(false, keyword("ask")))).parse(i)?;
    let (i, _) = (trivia, char('('), trivia).parse(i)?;
    let (i, question) = cut(context(
        "the question as a string literal, e.g. SELECT * FROM ask('top 5 tenants')",
        string_literal,
    ))
    .parse(i)?;
    let (i, _) = trivia(i)?;
    let (i, _) = cut(context("')' after the question", char(')'))).parse(i)?;
    Ok((i, (explain, question)))
}

fn ask_statement(i: &str) -> Res<'_, AskStatement> {
    let (i, _) = trivia(i)?;
    let (i, (explain, question)) = alt((table_function_form, keyword_form)).parse(i)?;
    let (i, clauses) = many0(preceded(trivia, alt((format_clause, settings_clause)))).parse(i)?;
    let (i, _) = trivia(i)?;
    let (i, _) = opt(char(';')).parse(i)?;
    let (i, _) = context("FORMAT, SETTINGS or the end of the statement", trivia_then_end).parse(i)?;

    let mut statement = AskStatement {
        explain,
        question,
        format: None,
        settings: Vec::new(),
    };
    for clause in clauses {
        match clause {
            Clause::Format(name) if statement.format.is_none() => statement.format = Some(name),
            Clause::Settings(list) if statement.settings.is_empty() => statement.settings = list,
            Clause::Format(_) | Clause::Settings(_) => {
                return Err(nom::Err::Failure(GrammarError {
                    input: i,
                    expected: "each of FORMAT and SETTINGS at most once",
                }))
            }
        }
    }
    Ok((i, statement))
}

fn trivia_then_end(i: &str) -> Res<'_, ()> {
    let (i, _) = trivia(i)?;
    if i.is_empty() {
        Ok((i, ()))
    } else {
        Err(nom::Err::Error(GrammarError::from_error_kind(i, ErrorKind::Eof)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(text: &str) -> AskStatement {
        match classify(text.as_bytes()) {
            Ok(Statement::Ask(a)) => a,
            other => panic!("{text:?} classified as {other:?}"),
        }
    }

    #[test]
    fn plain_sql_is_sql() {
        for sql in [
            "SELECT 1",
            "select 'ASK' as ask",
            "ASKED",
            "  -- ASK 'x'\nSELECT 1",
            "/* ASK 'x' */ SELECT 1",
            "EXPLAIN SELECT 1",
            "EXPLAIN EXPLAIN ASK 'x'",
            "",
            "   ",
            "INSERT INTO ask VALUES",
        ] {
            assert_eq!(classify(sql.as_bytes()), Ok(Statement::Sql), "{sql:?}");
        }
    }

    #[test]
    fn ask_in_any_case_with_comments() {
        let a = ask("  /* c */ -- line\n aSk 'top 5 tenants by revenue'  ;  ");
        assert!(!a.explain);
        assert_eq!(a.question, "top 5 tenants by revenue");
        let a = ask("# shell-style comment\nExplain\n\tASK'what''s up'");
        assert!(a.explain);
        assert_eq!(a.question, "what's up");
    }

    #[test]
    fn escapes_are_resolved() {
        assert_eq!(ask(r"ASK 'a\'b\\c\n\x41\q'").question, "a'b\\c\nAq");
    }

    #[test]
    fn format_and_settings_in_either_order() {
        let a = ask("ASK 'q' FORMAT JSONEachRow SETTINGS max_rows = 10, mode='fast', strict=true");
        assert_eq!(a.format.as_deref(), Some("JSONEachRow"));
        assert_eq!(
            a.settings,
            vec![
                ("max_rows".into(), SettingValue::Number("10".into())),
                ("mode".into(), SettingValue::String("fast".into())),
                ("strict".into(), SettingValue::Word("true".into())),
            ]
        );
        let b = ask("ask 'q' settings x=-1.5 format TSV;");
        assert_eq!(b.format.as_deref(), Some("TSV"));
        assert_eq!(
            b.settings,
            vec![("x".into(), SettingValue::Number("-1.5".into()))]
        );
    }

    #[test]
    fn malformed_ask_is_an_error_that_says_what_was_expected() {
        let e = classify(b"ASK top tenants").unwrap_err();
        assert_eq!(e.position, 4);
        assert!(e.expected.contains("string literal"), "{e}");

        let e = classify(b"ASK 'unterminated").unwrap_err();
        assert!(e.expected.contains("closing quote"), "{e}");

        let e = classify(b"ASK 'q' LIMIT 5").unwrap_err();
        assert_eq!(e.position, 8);
        assert!(e.expected.contains("end of the statement"), "{e}");

        let e = classify(b"ASK 'q' FORMAT").unwrap_err();
        assert!(e.expected.contains("format name"), "{e}");

        let e = classify(b"ASK 'q' FORMAT TSV FORMAT CSV").unwrap_err();
        assert!(e.expected.contains("at most once"), "{e}");

        let e = classify(b"ASK '\xff'").unwrap_err();
        assert!(e.expected.contains("UTF-8"), "{e}");
    }

    #[test]
    fn prefix_classification_waits_for_enough_bytes() {
        assert_eq!(classify_prefix(b"", false), Prefix::NeedMore);
        assert_eq!(classify_prefix(b"  AS", false), Prefix::NeedMore);
        assert_eq!(classify_prefix(b"  ASK", false), Prefix::NeedMore);
        assert_eq!(classify_prefix(b"  ASK ", false), Prefix::Ask);
        assert_eq!(classify_prefix(b"ASKED ", false), Prefix::Sql);
        assert_eq!(classify_prefix(b"/* unfinished", false), Prefix::NeedMore);
        assert_eq!(classify_prefix(b"-", false), Prefix::NeedMore);
        assert_eq!(classify_prefix(b"explain ", false), Prefix::NeedMore);
        assert_eq!(classify_prefix(b"explain ask'", false), Prefix::Ask);
        assert_eq!(
            classify_prefix(b"INSERT INTO t FORMAT TSV\n1\t2", false),
            Prefix::Sql
        );
        assert_eq!(classify_prefix(b"ASK", true), Prefix::Ask);
    }

    #[test]
    fn table_function_spelling_is_ask_too() {
        let a = ask("SELECT * FROM ask('top 5 tenants') FORMAT JSON SETTINGS aurora_refresh_catalog = 1");
        assert!(!a.explain);
        assert_eq!(a.question, "top 5 tenants");
        assert_eq!(a.format.as_deref(), Some("JSON"));
        let e = ask("/* c */ select *\nfrom Explain_Ask ( 'why?' );");
        assert!(e.explain);
        assert_eq!(e.question, "why?");
        for sql in [
            "SELECT * FROM ask",
            "SELECT * FROM asks('x')",
            "SELECT * FROM db.ask('x')",
            "SELECT a FROM ask('x')",
            "SELECT 1",
            "EXPLAIN SELECT * FROM ask('x')",
        ] {
            assert_eq!(classify(sql.as_bytes()), Ok(Statement::Sql), "{sql}");
        }
        let err = classify(b"SELECT * FROM ask(42)").unwrap_err();
        assert!(err.expected.contains("string literal"), "{err}");
        let err = classify(b"SELECT * FROM ask('x' LIMIT 1").unwrap_err();
        assert!(err.expected.contains("')'"), "{err}");
        assert_eq!(classify_prefix(b"SELECT * FR", false), Prefix::NeedMore);
        assert_eq!(classify_prefix(b"SELECT * FROM ask", false), Prefix::NeedMore);
        assert_eq!(classify_prefix(b"SELECT * FROM ask (", false), Prefix::Ask);
        assert_eq!(classify_prefix(b"SELECT count() FROM", false), Prefix::Sql);
        assert_eq!(classify_prefix(b"SELECT 1", true), Prefix::Sql);
    }

    /// The hand-written prefix classifier and the nom grammar are one grammar: generated texts (keywords, comments,
    /// literals, clauses and noise in any order) must never make them disagree.
    mod agreement {
        use super::*;
        use proptest::prelude::*;

        const PIECES: &[&str] = &[
            "ask", "ASK", "Ask", "explain", "EXPLAIN", "select", "SELECT", "*", "from", "FROM", "ask(", "explain_ask",
            "(", ")", "'q'", "'it''s'", "'a\\'b'", " ", "  ", "\n", "\t", "-- c\n", "# c\n", "/* c */", "/*", "--",
            "-", "FORMAT", "JSON", "SETTINGS", "a = 1", "b = 'x'", ",", ";", "x", "1", "asking", "selection", "db.",
        ];

        fn text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                4 => proptest::sample::select(PIECES).prop_map(str::to_string),
                1 => "[ -~]{0,4}",
            ];
            proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

            /// Whatever the grammar parses as an ASK, the prefix classifier sends to the parser (no ASK hidden).
            #[test]
            fn what_the_grammar_parses_the_prefix_claims(t in text()) {
                if all_consuming(ask_statement).parse(t.as_str()).is_ok() {
                    prop_assert_eq!(classify_prefix(t.as_bytes(), true), Prefix::Ask);
                    prop_assert!(matches!(classify(t.as_bytes()), Ok(Statement::Ask(_))));
                }
            }

            /// A text read as SQL is never a statement the grammar accepts.
            #[test]
            fn sql_by_prefix_is_never_an_ask(t in text()) {
                if classify_prefix(t.as_bytes(), true) == Prefix::Sql {
                    prop_assert!(all_consuming(ask_statement).parse(t.as_str()).is_err());
                }
            }

            /// Bytes still arriving never change a definite answer: every prefix says the same or "need more".
            #[test]
            fn a_prefix_never_contradicts_the_whole_text(t in text()) {
                let whole = classify_prefix(t.as_bytes(), true);
                for end in 0..=t.len() {
                    let part = classify_prefix(&t.as_bytes()[..end], false);
                    prop_assert!(part == Prefix::NeedMore || part == whole, "{:?} of {:?}: {:?} vs {:?}", &t[..end], t, part, whole);
                }
            }
        }
    }
}
