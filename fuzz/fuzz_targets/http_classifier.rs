//! The HTTP side's classification of a statement as it streams in (the `query` URL parameter, then the body in
//! frames of any size): whatever the bytes and however they are cut, it never panics, and its early verdict is
//! the one the full text gets — SQL stays SQL byte for byte, an ASK is never forwarded as SQL.
#![no_main]

use aurora_proxy::http::classify::{Classifier, Verdict, PEEK_LIMIT};
use aurora_proxy::http::params;
use libfuzzer_sys::fuzz_target;
use nlq::{classify, Statement};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    // `query=<url-encoded>` up to the first 0xff, the body after it.
    let (query_string, body) = match rest.iter().position(|&b| b == 0xff) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let query_string = String::from_utf8_lossy(query_string);
    let param = params::param(&query_string, "query").map(|q| q.into_owned()).unwrap_or_default();
    let body_is_text = selector & 0x80 == 0;
    let chunk = usize::from(selector & 0x3f) + 1;

    let mut classifier = Classifier::new(param.clone(), body_is_text);
    let mut chunks = body.chunks(chunk);
    let mut taken = 0usize;
    let verdict = loop {
        let done = taken == body.len();
        match classifier.verdict(done) {
            Verdict::NeedMore => {
                assert!(!done, "no verdict after the whole body");
                let next = chunks.next().expect("bytes remain");
                taken += next.len();
                if classifier.push(next).is_err() {
                    return; // over the ASK limit: refused, nothing forwarded
                }
            }
            decided => break decided,
        }
    };
    let mut full = param;
    if body_is_text {
        full.extend_from_slice(body);
    }
    match (verdict, classify(&full)) {
        (Verdict::Sql, Ok(Statement::Sql)) | (Verdict::Ask, Ok(Statement::Ask(_)) | Err(_)) => {}
        // Past PEEK_LIMIT a text still undecided is SQL by rule (an ASK is never hidden that far).
        (Verdict::Sql, _) if taken >= PEEK_LIMIT => {}
        (verdict, full) => panic!("streamed verdict {verdict:?} but the full text is {full:?}"),
    }
    if verdict == Verdict::Ask {
        for rest in chunks {
            if classifier.push(rest).is_err() {
                return;
            }
        }
        let _ = classifier.finish();
    }
});
