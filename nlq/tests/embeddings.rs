//! The real sentence model: all-MiniLM-L6-v2 (int8) through ONNX Runtime 1.24.4, both from PyPI
//! (scripts/embeddings.sh). Skipped unless the assets are there (AURORA_EMBED_MODEL_DIR and ORT_DYLIB_PATH);
//! scripts/test.sh sets AURORA_REQUIRE_EMBEDDINGS=1, which turns a missing asset into a failure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use nlq::catalog::{Catalog, Column, Table};
use nlq::embed::{cosine, Embedder, EmbeddingStore, FastEmbedder};
use nlq::retrieve::{rank_tables, LexicalIndex};
use nlq::semantic::SemanticFile;
use nlq::TableName;

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AURORA_EMBED_MODEL_DIR").map(PathBuf::from);
    let ort = std::env::var_os("ORT_DYLIB_PATH");
    match (dir, ort) {
        (Some(dir), Some(_)) => Some(dir),
        _ if std::env::var_os("AURORA_REQUIRE_EMBEDDINGS").is_some() => {
            panic!("AURORA_REQUIRE_EMBEDDINGS is set but AURORA_EMBED_MODEL_DIR / ORT_DYLIB_PATH are not (scripts/embeddings.sh prints them)")
        }
        _ => {
            eprintln!("skipped: no embedding model (run scripts/embeddings.sh and export what it prints)");
            None
        }
    }
}

#[test]
fn the_local_model_embeds_meaning_and_retrieval_uses_it() {
    let Some(dir) = model_dir() else { return };
    let started = Instant::now();
    let model = Arc::new(FastEmbedder::load(&dir).expect("model loads"));
    eprintln!("model loaded in {:?}", started.elapsed());

    let texts: Vec<String> = [
        "total revenue per customer",
        "sum of sales by client account",
        "how long did the deployments take",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let started = Instant::now();
    let vectors = model.embed(&texts).expect("embeds");
    eprintln!("3 sentences in {:?}", started.elapsed());
    assert_eq!(vectors.len(), 3);
    assert_eq!(vectors[0].len(), 384);
    let store = EmbeddingStore::open(model.clone(), None);
    let v = store.get_many(&texts).unwrap();
    let related = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    eprintln!("related {related:.3}, unrelated {unrelated:.3}");
    assert!(
        related > unrelated + 0.2,
        "related {related} unrelated {unrelated}"
    );

    // Retrieval: no word of the question names the table, the meaning does.
    let table = |db: &str, name: &str, cols: &[&str]| Table {
        name: TableName::new(db, name),
        engine: "MergeTree".into(),
        columns: cols
            .iter()
            .map(|c| Column {
                name: c.to_string(),
                ty: "String".into(),
                comment: String::new(),
            })
            .collect(),
    };
    let catalog = Catalog::new(
        vec![
            table(
                "shop",
                "orders",
                &["order_id", "customer", "amount", "created_at"],
            ),
            table("ops", "deployments", &["service", "started_at", "finished_at"]),
            table("hr", "employees", &["name", "team", "salary"]),
        ],
        "18.16.1".into(),
        0,
    );
    for (question, expected) in [
        (
            "when were new releases of each service rolled out",
            ("ops", "deployments"),
        ),
        ("what do staff members earn", ("hr", "employees")),
        ("purchases made by buyers last week", ("shop", "orders")),
    ] {
        let q = store.get(question).unwrap();
        let semantic = SemanticFile::default();
        let index = LexicalIndex::build(&catalog, &semantic);
        let ranked = rank_tables(
            &catalog,
            &index,
            &semantic,
            question,
            "analytics",
            Some(&q),
            Some(&store),
            3,
        )
        .unwrap();
        eprintln!("{question}: {ranked:?}");
        assert_eq!(
            ranked[0].name,
            TableName::new(expected.0, expected.1),
            "{question}: {ranked:?}"
        );
        assert!(ranked[0].reasons.iter().any(|r| r.starts_with("similarity")));
    }
}
