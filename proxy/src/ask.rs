//! Aurora's answer to `ASK` and `EXPLAIN ASK`, shared by the native and HTTP sides.
//!
//! The statement is recognised (by `nlq::classify`) on both protocols. Until the natural-language engine is
//! wired in, every ASK gets a ClickHouse-style error that says so plainly; a malformed ASK gets a syntax error
//! that says what was expected.

use crate::codes;

/// Produces Aurora's answer to an ASK statement.
#[derive(Debug, Default)]
pub struct AskAnswerer {
    /// Whether an LLM endpoint is configured (it is not used yet; the message mentions it).
    pub llm_configured: bool,
}

impl AskAnswerer {
    /// The ClickHouse error code and message for `statement`.
    pub fn answer(&self, statement: &Result<nlq::AskStatement, nlq::AskSyntaxError>) -> (i32, String) {
        match statement {
            Err(syntax) => (
                codes::SYNTAX_ERROR,
                format!("Aurora: {syntax}. An ASK statement is ASK 'question' [FORMAT name] [SETTINGS k = v, ...], e.g. ASK 'top 5 tenants by revenue this week'"),
            ),
            Ok(ask) => {
                let verb = if ask.explain { "EXPLAIN ASK" } else { "ASK" };
                let llm = if self.llm_configured {
                    "an LLM endpoint is configured, but"
                } else {
                    "no LLM endpoint is configured (--llm-base-url, --llm-model), and"
                };
                (
                    codes::NOT_IMPLEMENTED,
                    format!("Aurora: {verb} is recognised, but {llm} the natural-language engine is not part of this build yet; the question was not sent anywhere. Write the query in SQL for now"),
                )
            }
        }
    }
}
