//! The first keywords of a query text that may still be arriving: SQL, ASK, or not enough bytes to tell.
//! Hand-written over bytes (no allocation, no UTF-8 needed), so both protocols can call it on every query.

use super::Prefix;

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

/// Statements a read endpoint lets through: they read, or change only the session (`SET`, `USE`).
const READING: &[&[u8]] = &[
    b"select",
    b"with",
    b"show",
    b"desc",
    b"describe",
    b"exists",
    b"explain",
    b"set",
    b"use",
    b"ask",
];

/// Whether a possibly incomplete text starts with a statement that only reads (see [`READING`]; a text
/// that starts with `(` is a parenthesized SELECT, an empty one no statement at all). `None`: not enough bytes
/// to tell yet. Used by the read endpoints, which refuse everything else before it reaches ClickHouse.
pub fn reads_only(text: &[u8], complete: bool) -> Option<bool> {
    match next_word(text, complete) {
        Step::Word(b"", after) => Some(after.first() == Some(&b'(')),
        Step::Word(word, _) => Some(READING.iter().any(|r| word.eq_ignore_ascii_case(r))),
        Step::NeedMore => None,
        Step::End => Some(true),
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

#[cfg(test)]
mod read_only_tests {
    use super::reads_only;

    #[test]
    fn reading_statements_are_told_from_writes_by_their_first_word() {
        for text in [
            &b"SELECT 1"[..],
            b"  -- note\n with x AS (SELECT 1) SELECT * FROM x",
            b"(SELECT 1) UNION ALL (SELECT 2)",
            b"show tables",
            b"DESCRIBE TABLE t",
            b"EXISTS t",
            b"SET max_threads = 1",
            b"/* c */ EXPLAIN SELECT 1",
            b"",
        ] {
            assert_eq!(
                reads_only(text, true),
                Some(true),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        for text in [
            &b"INSERT INTO t VALUES (1)"[..],
            b"ALTER TABLE t DELETE WHERE 1",
            b"drop table t",
            b"CREATE TABLE t (x UInt8) ENGINE = Memory",
            b"TRUNCATE TABLE t",
            b"OPTIMIZE TABLE t",
            b"RENAME TABLE a TO b",
            b"SYSTEM STOP MERGES",
            b"KILL QUERY WHERE 1",
            b"selector",
        ] {
            assert_eq!(
                reads_only(text, true),
                Some(false),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        assert_eq!(reads_only(b"SEL", false), None, "the word may go on");
        assert_eq!(reads_only(b"  -- still a comment", false), None);
    }
}
