//! Retrieval: which tables (and which example questions) matter for a question.
//!
//! Two signals, combined:
//! - **lexical**: the question's words against table and column names (split at `_` and `.`), synonyms and
//!   descriptions from the semantic file, column comments, and sampled values (a question naming `acme`
//!   points at the table whose `tenant_id` holds `acme`). Each hit adds a weight by where it matched.
//! - **embeddings** (when a model is loaded): cosine similarity between the question and a short description
//!   of each table.
//!
//! The hybrid score is `0.6 · cosine + 0.4 · lexical / best lexical`; without a model it is lexical alone.
//! Tables within [`KEEP_RATIO`] of the best score are kept, at most `max_tables`, and each kept table brings
//! the tables the semantic file says it joins with (when they are readable). Every kept table carries the
//! reasons it was chosen, which `EXPLAIN ASK` shows.

use std::collections::{BTreeSet, HashMap};

use crate::catalog::{Catalog, Table};
use crate::embed::{cosine, EmbedError, EmbeddingStore, Vector};
use crate::semantic::{Example, SemanticFile};
use crate::validate::TableName;

/// Tables scoring at least this fraction of the best score are kept.
pub const KEEP_RATIO: f32 = 0.55;

/// Words too common in questions to say anything about a table.
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "in", "on", "at", "by", "for", "to", "from", "with", "and", "or", "is", "are",
    "was", "were", "be", "how", "many", "much", "what", "which", "who", "whom", "when", "where", "per", "each",
    "show", "me", "list", "give", "get", "find", "top", "all", "than", "that", "this", "these", "those", "do",
    "does", "did", "has", "have", "had", "it", "its", "as", "their", "there", "number", "count", "total", "i",
    "we", "our", "my", "most", "least", "over", "between", "during", "last", "first", "into", "out",
];

/// A table chosen for a question.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedTable {
    pub name: TableName,
    pub score: f32,
    /// Why: matched words, similarity, join hints.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Retrieval {
    pub tables: Vec<RankedTable>,
    /// The closest examples, best first.
    pub examples: Vec<Example>,
}

/// Lower-case word stems: letters and digits, split at everything else, a trailing plural `s` removed.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| stem(&w.to_lowercase()))
        .collect()
}

fn stem(word: &str) -> String {
    if word.len() > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_string()
    } else {
        word.to_string()
    }
}

fn question_terms(question: &str) -> BTreeSet<String> {
    terms(question)
        .into_iter()
        .filter(|t| !STOPWORDS.contains(&t.as_str()) && t.len() > 1)
        .collect()
}

/// The text embedded for a table: its name, description and columns.
pub fn table_document(table: &Table, semantic: &SemanticFile) -> String {
    let key = table.name.to_string();
    let notes = semantic.tables.get(&key);
    let mut doc = format!("table {}", table.name.table.replace('_', " "));
    if let Some(notes) = notes {
        if !notes.description.is_empty() {
            doc.push_str(": ");
            doc.push_str(&notes.description);
        }
        if !notes.synonyms.is_empty() {
            doc.push_str(" (also called ");
            doc.push_str(&notes.synonyms.join(", "));
            doc.push(')');
        }
    }
    doc.push_str(". columns: ");
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let mut text = c.name.replace('_', " ");
            let description = notes
                .and_then(|n| n.columns.get(&c.name))
                .map(|n| n.description.as_str())
                .filter(|d| !d.is_empty())
                .unwrap_or(c.comment.as_str());
            if !description.is_empty() {
                text.push_str(&format!(" ({description})"));
            }
            text
        })
        .collect();
    doc.push_str(&columns.join(", "));
    doc
}

/// Where a word matched, strongest first: the first place a word matches in a table is the one that counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    TableName,
    TableSynonym,
    Column,
    ColumnSynonym,
    Value,
    Description,
}

impl Place {
    fn weight(self) -> f32 {
        match self {
            Place::TableName => 3.0,
            Place::TableSynonym => 2.5,
            Place::Column | Place::ColumnSynonym => 2.0,
            Place::Value => 1.5,
            Place::Description => 1.0,
        }
    }
}

/// The words of a catalog and its semantic file, inverted: term → (table, place, column). Built once per
/// catalog version (the engine caches it), so ranking a question costs a few hash lookups per word.
#[derive(Debug, Default)]
pub struct LexicalIndex {
    terms: HashMap<String, Vec<(usize, Place, Option<usize>)>>,
    /// Per table (catalog order): the text embedded for it.
    documents: Vec<String>,
}

