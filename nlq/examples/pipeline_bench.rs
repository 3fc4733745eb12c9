//! Time of everything in an ASK but the model call, on a 200-table catalog: cached catalog lookup, retrieval
//! (question embedding + hybrid ranking + examples), context building, validation and binding.
//!
//! ```text
//! cargo run --release -p nlq --example pipeline_bench            # lexical retrieval only
//! ORT_DYLIB_PATH=… AURORA_EMBED_MODEL_DIR=… cargo run --release -p nlq --example pipeline_bench
//! ```
//!
//! Prints p50/p95/max per stage and in total, for questions seen for the first time (their embedding is
//! computed) and for repeated ones (embedding from the store). Table descriptions are embedded before timing,
//! as a running proxy has them from its first question (and from disk after a restart).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nlq::bind::{check_params, substitute_literals};
use nlq::catalog::{Catalog, Column, Table};
use nlq::clickhouse::Credentials;
use nlq::embed::{EmbeddingStore, FastEmbedder};
use nlq::semantic::SemanticFile;
use nlq::{validate, Engine, EngineConfig, TableName};

const DOMAINS: &[&str] = &[
    "sales",
    "billing",
    "support",
    "marketing",
    "inventory",
    "shipping",
    "hr",
    "finance",
    "product",
    "web",
];
const ENTITIES: &[&str] = &[
    "orders",
    "invoices",
    "tickets",
    "campaigns",
    "stock_levels",
    "shipments",
    "employees",
    "payments",
    "features",
    "sessions",
    "customers",
    "refunds",
    "leads",
    "warehouses",
    "carriers",
    "payrolls",
    "budgets",
    "releases",
    "pageviews",
    "subscriptions",
];
const COLUMNS: &[(&str, &str, &str)] = &[
    ("id", "UInt64", "row id"),
    ("tenant_id", "String", "the customer company"),
    ("created_at", "DateTime", "when the row was created"),
    ("updated_at", "DateTime", "when the row last changed"),
    ("status", "String", "lifecycle state"),
    ("amount", "Float64", "money in the tenant's currency"),
    ("currency", "FixedString(3)", "ISO currency code"),
    ("country", "String", "ISO country code"),
    ("owner", "String", "who is responsible"),
    ("quantity", "UInt32", "number of items"),
    ("priority", "UInt8", "1 (high) to 5 (low)"),
    ("channel", "String", "where it came from"),
    ("region", "String", "sales region"),
    ("category", "String", "product category"),
];

fn catalog() -> Catalog {
    let mut tables = Vec::new();
    for (d, domain) in DOMAINS.iter().enumerate() {
        for (e, entity) in ENTITIES.iter().enumerate() {
            let width = 8 + (d * 7 + e * 3) % 7;
            let mut columns: Vec<Column> = COLUMNS[..width]
                .iter()
                .map(|(name, ty, comment)| Column {
                    name: name.to_string(),
                    ty: ty.to_string(),
                    comment: comment.to_string(),
                })
                .collect();
            columns.push(Column {
                name: format!("{}_ref", entity.trim_end_matches('s')),
                ty: "UInt64".into(),
                comment: format!("the {entity} row this belongs to"),
            });
            tables.push(Table {
                name: TableName::new(*domain, *entity),
                engine: "MergeTree".into(),
                columns,
            });
        }
    }
    let catalog = Catalog::new(tables, "18.16.1".into(), 0);
    for table in &catalog.tables {
        let mut values = BTreeMap::new();
        values.insert(
            "status".to_string(),
            vec!["open".into(), "closed".into(), "pending".into()],
        );
        values.insert(
            "channel".to_string(),
            vec!["web".into(), "email".into(), "phone".into()],
        );
        catalog.put_samples(&table.name, values);
    }
    catalog
}

fn semantic() -> SemanticFile {
    let mut text = String::from("tables:\n");
    for domain in DOMAINS {
        text.push_str(&format!(
            "  {domain}.orders:\n    description: Orders placed by customers of the {domain} team.\n    synonyms: [purchases, deals]\n    columns:\n      amount: {{ description: Order value., synonyms: [revenue, sales, value] }}\n"
        ));
    }
    text.push_str("examples:\n");
    for (i, domain) in DOMAINS.iter().enumerate() {
        text.push_str(&format!(
            "  - question: How many {domain} tickets were opened in week {i}?\n    sql: \"SELECT count() FROM {domain}.tickets WHERE toWeek(created_at) = {{week:UInt8}}\"\n    params: {{ week: {i} }}\n"
        ));
    }
    SemanticFile::parse(&text).expect("bench semantic file")
}

