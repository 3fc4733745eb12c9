//! The nom grammar of a whole `ASK` statement, with errors that say in words what was expected.

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_until, take_while, take_while1};
use nom::character::complete::{char, multispace1};
use nom::combinator::{cut, map, opt, recognize, value};
use nom::error::{context, ContextError, ErrorKind, ParseError};
use nom::multi::{many0, separated_list1};
use nom::sequence::{delimited, pair, preceded, terminated};
use nom::{IResult, Parser};

use super::{AskStatement, AskSyntaxError, SettingValue};

/// Parse error that remembers the innermost `context` label, for a message in words.
#[derive(Debug)]
pub(super) struct GrammarError<'a> {
    input: &'a str,
    expected: &'static str,
}

impl<'a> GrammarError<'a> {
    pub(super) fn into_syntax_error(self, whole: &str) -> AskSyntaxError {
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

pub(super) fn ask_statement(i: &str) -> Res<'_, AskStatement> {
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