impl LexicalIndex {
    /// Indexes `catalog` with `semantic`, including the sampled values the catalog holds now.
    pub fn build(catalog: &Catalog, semantic: &SemanticFile) -> LexicalIndex {
        let mut index = LexicalIndex::default();
        for (i, table) in catalog.tables.iter().enumerate() {
            let notes = semantic.tables.get(&table.name.to_string());
            let mut add = |text: &str, place: Place, column: Option<usize>| {
                for term in terms(text) {
                    let postings = index.terms.entry(term).or_default();
                    if !postings
                        .iter()
                        .any(|(t, p, c)| *t == i && *p == place && *c == column)
                    {
                        postings.push((i, place, column));
                    }
                }
            };
            add(&table.name.table, Place::TableName, None);
            let column_index = |name: &str| table.columns.iter().position(|c| c.name == name);
            for (c, column) in table.columns.iter().enumerate() {
                add(&column.name, Place::Column, Some(c));
                add(&column.comment, Place::Description, None);
            }
            if let Some(notes) = notes {
                for synonym in &notes.synonyms {
                    add(synonym, Place::TableSynonym, None);
                }
                add(&notes.description, Place::Description, None);
                for (name, column) in &notes.columns {
                    let c = column_index(name);
                    for synonym in &column.synonyms {
                        add(synonym, Place::ColumnSynonym, c);
                    }
                    add(&column.description, Place::Description, None);
                }
            }
            if let Some(samples) = catalog.cached_samples(&table.name) {
                for (name, values) in samples.iter() {
                    let c = column_index(name);
                    for value in values {
                        add(value, Place::Value, c);
                    }
                }
            }
            index.documents.push(table_document(table, semantic));
        }
        index
    }

    /// Lexical evidence per table: total weight and the words that matched where.
    fn score(&self, catalog: &Catalog, words: &BTreeSet<String>) -> Vec<(f32, Vec<String>)> {
        let mut out = vec![(0.0f32, Vec::new()); catalog.tables.len()];
        for word in words {
            let Some(postings) = self.terms.get(word) else {
                continue;
            };
            // The strongest place per table for this word.
            let mut best: HashMap<usize, (Place, Option<usize>)> = HashMap::new();
            for &(table, place, column) in postings {
                let entry = best.entry(table).or_insert((place, column));
                if place < entry.0 {
                    *entry = (place, column);
                }
            }
            for (table, (place, column)) in best {
                let column_name = column
                    .map(|c| catalog.tables[table].columns[c].name.as_str())
                    .unwrap_or("");
                let reason = match place {
                    Place::TableName => "the table name".to_string(),
                    Place::TableSynonym => "a synonym of the table".to_string(),
                    Place::Column => format!("column {column_name}"),
                    Place::ColumnSynonym => format!("a synonym of column {column_name}"),
                    Place::Value => format!("a value of column {column_name}"),
                    Place::Description => "a description".to_string(),
                };
                out[table].0 += place.weight();
                out[table].1.push(format!("'{word}' matches {reason}"));
            }
        }
        out
    }
}

