//! The ASK recogniser sees every query text from every client: it must never panic, and the prefix check
//! used for streamed HTTP bodies must agree with the full classification.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nlq::{classify, classify_prefix, Prefix, Statement};

fuzz_target!(|data: &[u8]| {
    let full = classify(data);
    let prefix = classify_prefix(data, true);
    match (&full, prefix) {
        (Ok(Statement::Sql), Prefix::Sql) | (Ok(Statement::Ask(_)) | Err(_), Prefix::Ask) => {}
        other => panic!("classify and classify_prefix disagree: {other:?}"),
    }
    // Any prefix of the text either waits for more bytes or reaches the same verdict.
    for cut in [data.len() / 2, data.len().saturating_sub(1)] {
        match classify_prefix(&data[..cut], false) {
            Prefix::NeedMore => {}
            early => assert_eq!(early, prefix, "prefix of {cut} bytes decided differently"),
        }
    }
});