const QUESTIONS: &[&str] = &[
    "total sales revenue per region last month",
    "how many support tickets are still open",
    "which campaigns brought the most leads",
    "average shipment quantity by carrier",
    "top 5 customers by invoice amount",
    "refunds per country in October",
    "payroll budget by owner",
    "number of web sessions per channel",
    "inventory stock levels below 10 items",
    "product releases per category",
    "orders with high priority that are pending",
    "subscriptions created this week per tenant",
    "finance payments in EUR",
    "marketing leads by region",
    "billing invoices closed yesterday",
    "hr employees per country",
    "shipping shipments per status",
    "warehouse quantity per category",
    "support tickets by priority and status",
    "sales orders amount by currency",
];

const SQL: &str = "SELECT region, sum(amount) AS revenue FROM sales.orders WHERE status = {state:String} AND created_at >= {since:DateTime} GROUP BY region ORDER BY revenue DESC LIMIT {n:UInt32}";

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<28} p50 {:>8.3} ms   p95 {:>8.3} ms   max {:>8.3} ms   (n={})",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let store = match (
        std::env::var_os("AURORA_EMBED_MODEL_DIR"),
        std::env::var_os("ORT_DYLIB_PATH"),
    ) {
        (Some(dir), Some(_)) => {
            let model = FastEmbedder::load(&PathBuf::from(dir)).expect("embedding model loads");
            Some(Arc::new(EmbeddingStore::open(Arc::new(model), None)))
        }
        _ => None,
    };
    println!(
        "catalog: 200 tables; retrieval: {}",
        if store.is_some() {
            "embeddings (MiniLM int8) + lexical"
        } else {
            "lexical only (set AURORA_EMBED_MODEL_DIR and ORT_DYLIB_PATH for embeddings)"
        }
    );
    let engine =
        Engine::with_parts(EngineConfig::new("http://127.0.0.1:9"), semantic(), store.clone()).unwrap();
    let catalog = Arc::new(catalog());
    let credentials = Credentials::new("bench", "");
    engine.catalogs().insert(&credentials, catalog.clone());
    // Table descriptions embedded once, as a running proxy has them after its first question.
    engine.prepare_prompt(&catalog, "warm up").unwrap();

    let policy = catalog.policy("default", false);
    let params: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"state": "open", "since": "2026-10-01 00:00:00", "n": 10}"#).unwrap();

    for round in ["first time", "repeated"] {
        let (mut catalog_t, mut retrieval_t, mut validate_t, mut bind_t, mut total_t) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut prompt_tokens = 0;
        for question in QUESTIONS.iter().cycle().take(QUESTIONS.len() * 5) {
            let q = if round == "first time" {
                format!("{question} ({})", catalog_t.len())
            } else {
                question.to_string()
            };
            let t0 = Instant::now();
            let (cat, _) = engine
                .catalogs()
                .get(engine.clickhouse(), &credentials, false)
                .await
                .unwrap();
            let t1 = Instant::now();
            let prompt = engine.prepare_prompt(&cat, &q).unwrap();
            let t2 = Instant::now();
            let validated = validate(SQL, &policy).unwrap();
            let t3 = Instant::now();
            let bound = check_params(&validated.placeholders, &params).unwrap();
            let sql = substitute_literals(&validated, &bound, &policy).unwrap();
            let t4 = Instant::now();
            std::hint::black_box((&prompt, &sql));
            prompt_tokens = prompt.tokens();
            catalog_t.push(t1 - t0);
            retrieval_t.push(t2 - t1);
            validate_t.push(t3 - t2);
            bind_t.push(t4 - t3);
            total_t.push(t4 - t0);
        }
        println!("-- questions {round} (prompt ~{prompt_tokens} tokens)");
        report("catalog (cached)", catalog_t);
        report("retrieval + context", retrieval_t);
        report("validation", validate_t);
        report("binding (typed literals)", bind_t);
        report("total without the LLM", total_t);
    }
}