/// Ranks `catalog`'s tables for `question`. `question_vector` and `store` are absent without a model.
#[allow(clippy::too_many_arguments)]
pub fn rank_tables(
    catalog: &Catalog,
    index: &LexicalIndex,
    semantic: &SemanticFile,
    question: &str,
    database: &str,
    question_vector: Option<&Vector>,
    store: Option<&EmbeddingStore>,
    max_tables: usize,
) -> Result<Vec<RankedTable>, EmbedError> {
    let words = question_terms(question);
    let lexical_scores = index.score(catalog, &words);
    let offered = offered_tables(catalog, database, &words, &lexical_scores);
    let best_lexical = lexical_scores.iter().map(|(s, _)| *s).fold(0.0f32, f32::max);
    let similarities: Option<Vec<f32>> = match (question_vector, store) {
        (Some(q), Some(store)) => {
            let vectors = store.get_many(&index.documents)?;
            Some(vectors.iter().map(|v| cosine(q, v)).collect())
        }
        _ => None,
    };
    let mut ranked: Vec<RankedTable> = catalog
        .tables
        .iter()
        .enumerate()
        .filter(|(i, _)| offered[*i])
        .map(|(i, table)| {
            let (lex, mut reasons) = lexical_scores[i].clone();
            let lex_norm = if best_lexical > 0.0 {
                lex / best_lexical
            } else {
                0.0
            };
            let score = match &similarities {
                Some(sims) => {
                    reasons.push(format!("similarity {:.2}", sims[i]));
                    0.6 * sims[i] + 0.4 * lex_norm
                }
                None => lex_norm,
            };
            RankedTable {
                name: table.name.clone(),
                score,
                reasons,
            }
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
    let best = ranked.first().map(|t| t.score).unwrap_or(0.0);
    let mut kept: Vec<RankedTable> = if best <= 0.0 {
        // Nothing matched at all: a small catalog is shown whole, a large one is not guessed at.
        ranked.into_iter().take(max_tables.min(3)).collect()
    } else {
        ranked
            .into_iter()
            .filter(|t| t.score >= best * KEEP_RATIO)
            .take(max_tables)
            .collect()
    };
    add_join_partners(catalog, semantic, &mut kept, max_tables + 2);
    Ok(kept)
}

/// Tables Aurora keeps for itself (aurora-ingest's stages, ledgers and probes, dead letters, inner tables of
/// views): never offered to the model.
pub fn is_machinery(name: &TableName) -> bool {
    name.table.starts_with("aurora_")
        || name.table.starts_with(".inner")
        || name.table.ends_with("_dead_letters")
}

/// Which tables a question may be offered: those of the request's `database` and of any database the
/// question names; all databases when that leaves nothing, or when no word of the question matches a table
/// there but one matches elsewhere. Never Aurora's machinery.
pub fn offered_tables(
    catalog: &Catalog,
    database: &str,
    words: &BTreeSet<String>,
    lexical_scores: &[(f32, Vec<String>)],
) -> Vec<bool> {
    let candidate: Vec<bool> = catalog.tables.iter().map(|t| !is_machinery(&t.name)).collect();
    let in_scope: Vec<bool> = catalog
        .tables
        .iter()
        .zip(&candidate)
        .map(|(t, &c)| {
            c && (t.name.database == database || words.contains(&stem(&t.name.database.to_lowercase())))
        })
        .collect();
    let best = |mask: &dyn Fn(usize) -> bool| {
        (0..catalog.tables.len())
            .filter(|&i| mask(i))
            .map(|i| lexical_scores[i].0)
            .reduce(f32::max)
    };
    let inside = best(&|i| in_scope[i]);
    let outside = best(&|i| candidate[i] && !in_scope[i]).unwrap_or(0.0);
    match inside {
        Some(score) if score > 0.0 || outside <= 0.0 => in_scope,
        _ => candidate,
    }
}

/// Adds tables the semantic file says the kept ones join with.
fn add_join_partners(catalog: &Catalog, semantic: &SemanticFile, kept: &mut Vec<RankedTable>, limit: usize) {
    let mut i = 0;
    while i < kept.len() && kept.len() < limit {
        let name = kept[i].name.to_string();
        for join in &semantic.joins {
            let (left, right) = join.tables();
            let partner = if left == name {
                right
            } else if right == name {
                left
            } else {
                continue;
            };
            let Some(table) = catalog.tables.iter().find(|t| t.name.to_string() == partner) else {
                continue;
            };
            if kept.iter().any(|k| k.name == table.name) || kept.len() >= limit {
                continue;
            }
            kept.push(RankedTable {
                name: table.name.clone(),
                score: 0.0,
                reasons: vec![format!("joins with {name} ({} = {})", join.left, join.right)],
            });
        }
        i += 1;
    }
}

/// The `n` examples closest to the question (by embeddings, or by shared words), over readable tables only.
pub fn closest_examples(
    examples: &[Example],
    catalog: &Catalog,
    question: &str,
    question_vector: Option<&Vector>,
    store: Option<&EmbeddingStore>,
    n: usize,
) -> Result<Vec<Example>, EmbedError> {
    let readable: Vec<&Example> = examples
        .iter()
        .filter(|e| {
            catalog
                .tables
                .iter()
                .any(|t| e.sql.contains(&t.name.to_string()) || e.sql.contains(&t.name.table))
        })
        .collect();
    if readable.is_empty() || n == 0 {
        return Ok(Vec::new());
    }
    let scores: Vec<f32> = match (question_vector, store) {
        (Some(q), Some(store)) => {
            let texts: Vec<String> = readable.iter().map(|e| e.question.clone()).collect();
            store.get_many(&texts)?.iter().map(|v| cosine(q, v)).collect()
        }
        _ => {
            let words = question_terms(question);
            readable
                .iter()
                .map(|e| {
                    let other = question_terms(&e.question);
                    let shared = words.intersection(&other).count() as f32;
                    shared / (words.len() + other.len()).max(1) as f32
                })
                .collect()
        }
    };
    let mut order: Vec<usize> = (0..readable.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    Ok(order.into_iter().take(n).map(|i| readable[i].clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Column;

    fn table(db: &str, name: &str, columns: &[&str]) -> Table {
        Table {
            name: TableName::new(db, name),
            engine: "MergeTree".into(),
            columns: columns
                .iter()
                .map(|c| Column {
                    name: c.to_string(),
                    ty: "String".into(),
                    comment: String::new(),
                })
                .collect(),
        }
    }

    fn catalog() -> Catalog {
        Catalog::new(
            vec![
                table(
                    "analytics",
                    "events",
                    &["event_id", "event_type", "tenant_id", "revenue"],
                ),
                table("analytics", "users", &["user_id", "country", "signup_date"]),
                table("analytics", "tenants", &["tenant_id", "name", "plan"]),
                table("ops", "deployments", &["service", "version"]),
            ],
            "18.16.1".into(),
            0,
        )
    }

    #[test]
    fn terms_are_lowercase_stems() {
        assert_eq!(
            terms("Top Tenants by revenue_total"),
            ["top", "tenant", "by", "revenue", "total"]
        );
        assert_eq!(terms("countries"), ["country"]);
        assert_eq!(terms("class"), ["class"]);
    }

    #[test]
    fn lexical_ranking_finds_tables_by_names_and_synonyms() {
        let semantic = SemanticFile::parse(
            "tables:\n  analytics.events:\n    columns:\n      revenue: { synonyms: [sales] }\njoins:\n  - { left: analytics.events.tenant_id, right: analytics.tenants.tenant_id }\n",
        )
        .unwrap();
        let catalog = catalog();
        let index = LexicalIndex::build(&catalog, &semantic);
        let ranked = rank_tables(
            &catalog,
            &index,
            &semantic,
            "total sales by event type",
            "analytics",
            None,
            None,
            3,
        )
        .unwrap();
        assert_eq!(ranked[0].name, TableName::new("analytics", "events"));
        assert!(
            ranked[0]
                .reasons
                .iter()
                .any(|r| r.contains("synonym of column revenue")),
            "{ranked:?}"
        );
        // The join hint brings tenants along.
        assert!(ranked
            .iter()
            .any(|t| t.name.table == "tenants" && t.reasons[0].starts_with("joins with")));
        assert!(!ranked.iter().any(|t| t.name.table == "deployments"));

        let users = rank_tables(
            &catalog,
            &index,
            &semantic,
            "users per country",
            "analytics",
            None,
            None,
            3,
        )
        .unwrap();
        assert_eq!(users[0].name.table, "users");
    }

    #[test]
    fn the_request_database_comes_first_and_machinery_never() {
        let catalog = Catalog::new(
            vec![
                table("analytics", "events", &["event_id", "tenant_id", "revenue"]),
                table("analytics", "aurora_stage_events", &["tenant_id", "revenue"]),
                table("analytics", "aurora_ingest_ledger", &["topic", "revenue"]),
                table("analytics", "events_dead_letters", &["raw", "revenue"]),
                table("shop", "orders", &["order_id", "revenue"]),
                table("ops", "deployments", &["service", "version"]),
            ],
            "18.16.1".into(),
            0,
        );
        let semantic = SemanticFile::default();
        let index = LexicalIndex::build(&catalog, &semantic);
        let rank = |question: &str, database: &str| -> Vec<String> {
            rank_tables(&catalog, &index, &semantic, question, database, None, None, 5)
                .unwrap()
                .iter()
                .map(|t| t.name.to_string())
                .collect()
        };
        assert_eq!(rank("total revenue", "analytics"), ["analytics.events"]);
        assert_eq!(rank("total revenue", "shop"), ["shop.orders"]);
        // Named databases join the scope; a question that fits nothing here looks everywhere.
        assert!(rank("revenue in shop and analytics", "analytics").contains(&"shop.orders".to_string()));
        assert_eq!(rank("deployments per service", "analytics"), ["ops.deployments"]);
        // No scope (an empty or unknown database): every database, machinery still hidden.
        let everywhere = rank("total revenue", "default");
        assert_eq!(everywhere, ["analytics.events", "shop.orders"]);
    }

    #[test]
    fn examples_over_unreadable_tables_are_never_shown() {
        let semantic = SemanticFile::parse(
            "examples:\n  - { question: deployments per service, sql: 'SELECT service, count() FROM ops.deployments GROUP BY service' }\n  - { question: events per type, sql: 'SELECT event_type, count() FROM analytics.events GROUP BY event_type' }\n",
        )
        .unwrap();
        let only_analytics = Catalog::new(
            vec![table("analytics", "events", &["event_type"])],
            "18.16.1".into(),
            0,
        );
        let found = closest_examples(
            &semantic.examples,
            &only_analytics,
            "deployments per service",
            None,
            None,
            3,
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].sql.contains("analytics.events"));
    }
}
