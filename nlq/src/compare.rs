//! How questions and results compare: [`normalize_question`] (cache keys, users' marks, follow-ups) and
//! [`same_result`] (execution accuracy in [`crate::eval`], agreement of candidate answers in the engine).

use serde_json::Value;

use crate::clickhouse::{value_text, QueryResult};

/// A question as cache keys and marks see it: trimmed, lower-case, single spaces, no trailing punctuation.
pub fn normalize_question(question: &str) -> String {
    question
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .trim_end_matches(['?', '.', '!'])
        .to_string()
}

fn normalise_value(value: &Value) -> String {
    let text = value_text(value);
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && !text.is_empty() => {
            let rounded = (x * 100.0).round() / 100.0;
            if rounded == 0.0 {
                "0".into()
            } else {
                format!("{rounded}")
            }
        }
        _ => text,
    }
}

fn normalise_row(row: &[Value]) -> Vec<String> {
    let mut values: Vec<String> = row.iter().map(normalise_value).collect();
    values.sort();
    values
}

/// Whether two results hold the same rows (see the module documentation for what "same" means).
pub fn same_result(got: &QueryResult, reference: &QueryResult, ordered: bool) -> bool {
    if got.rows.len() != reference.rows.len() {
        return false;
    }
    let mut a: Vec<Vec<String>> = got.rows.iter().map(|r| normalise_row(r)).collect();
    let mut b: Vec<Vec<String>> = reference.rows.iter().map(|r| normalise_row(r)).collect();
    if !ordered {
        a.sort();
        b.sort();
    }
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(rows: Vec<Vec<Value>>) -> QueryResult {
        QueryResult {
            columns: vec![],
            rows,
        }
    }

    #[test]
    fn results_compare_as_rounded_multisets_or_in_order() {
        let a = result(vec![
            vec![json!("acme"), json!(10.004)],
            vec![json!("globex"), json!("3")],
        ]);
        let b = result(vec![
            vec![json!(3), json!("globex")],
            vec![json!(10.0), json!("acme")],
        ]);
        assert!(same_result(&a, &b, false));
        assert!(!same_result(&a, &b, true));
        let c = result(vec![
            vec![json!("acme"), json!(10.2)],
            vec![json!("globex"), json!(3)],
        ]);
        assert!(!same_result(&a, &c, false));
        assert!(!same_result(&a, &result(vec![]), false));
    }
}
