//! The optional semantic file: what the schema alone does not say. Descriptions and synonyms of tables and
//! columns, join hints, and example question → SQL pairs, written by the people who know the data.
//!
//! ```yaml
//! tables:
//!   analytics.events:
//!     description: One row per tracked user action.
//!     synonyms: [activity, actions]
//!     columns:
//!       revenue: { description: Money from purchases., synonyms: [sales, income] }
//! joins:
//!   - { left: analytics.events.user_id, right: analytics.users.user_id }
//! examples:
//!   - question: How many signups did acme have in October 2026?
//!     sql: "SELECT count() FROM analytics.events WHERE tenant_id = {tenant:String} AND event_type = 'signup'"
//!     params: { tenant: acme }
//! ```
//!
//! Unknown keys are errors, so a typo does not silently drop knowledge. Tables and columns the file names but
//! the catalog does not have are ignored at use (the file may cover several deployments).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SemanticFile {
    /// Keyed by `database.table`.
    #[serde(default)]
    pub tables: BTreeMap<String, TableNotes>,
    #[serde(default)]
    pub joins: Vec<JoinHint>,
    #[serde(default)]
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableNotes {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub synonyms: Vec<String>,
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnNotes>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnNotes {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub synonyms: Vec<String>,
}

/// Two columns, `database.table.column` each, that join.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JoinHint {
    pub left: String,
    pub right: String,
}

impl JoinHint {
    /// The `database.table` parts of both sides.
    pub fn tables(&self) -> (&str, &str) {
        (table_part(&self.left), table_part(&self.right))
    }
}

fn table_part(column: &str) -> &str {
    column.rsplit_once('.').map(|(t, _)| t).unwrap_or(column)
}

/// A question with the SQL that answers it, in the shape the model must answer in.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub question: String,
    pub sql: String,
    #[serde(default)]
    pub params: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum SemanticError {
    #[error("cannot read the semantic file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the semantic file {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
}

impl SemanticFile {
    pub fn load(path: &Path) -> Result<SemanticFile, SemanticError> {
        let text = std::fs::read_to_string(path).map_err(|e| SemanticError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|reason| SemanticError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<SemanticFile, String> {
        let file: SemanticFile = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        for name in file.tables.keys() {
            if !name.contains('.') {
                return Err(format!("table key {name:?} must be database.table"));
            }
        }
        for join in &file.joins {
            for side in [&join.left, &join.right] {
                if side.split('.').count() != 3 {
                    return Err(format!("join side {side:?} must be database.table.column"));
                }
            }
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let file = SemanticFile::parse(
            r#"
tables:
  analytics.events:
    description: One row per action.
    synonyms: [activity]
    columns:
      revenue: { description: Money., synonyms: [sales] }
joins:
  - { left: analytics.events.user_id, right: analytics.users.user_id }
examples:
  - question: How many?
    sql: "SELECT count() FROM analytics.events WHERE tenant_id = {t:String}"
    params: { t: acme }
"#,
        )
        .unwrap();
        let events = &file.tables["analytics.events"];
        assert_eq!(events.synonyms, ["activity"]);
        assert_eq!(events.columns["revenue"].synonyms, ["sales"]);
        assert_eq!(file.joins[0].tables(), ("analytics.events", "analytics.users"));
        assert_eq!(file.examples[0].params["t"], "acme");
    }

    #[test]
    fn typos_and_bad_names_are_errors() {
        let typo = SemanticFile::parse("tabels: {}\n").unwrap_err();
        assert!(typo.contains("tabels"), "{typo}");
        let bare = SemanticFile::parse("tables:\n  events: {}\n").unwrap_err();
        assert!(bare.contains("database.table"), "{bare}");
        let join = SemanticFile::parse("joins:\n  - { left: a.b, right: a.b.c }\n").unwrap_err();
        assert!(join.contains("database.table.column"), "{join}");
    }
}
