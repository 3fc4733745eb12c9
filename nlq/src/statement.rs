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
//!
//! The grammar is written twice, on purpose: [`classify_prefix`] reads only the first keywords of bytes that
//! may still be arriving (`prefix`), and the nom parser (`grammar`) reads a whole statement. Property tests
//! check that the two never disagree.

use nom::combinator::all_consuming;
use nom::Parser;

mod grammar;
mod prefix;

pub use prefix::{classify_prefix, reads_only};

use grammar::ask_statement;

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

#[cfg(test)]
#[path = "statement_tests.rs"]
mod tests;
