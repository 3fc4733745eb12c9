//! Recognising `ASK` / `EXPLAIN ASK` in an HTTP request without holding up ordinary SQL.
//!
//! ClickHouse's query text is the `query` URL parameter followed by the request body (when the parameter is
//! there, the body usually carries data, as in `INSERT … FORMAT TSV`). The proxy classifies that text with the
//! same grammar as the native side, reading only as much of the body as [`nlq::classify_prefix`] needs to tell
//! (a few bytes in practice, at most [`PEEK_LIMIT`]). SQL goes on with the peeked frames followed by the rest
//! of the stream, untouched. Only a text that starts with `ASK` is read whole (up to [`ASK_LIMIT`]).

use std::collections::VecDeque;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Frame, Incoming};
use hyper::header::CONTENT_ENCODING;
use hyper::http::request::Parts;
use nlq::Prefix;

use super::error::HttpError;
use super::params;

/// The most body bytes read while the statement's first keywords are still unclear (long leading comments).
/// Past it the text is treated as SQL: an `ASK` is never hidden that far.
pub const PEEK_LIMIT: usize = 64 << 10;
/// The largest ASK statement body the proxy reads into memory.
pub const ASK_LIMIT: usize = 1 << 20;

/// ClickHouse paths that never carry a statement: relayed without looking at them.
pub const STATIC_PATHS: &[&str] = &["/ping", "/replicas_status", "/play"];

/// What a request turned out to be.
pub enum Inspected {
    /// SQL (or no statement at all): forward the body, starting with the frames already read.
    Sql {
        peeked: VecDeque<Frame<Bytes>>,
        rest: Incoming,
        /// The statement only reads ([`nlq::reads_only`]); `false` when its text cannot be read (a compressed
        /// body without a `query` parameter).
        reads: bool,
        /// `KILL QUERY … WHERE query_id = '<id>'`: the id.
        kills: Option<String>,
    },
    /// An Aurora statement, parsed or not.
    Ask(Result<nlq::AskStatement, nlq::AskSyntaxError>),
}

/// The classification of one statement text as it arrives: the `query` parameter, then body frames. Pure and
/// synchronous, so the decision [`inspect`] makes on a live body is the one tests and the fuzzer check on bytes
/// (`fuzz/fuzz_targets/http_classifier.rs`).
#[derive(Debug)]
pub struct Classifier {
    text: Vec<u8>,
    /// Body bytes taken so far.
    body_bytes: usize,
    /// Whether the body is the statement's text (not compressed): otherwise only the parameter counts.
    body_is_text: bool,
}

/// What [`Classifier::verdict`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// SQL: forward everything, untouched.
    Sql,
    /// An Aurora statement: read the rest of the body (up to [`ASK_LIMIT`]) and parse it.
    Ask,
    /// Read one more body frame.
    NeedMore,
}

impl Classifier {
    pub fn new(query_param: Vec<u8>, body_is_text: bool) -> Classifier {
        Classifier {
            text: query_param,
            body_bytes: 0,
            body_is_text,
        }
    }

    /// The decision with the bytes so far; `body_done` when the body has ended.
    pub fn verdict(&self, body_done: bool) -> Verdict {
        match nlq::classify_prefix(&self.text, body_done || !self.body_is_text) {
            Prefix::Sql => Verdict::Sql,
            Prefix::Ask => Verdict::Ask,
            // An ASK is never hidden behind this much (long leading comments): the text is SQL.
            Prefix::NeedMore if self.body_bytes >= PEEK_LIMIT => Verdict::Sql,
            Prefix::NeedMore => Verdict::NeedMore,
        }
    }

    /// Takes one body frame's bytes; refuses an ASK text over [`ASK_LIMIT`].
    pub fn push(&mut self, data: &[u8]) -> Result<(), HttpError> {
        self.body_bytes = self.body_bytes.saturating_add(data.len());
        if self.body_bytes > ASK_LIMIT {
            return Err(HttpError::AskTooLarge { limit: ASK_LIMIT });
        }
        if self.body_is_text {
            self.text.extend_from_slice(data);
        }
        Ok(())
    }

    /// Whether the body's frames are part of the text.
    pub fn body_is_text(&self) -> bool {
        self.body_is_text
    }

    /// The statement, once [`Verdict::Ask`] was reached and the whole text has been pushed.
    pub fn finish(self) -> Result<nlq::AskStatement, nlq::AskSyntaxError> {
        match nlq::classify(&self.text) {
            Ok(nlq::Statement::Ask(ask)) => Ok(ask),
            Err(syntax) => Err(syntax),
            // `classify_prefix` saw ASK, so this does not happen; if the grammars ever disagree, SQL is safe only
            // when nothing was consumed, and an error is the honest answer otherwise.
            Ok(nlq::Statement::Sql) => Err(nlq::AskSyntaxError {
                position: 0,
                expected: "an ASK statement".to_string(),
            }),
        }
    }
}

