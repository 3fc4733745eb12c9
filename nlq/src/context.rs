//! The prompt: rules, the server's dialect, the relevant tables only, join hints and the closest examples,
//! within a token budget.
//!
//! Tokens are estimated at four characters each (close for English and SQL with the tokenizers of the
//! models Aurora targets). When the schema section would overflow the budget, columns are cut from the
//! lowest-ranked table first (columns the question names stay), then examples go.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::catalog::{Catalog, Table};
use crate::retrieve::{terms, RankedTable};
use crate::semantic::{Example, SemanticFile};

/// Rough token count of a text.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// The two messages sent to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub system: String,
    pub user: String,
}

impl Prompt {
    pub fn tokens(&self) -> usize {
        estimate_tokens(&self.system) + estimate_tokens(&self.user)
    }
}

/// What goes into one prompt.
pub struct ContextInput<'a> {
    pub question: &'a str,
    pub catalog: &'a Catalog,
    pub semantic: &'a SemanticFile,
    pub tables: &'a [RankedTable],
    /// Sampled values per table (by `database.table`).
    pub samples: &'a BTreeMap<String, std::sync::Arc<BTreeMap<String, Vec<String>>>>,
    pub examples: &'a [Example],
    pub max_rows: u64,
    pub token_budget: usize,
}

