//! The repository's own analytics fixtures parse the way the engine reads them (serde-saphyr is stricter than
//! Python's YAML loader: an unquoted comma inside a flow mapping starts a new key, which is an unknown field).

use std::path::Path;

#[test]
fn the_semantic_file_and_the_question_set_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/analytics");
    let semantic =
        nlq::semantic::SemanticFile::load(&root.join("semantic.yaml")).expect("semantic.yaml loads");
    assert!(semantic.tables.contains_key("analytics.events"));
    assert!(semantic.examples.len() >= 5);
    for example in &semantic.examples {
        assert!(
            example.sql.contains('{'),
            "examples are parameterized: {}",
            example.sql
        );
    }
    let questions = nlq::eval::load_questions(&root.join("questions.yaml")).expect("questions.yaml loads");
    assert!(questions.len() >= 40, "{} questions", questions.len());
}