/// Classifies the request's statement, reading as little of `body` as possible. The caller bounds its time
/// (`http_receive_timeout`).
///
/// # Cancellation safety
/// Not cancellation safe: frames read before the future is dropped are lost with it (and with the request).
pub async fn inspect(parts: &Parts, mut body: Incoming) -> Result<Inspected, HttpError> {
    if STATIC_PATHS.contains(&parts.uri.path()) {
        return Ok(sql(VecDeque::new(), body, true, None));
    }
    let query_string = parts.uri.query().unwrap_or("");
    let query_param = params::param(query_string, "query")
        .map(|q| q.into_owned())
        .unwrap_or_default();
    // A compressed body is not text the proxy can read (it does not decompress): only the parameter counts.
    let mut classifier = Classifier::new(query_param, body_is_plain(parts, query_string));
    let mut peeked = VecDeque::new();
    let mut body_done = body.is_end_stream();
    loop {
        match classifier.verdict(body_done) {
            Verdict::Sql => {
                let complete = body_done || !classifier.body_is_text();
                // A compressed body is part of the statement the proxy cannot read: without a `query`
                // parameter to judge by, it is not known to read.
                let unreadable = !classifier.body_is_text() && !body_done && classifier.text.is_empty();
                let reads = !unreadable && nlq::reads_only(&classifier.text, complete).unwrap_or(false);
                let kills = if reads {
                    None
                } else {
                    killed_query_id(&classifier.text)
                };
                return Ok(sql(peeked, body, reads, kills));
            }
            Verdict::Ask => break,
            Verdict::NeedMore => match body.frame().await {
                None => body_done = true,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        classifier.push(data)?;
                    }
                    peeked.push_back(frame);
                    body_done = body.is_end_stream();
                }
                Some(Err(e)) => return Err(HttpError::ClientBody(e)),
            },
        }
    }
    if classifier.body_is_text() {
        while !body_done {
            match body.frame().await {
                None => body_done = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        classifier.push(&data)?;
                    }
                    body_done = body.is_end_stream();
                }
                Some(Err(e)) => return Err(HttpError::ClientBody(e)),
            }
        }
    }
    Ok(Inspected::Ask(classifier.finish()))
}

fn sql(peeked: VecDeque<Frame<Bytes>>, rest: Incoming, reads: bool, kills: Option<String>) -> Inspected {
    Inspected::Sql {
        peeked,
        rest,
        reads,
        kills,
    }
}

/// The id in `KILL QUERY … WHERE query_id = '<id>'` (the first such comparison; quotes escaped with a
/// backslash or doubled are read as ClickHouse reads them). `None` for any other statement.
pub fn killed_query_id(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let lower = text.to_ascii_lowercase();
    let mut words = lower.split_ascii_whitespace();
    if words.next() != Some("kill") || words.next() != Some("query") {
        return None;
    }
    let at = lower.find("query_id")? + "query_id".len();
    let rest = text[at..].trim_start().strip_prefix('=')?.trim_start();
    let mut chars = rest.strip_prefix('\'')?.chars();
    let mut id = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => id.push(chars.next()?),
            '\'' if chars.as_str().starts_with('\'') => {
                chars.next();
                id.push('\'');
            }
            '\'' => return Some(id),
            c => id.push(c),
        }
    }
    None
}

/// Whether the body's bytes are the text itself: no `Content-Encoding` (other than identity) and no
/// `decompress=1` (ClickHouse's own compressed blocks).
fn body_is_plain(parts: &Parts, query_string: &str) -> bool {
    let encoded = parts
        .headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
    let decompress =
        params::param(query_string, "decompress").is_some_and(|v| matches!(v.as_ref(), b"1" | b"true"));
    !encoded && !decompress
}

#[cfg(test)]
mod kill_tests {
    use super::killed_query_id;

    #[test]
    fn the_query_id_of_a_kill_statement_is_read_as_clickhouse_reads_it() {
        assert_eq!(
            killed_query_id(b"KILL QUERY WHERE query_id = 'abc-1'").as_deref(),
            Some("abc-1")
        );
        assert_eq!(
            killed_query_id(b"kill  query where user = 'x' and query_id='it''s' SYNC").as_deref(),
            Some("it's")
        );
        assert_eq!(
            killed_query_id(br"KILL QUERY WHERE query_id = 'a\'b'").as_deref(),
            Some("a'b")
        );
        for other in [
            &b"KILL MUTATION WHERE query_id = 'x'"[..],
            b"SELECT 'KILL QUERY WHERE query_id = 1'",
            b"KILL QUERY WHERE query_id = 'unterminated",
            b"KILL QUERY WHERE user = 'x'",
        ] {
            assert_eq!(killed_query_id(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}
