//! The repository's own sample databases' files (fixtures/analytics, fixtures/shop) parse the way the engine reads them (serde-saphyr is stricter than
//! Python's YAML loader: an unquoted comma inside a flow mapping starts a new key, which is an unknown field).

use std::path::Path;

#[test]
fn the_semantic_files_and_the_question_sets_load() {
    for (database, table, at_least) in [("analytics", "events", 64), ("shop", "orders", 36)] {
        check_fixture(database, table, at_least);
    }
}

fn check_fixture(database: &str, table: &str, at_least: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(database);
    let semantic =
        nlq::semantic::SemanticFile::load(&root.join("semantic.yaml")).expect("semantic.yaml loads");
    assert!(semantic.tables.contains_key(&format!("{database}.{table}")));
    assert!(semantic.examples.len() >= 5);
    for example in &semantic.examples {
        assert!(
            example.sql.contains('{'),
            "examples are parameterized: {}",
            example.sql
        );
    }
    let questions = nlq::eval::load_questions(&root.join("questions.yaml")).expect("questions.yaml loads");
    assert!(
        questions.len() >= at_least,
        "{database}: {} questions",
        questions.len()
    );
    for level in ["easy", "medium", "hard"] {
        assert!(
            questions.iter().any(|q| q.tags.iter().any(|t| t == level)),
            "{database} has {level} questions"
        );
    }
}
