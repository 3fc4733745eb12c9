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
const STATIC_PATHS: &[&str] = &["/ping", "/replicas_status", "/play"];

/// What a request turned out to be.
pub enum Inspected {
    /// SQL (or no statement at all): forward the body, starting with the frames already read.
    Sql {
        peeked: VecDeque<Frame<Bytes>>,
        rest: Incoming,
    },
    /// An Aurora statement, parsed or not.
    Ask(Result<nlq::AskStatement, nlq::AskSyntaxError>),
}

/// Classifies the request's statement, reading as little of `body` as possible.
///
/// # Cancellation safety
/// Not cancellation safe: frames read before the future is dropped are lost with it (and with the request).
pub async fn inspect(parts: &Parts, mut body: Incoming) -> Result<Inspected, HttpError> {
    if STATIC_PATHS.contains(&parts.uri.path()) {
        return Ok(sql(VecDeque::new(), body));
    }
    let query_string = parts.uri.query().unwrap_or("");
    let mut text: Vec<u8> = params::param(query_string, "query")
        .map(|q| q.into_owned())
        .unwrap_or_default();
    // A compressed body is not text the proxy can read (it does not decompress): only the parameter counts.
    let body_is_text = body_is_plain(parts, query_string);
    let mut peeked = VecDeque::new();
    let mut peeked_bytes = 0usize;
    let mut body_done = body.is_end_stream();
    loop {
        match nlq::classify_prefix(&text, body_done || !body_is_text) {
            Prefix::Sql => return Ok(sql(peeked, body)),
            Prefix::Ask => break,
            Prefix::NeedMore if peeked_bytes >= PEEK_LIMIT => return Ok(sql(peeked, body)),
            Prefix::NeedMore => match body.frame().await {
                None => body_done = true,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        text.extend_from_slice(data);
                        peeked_bytes += data.len();
                    }
                    peeked.push_back(frame);
                    body_done = body.is_end_stream();
                }
                Some(Err(e)) => return Err(HttpError::ClientBody(e)),
            },
        }
    }
    if body_is_text {
        while !body_done {
            match body.frame().await {
                None => body_done = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        peeked_bytes += data.len();
                        if peeked_bytes > ASK_LIMIT {
                            return Err(HttpError::AskTooLarge { limit: ASK_LIMIT });
                        }
                        text.extend_from_slice(&data);
                    }
                    body_done = body.is_end_stream();
                }
                Some(Err(e)) => return Err(HttpError::ClientBody(e)),
            }
        }
    }
    Ok(match nlq::classify(&text) {
        Ok(nlq::Statement::Ask(ask)) => Inspected::Ask(Ok(ask)),
        Err(syntax) => Inspected::Ask(Err(syntax)),
        // `classify_prefix` saw ASK, so this does not happen; if the grammars ever disagree, SQL is safe only
        // when nothing was consumed, and an error is the honest answer otherwise.
        Ok(nlq::Statement::Sql) => Inspected::Ask(Err(nlq::AskSyntaxError {
            position: 0,
            expected: "an ASK statement".to_string(),
        })),
    })
}

fn sql(peeked: VecDeque<Frame<Bytes>>, rest: Incoming) -> Inspected {
    Inspected::Sql { peeked, rest }
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