/// The fixed part of every prompt, first so that the model server reuses its cache of it (llama.cpp's
/// `cache_prompt`): nothing question-dependent comes before the tables.
const RULES: &str = "You write one ClickHouse SQL query that answers a question about the user's data.
Answer with one JSON object and nothing else: {\"sql\": \"...\", \"explanation\": \"...\"}.
Rules:
- Exactly one SELECT statement. Never INSERT, ALTER, DROP, CREATE, SET, SETTINGS, FORMAT or INTO OUTFILE.
- Use only the tables and columns listed below, tables written as database.table.
- Write the values the question names as plain SQL literals (tenant_id = 'acme', timestamp >= '2026-10-01 00:00:00');
  Aurora turns them into query parameters. Filter only on what the question asks for.
- Relative time is computed by the server: now() - INTERVAL 30 DAY, today() - 7, toStartOfMonth(today()).
- Give result columns short readable aliases.
- \"explanation\" is one short sentence saying what the query computes.
ClickHouse idioms:
- count() rows; uniqExact(x) distinct values; countIf(cond), sumIf(x, cond), avgIf(x, cond) conditional aggregates
- argMax(x, y): x where y is largest; topK(3)(x): most frequent values
- one day: toDate(t) = '2026-10-15'; one month: toStartOfMonth(t) = '2026-10-01'
- time buckets: toDate(t), toStartOfHour(t), toMonday(t) for weeks, toStartOfMonth(t), toYYYYMM(t)
- ratios: round(countIf(cond) / count(), 4); money: round(sum(amount), 2)
- top N: ORDER BY x DESC LIMIT N; top N per group: ORDER BY g, x DESC LIMIT N BY g
- joins: FROM db.a AS a JOIN db.b AS b ON a.key = b.key";

/// Builds the prompt for `input`.
pub fn build_prompt(input: &ContextInput<'_>) -> Prompt {
    let mut system = String::from(RULES);
    let _ = write!(
        system,
        "\n\nThe server is ClickHouse {}.",
        if input.catalog.server_version.is_empty() {
            "(version unknown)"
        } else {
            &input.catalog.server_version
        }
    );
    for note in input.catalog.dialect_notes() {
        let _ = write!(system, "\n- This version has {note}.");
    }
    let _ = write!(
        system,
        "\n- Results are cut at {} rows; add ORDER BY and LIMIT for top-N questions.",
        input.max_rows
    );

    let question_words: Vec<String> = terms(input.question);
    let mut column_limits: Vec<usize> = input
        .tables
        .iter()
        .filter_map(|t| input.catalog.table(&t.name))
        .map(|t| t.columns.len())
        .collect();
    let mut examples = input.examples.len();
    loop {
        let user = render_user(input, &question_words, &column_limits, examples);
        let prompt = Prompt {
            system: system.clone(),
            user,
        };
        if prompt.tokens() <= input.token_budget {
            return prompt;
        }
        // Cut: columns of the last table with more than 8, then examples, then columns down to 3.
        if let Some(i) = column_limits.iter().rposition(|n| *n > 8) {
            column_limits[i] -= 1;
        } else if examples > 0 {
            examples -= 1;
        } else if let Some(i) = column_limits.iter().rposition(|n| *n > 3) {
            column_limits[i] -= 1;
        } else {
            return prompt;
        }
    }
}

fn render_user(
    input: &ContextInput<'_>,
    question_words: &[String],
    column_limits: &[usize],
    examples: usize,
) -> String {
    let mut out = String::from("Tables:\n");
    let tables: Vec<&Table> = input
        .tables
        .iter()
        .filter_map(|t| input.catalog.table(&t.name))
        .collect();
    for (table, limit) in tables.iter().zip(column_limits) {
        render_table(&mut out, input, table, question_words, *limit);
    }
    let mut joins: Vec<String> = input
        .semantic
        .joins
        .iter()
        .filter(|j| {
            let (l, r) = j.tables();
            tables.iter().any(|t| t.name.to_string() == l) && tables.iter().any(|t| t.name.to_string() == r)
        })
        .map(|j| format!("- {} = {}", j.left, j.right))
        .collect();
    if joins.is_empty() {
        joins = inferred_joins(&tables);
    }
    if !joins.is_empty() {
        out.push_str("\nJoins:\n");
        out.push_str(&joins.join("\n"));
        out.push('\n');
    }
    let shown: Vec<(&str, String)> = input
        .examples
        .iter()
        .take(examples)
        .filter_map(|e| Some((e.question.as_str(), plain_sql(input.catalog, e)?)))
        .collect();
    if !shown.is_empty() {
        out.push_str("\nExamples:\n");
        for (question, sql) in shown {
            let answer = serde_json::json!({"sql": sql});
            let _ = writeln!(out, "Q: {question}\nA: {answer}");
        }
    }
    let named = named_values(input, &tables);
    if !named.is_empty() {
        out.push_str("\nValues the question names (write them exactly so):\n");
        for (value, columns) in &named {
            // The first two columns say enough (the others are usually the same key in other tables).
            let shown: Vec<&str> = columns.iter().take(2).map(String::as_str).collect();
            let _ = writeln!(
                out,
                "- '{}' is a value of {}",
                value.replace('\'', "\\'"),
                shown.join(", ")
            );
        }
    }
    let _ = write!(out, "\nQuestion: {}\nJSON:", input.question);
    out
}

/// Whether `word` (lower case) occurs in `text` (lower case) as a whole word.
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Sampled values of the shown tables that the question names (case-insensitively, as whole words), with the
/// columns that hold them: schema linking by value, so `initech` is written as the tenant id it is.
///
/// A value that is also an ordinary word of the schema's own descriptions (`placed` in "When the order was
/// placed", while `status` holds 'placed') is named only when the question also names its column ("the
/// status placed"): otherwise "orders placed in October" would be offered as `status = 'placed'`.
fn named_values(input: &ContextInput<'_>, tables: &[&Table]) -> Vec<(String, Vec<String>)> {
    let question = input.question.to_lowercase();
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for table in tables {
        let Some(samples) = input.samples.get(&table.name.to_string()) else {
            continue;
        };
        for (column, values) in samples.iter() {
            let names_column = column
                .to_lowercase()
                .split('_')
                .any(|part| part.len() >= 3 && has_word(&question, part));
            for value in values {
                let lower = value.to_lowercase();
                if lower.chars().count() < 2 || !has_word(&question, &lower) {
                    continue;
                }
                let ordinary_word = tables
                    .iter()
                    .flat_map(|t| t.columns.iter().map(move |c| (t, c)))
                    .filter(|(t, c)| !(t.name == table.name && &c.name == column))
                    .any(|(_, c)| has_word(&c.comment.to_lowercase(), &lower));
                if !ordinary_word || names_column {
                    found
                        .entry(value.clone())
                        .or_default()
                        .push(format!("{}.{column}", table.name));
                }
            }
        }
    }
    found.into_iter().collect()
}

/// The user part of a prompt for a question that refines an earlier one: the earlier question and its SQL go
/// right before the new question.
pub fn with_previous(user: &str, question: &str, sql: &str) -> String {
    before_question(
        user,
        &format!(
            "\nPrevious question: {question}\nIts SQL: {sql}\nThe next question refines the previous one: change the previous SQL to answer it."
        ),
    )
}

/// The user part of a prompt with the answers users marked wrong for this question, before the question.
pub fn with_marked_wrong(user: &str, sql: &[&str]) -> String {
    let mut block =
        String::from("\nA user marked these answers to the question as wrong; write a different query:");
    for wrong in sql {
        block.push_str("\n- ");
        block.push_str(wrong);
    }
    before_question(user, &block)
}

/// `user` with `block` (which starts with a newline) inserted before its final `Question:` line.
fn before_question(user: &str, block: &str) -> String {
    match user.rfind("\nQuestion: ") {
        Some(at) => format!("{}{block}{}", &user[..at], &user[at..]),
        None => user.to_string(),
    }
}

/// For ClickHouse's "unknown column" errors (`Unknown identifier: t.x` on old servers, `Missing columns: 'x'`,
/// `Unknown expression identifier `x``): which tables of the databases the query reads hold that column, when
/// none of the tables it reads does (at most three). `None` for other errors, or when the column is nowhere.
pub fn unknown_column_hint(catalog: &Catalog, reads: &[String], error: &str) -> Option<String> {
    let name = unknown_column(error)?;
    let databases: Vec<&str> = reads
        .iter()
        .filter_map(|t| t.split_once('.').map(|(db, _)| db))
        .collect();
    let holders: Vec<String> = catalog
        .tables
        .iter()
        .filter(|t| databases.contains(&t.name.database.as_str()) && !crate::retrieve::is_machinery(&t.name))
        .filter(|t| t.columns.iter().any(|c| c.name == name))
        .map(|t| t.name.to_string())
        .take(3)
        .collect();
    if holders.is_empty() || holders.iter().any(|h| reads.contains(h)) {
        return None;
    }
    Some(format!(
        "Column {name} is not in {}; it is a column of {}: read it from there (join on the key both tables share).",
        reads.join(", "),
        holders.join(", ")
    ))
}

/// The column an "unknown column" error names, without a table or alias prefix.
fn unknown_column(error: &str) -> Option<String> {
    let after = |marker: &str| error.find(marker).map(|at| &error[at + marker.len()..]);
    let raw = after("Unknown identifier: ")
        .or_else(|| after("Missing columns: '"))
        .or_else(|| after("Unknown expression identifier `"))
        .or_else(|| after("Unknown expression identifier '"))?;
    let word: String = raw
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let column = word.rsplit('.').next().unwrap_or("").to_string();
    (!column.is_empty()).then_some(column)
}

/// Join conditions read off the schema when the semantic file has none: a column named like the first column
/// of another shown table (`events.tenant_id` and `tenants.tenant_id`), when that first column is an id.
fn inferred_joins(tables: &[&Table]) -> Vec<String> {
    let mut joins = Vec::new();
    for key_table in tables {
        let Some(key) = key_table.columns.first() else {
            continue;
        };
        let lower = key.name.to_ascii_lowercase();
        if !(lower == "id" || lower.ends_with("_id") || lower.ends_with("id")) {
            continue;
        }
        for other in tables.iter().filter(|t| t.name != key_table.name) {
            if other.columns.iter().any(|c| c.name == key.name) {
                joins.push(format!(
                    "- {}.{} = {}.{}",
                    other.name, key.name, key_table.name, key.name
                ));
            }
        }
    }
    joins
}

/// A semantic example with its parameter values written in as literals, as the model is asked to write SQL;
/// `None` when it does not validate against this catalog.
fn plain_sql(catalog: &Catalog, example: &Example) -> Option<String> {
    let policy = catalog.policy("default", false);
    let validated = crate::validate::validate(&example.sql, &policy).ok()?;
    if validated.placeholders.is_empty() {
        return Some(example.sql.clone());
    }
    let bound = crate::bind::check_params(&validated.placeholders, &example.params).ok()?;
    crate::bind::substitute_literals(&validated, &bound, &policy).ok()
}

fn render_table(out: &mut String, input: &ContextInput<'_>, table: &Table, words: &[String], limit: usize) {
    let key = table.name.to_string();
    let notes = input.semantic.tables.get(&key);
    let _ = write!(out, "{key}");
    if let Some(description) = notes.map(|n| n.description.as_str()).filter(|d| !d.is_empty()) {
        let _ = write!(out, " -- {description}");
    }
    out.push('\n');
    // Columns the question names come first when the list is cut.
    let mut order: Vec<usize> = (0..table.columns.len()).collect();
    if limit < table.columns.len() {
        order.sort_by_key(|&i| {
            let named = terms(&table.columns[i].name).iter().any(|t| words.contains(t));
            (!named, i)
        });
        order.truncate(limit);
        order.sort();
    }
    let samples = input.samples.get(&key);
    for i in order {
        let column = &table.columns[i];
        let _ = write!(out, "  {} {}", column.name, column.ty);
        let description = notes
            .and_then(|n| n.columns.get(&column.name))
            .map(|c| c.description.as_str())
            .filter(|d| !d.is_empty())
            .unwrap_or(&column.comment);
        let mut extra = Vec::new();
        if !description.is_empty() {
            extra.push(description.to_string());
        }
        if let Some(values) = samples.and_then(|s| s.get(&column.name)) {
            let quoted: Vec<String> = values
                .iter()
                .map(|v| format!("'{}'", v.replace('\'', "\\'")))
                .collect();
            extra.push(format!("values: {}", quoted.join(", ")));
        }
        if !extra.is_empty() {
            let _ = write!(out, " -- {}", extra.join("; "));
        }
        out.push('\n');
    }
    if limit < table.columns.len() {
        let _ = writeln!(out, "  ({} more columns not shown)", table.columns.len() - limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Column;
    use crate::validate::TableName;

    #[test]
    fn an_unknown_column_is_pointed_to_the_table_that_has_it() {
        let table = |name: &str, columns: &[&str]| Table {
            name: TableName::new("analytics", name),
            engine: "MergeTree".into(),
            columns: columns
                .iter()
                .map(|c| crate::catalog::Column {
                    name: c.to_string(),
                    ty: "String".into(),
                    comment: String::new(),
                })
                .collect(),
        };
        let catalog = Catalog::new(
            vec![
                table("events", &["event_id", "event_type"]),
                table("purchases", &["event_id", "amount"]),
            ],
            "18.16.1".into(),
            0,
        );
        let reads = ["analytics.purchases".to_string()];
        for error in [
            "Code: 47, e.displayText() = DB::Exception: Unknown identifier: event_type, e.what() = DB::Exception",
            "Code: 47, e.displayText() = DB::Exception: Unknown identifier: p.event_type",
            "Code: 47. DB::Exception: Missing columns: 'event_type' while processing query",
            "Code: 47. DB::Exception: Unknown expression identifier `event_type` in scope SELECT",
        ] {
            let hint = unknown_column_hint(&catalog, &reads, error).unwrap_or_else(|| panic!("{error}"));
            assert!(hint.contains("event_type is not in analytics.purchases") && hint.contains("analytics.events"), "{hint}");
        }
        // Read already, nowhere, or another error: nothing to add.
        let both = ["analytics.purchases".to_string(), "analytics.events".to_string()];
        assert_eq!(
            unknown_column_hint(&catalog, &both, "Unknown identifier: event_type"),
            None
        );
        assert_eq!(
            unknown_column_hint(&catalog, &reads, "Unknown identifier: colour"),
            None
        );
        assert_eq!(
            unknown_column_hint(&catalog, &reads, "Code: 62. Syntax error"),
            None
        );
    }
    use std::sync::Arc;

    fn wide_catalog() -> Catalog {
        let columns = (0..40)
            .map(|i| Column {
                name: format!("metric_{i}"),
                ty: "UInt64".into(),
                comment: String::new(),
            })
            .chain([Column {
                name: "revenue".into(),
                ty: "Float64".into(),
                comment: "money".into(),
            }])
            .collect();
        Catalog::new(
            vec![Table {
                name: TableName::new("analytics", "wide"),
                engine: "MergeTree".into(),
                columns,
            }],
            "18.16.1".into(),
            0,
        )
    }

    #[test]
    fn prompt_states_the_dialect_and_keeps_within_budget() {
        let catalog = wide_catalog();
        let ranked = vec![RankedTable {
            name: TableName::new("analytics", "wide"),
            score: 1.0,
            reasons: vec![],
        }];
        let mut samples = BTreeMap::new();
        let mut values = BTreeMap::new();
        values.insert("metric_0".to_string(), vec!["a'b".to_string()]);
        samples.insert("analytics.wide".to_string(), Arc::new(values));
        let semantic = SemanticFile::default();
        let input = ContextInput {
            question: "total revenue",
            catalog: &catalog,
            semantic: &semantic,
            tables: &ranked,
            samples: &samples,
            examples: &[],
            max_rows: 10_000,
            token_budget: 100_000,
        };
        let roomy = build_prompt(&input);
        assert!(roomy.system.contains("ClickHouse 18.16.1"));
        assert!(roomy.system.contains("no window functions"));
        assert!(roomy.user.contains("metric_39 UInt64"));
        assert!(roomy.user.contains("values: 'a\\'b'"));

        let tight = build_prompt(&ContextInput {
            token_budget: roomy.tokens() - 100,
            ..input
        });
        assert!(tight.tokens() <= roomy.tokens() - 100);
        assert!(
            tight.user.contains("revenue Float64 -- money"),
            "named columns survive cuts"
        );
        assert!(tight.user.contains("more columns not shown"));
    }

    #[test]
    fn a_value_that_is_also_an_ordinary_word_is_named_only_with_its_column() {
        let column = |name: &str, comment: &str| Column {
            name: name.into(),
            ty: "String".into(),
            comment: comment.into(),
        };
        let catalog = Catalog::new(
            vec![Table {
                name: TableName::new("shop", "orders"),
                engine: "MergeTree".into(),
                columns: vec![
                    column("order_time", "When the order was placed"),
                    column("status", "placed, shipped or cancelled"),
                    column("carrier", "Parcel carrier"),
                ],
            }],
            "18.16.1".into(),
            0,
        );
        let ranked = vec![RankedTable {
            name: TableName::new("shop", "orders"),
            score: 1.0,
            reasons: vec![],
        }];
        let mut values = BTreeMap::new();
        values.insert(
            "status".to_string(),
            vec!["placed".to_string(), "shipped".to_string()],
        );
        values.insert("carrier".to_string(), vec!["DHL".to_string()]);
        let mut samples = BTreeMap::new();
        samples.insert("shop.orders".to_string(), Arc::new(values));
        let semantic = SemanticFile::default();
        let user = |question: &str| {
            build_prompt(&ContextInput {
                question,
                catalog: &catalog,
                semantic: &semantic,
                tables: &ranked,
                samples: &samples,
                examples: &[],
                max_rows: 100,
                token_budget: 100_000,
            })
            .user
        };
        let placed_in_october = user("How many orders were placed in October via DHL?");
        assert!(
            !placed_in_october.contains("'placed' is a value"),
            "{placed_in_october}"
        );
        assert!(placed_in_october.contains("'DHL' is a value of shop.orders.carrier"));
        let the_status = user("How many orders have the status placed?");
        assert!(
            the_status.contains("'placed' is a value of shop.orders.status"),
            "{the_status}"
        );
        let shipped = user("How many orders were shipped?");
        assert!(
            shipped.contains("'shipped' is a value of shop.orders.status"),
            "{shipped}"
        );
    }
}
