//! Tests of `statement.rs`.

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
        "ask",
        "ASK",
        "Ask",
        "explain",
        "EXPLAIN",
        "select",
        "SELECT",
        "*",
        "from",
        "FROM",
        "ask(",
        "explain_ask",
        "(",
        ")",
        "'q'",
        "'it''s'",
        "'a\\'b'",
        " ",
        "  ",
        "\n",
        "\t",
        "-- c\n",
        "# c\n",
        "/* c */",
        "/*",
        "--",
        "-",
        "FORMAT",
        "JSON",
        "SETTINGS",
        "a = 1",
        "b = 'x'",
        ",",
        ";",
        "x",
        "1",
        "asking",
        "selection",
        "db.",
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
