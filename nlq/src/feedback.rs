//! Learning from answers: a user marks an ASK answer right (`good`) or wrong (`bad`), the mark is stored in a
//! ClickHouse table, and good pairs become examples for later questions asked of the same database.
//!
//! ```text
//! ASK 'q' SETTINGS aurora_feedback = 'good'  → the earlier answer to 'q' (session, then exact cache)
//!   → INSERT INTO <table> (database, user, question, sql, verdict)           (Aurora's own credentials)
//! later ASK on that database → marks(database) (cached for the catalog TTL)
//!   → good pairs the asker's own policy accepts join the semantic file's examples; bad ones never do
//! ```
//!
//! The table is written and read with the credentials configured for it, never the asker's (an analyst is
//! usually read-only). What crosses users is bounded by the asker's rights: a stored pair is offered only when
//! its SQL validates against the asking user's own catalog, so nobody sees an example over a table they
//! cannot read. A pair that anybody marked bad is never offered again, even if somebody else marked it good;
//! a question whose earlier answer was marked bad tells the model so.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aurora_common::codes::{UNKNOWN_DATABASE, UNKNOWN_TABLE};

use crate::bind::quoted_string;
use crate::clickhouse::{value_text, ClickHouseError, ClickHouseHttp, Credentials};
use crate::compare::normalize_question;
use crate::semantic::Example;
use crate::validate::TableName;

/// The marks read per database: the newest ones count.
pub const MAX_MARKS_READ: usize = 200;
/// Databases whose marks are held in memory at once (each at most [`MAX_MARKS_READ`] marks of at most
/// 2 × [`MAX_MARK_TEXT`] bytes).
pub const MAX_CACHED_DATABASES: usize = 100;
/// The longest question and SQL a mark stores (longer ones are not stored).
pub const MAX_MARK_TEXT: usize = 16 << 10;

/// A user's judgement of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    Bad,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
        }
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;

    fn from_str(text: &str) -> Result<Verdict, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "good" => Ok(Verdict::Good),
            "bad" => Ok(Verdict::Bad),
            other => Err(format!("aurora_feedback is 'good' or 'bad', not '{other}'")),
        }
    }
}

/// Where marks live and who writes them.
#[derive(Debug, Clone)]
pub struct FeedbackConfig {
    pub table: TableName,
    pub credentials: Credentials,
}

impl FeedbackConfig {
    /// Reads `database.table` (letters, digits and `_` only, as a setting that becomes SQL should be).
    pub fn parse_table(text: &str) -> Result<TableName, String> {
        let plain = |part: &str| {
            !part.is_empty()
                && !part.starts_with(|c: char| c.is_ascii_digit())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        match text.split_once('.') {
            Some((database, table)) if plain(database) && plain(table) => Ok(TableName::new(database, table)),
            _ => Err(format!(
                "'{text}' is not database.table (letters, digits and _ only), e.g. default.aurora_feedback"
            )),
        }
    }
}

/// One stored mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The database the question was asked in.
    pub database: String,
    pub user: String,
    pub question: String,
    /// The SQL as the model wrote it (literals in place, as examples are shown).
    pub sql: String,
    pub verdict: Verdict,
}

/// The marks of one database, as later questions use them.
#[derive(Debug, Default)]
pub struct Marks {
    /// Pairs marked good and never bad, newest first, one per (question, SQL).
    pub good: Vec<Example>,
    /// (normalized question, SQL) of every pair marked bad.
    pub bad: HashSet<(String, String)>,
}

impl Marks {
    /// SQL marked bad for this question.
    pub fn bad_for(&self, question: &str) -> Vec<&str> {
        let question = normalize_question(question);
        let mut found: Vec<&str> = self
            .bad
            .iter()
            .filter(|(q, _)| *q == question)
            .map(|(_, sql)| sql.as_str())
            .collect();
        found.sort_unstable();
        found
    }

    /// Builds the marks from rows `(question, sql, verdict)`, newest first.
    fn from_rows(rows: impl IntoIterator<Item = (String, String, String)>) -> Marks {
        let mut marks = Marks::default();
        let mut good: Vec<(String, Example)> = Vec::new();
        for (question, sql, verdict) in rows {
            let key = (normalize_question(&question), sql.clone());
            if verdict == "bad" {
                marks.bad.insert(key);
            } else if !good.iter().any(|(q, e)| (q, &e.sql) == (&key.0, &key.1)) {
                good.push((
                    key.0,
                    Example {
                        question,
                        sql,
                        params: Default::default(),
                    },
                ));
            }
        }
        marks.good = good
            .into_iter()
            .filter(|(q, e)| !marks.bad.contains(&(q.clone(), e.sql.clone())))
            .map(|(_, e)| e)
            .collect();
        marks
    }
}

/// Writes marks and reads them back per database, cached.
pub struct FeedbackStore {
    clickhouse: ClickHouseHttp,
    config: FeedbackConfig,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Arc<Marks>)>>,
}

impl FeedbackStore {
    pub fn new(clickhouse: ClickHouseHttp, config: FeedbackConfig, ttl: Duration) -> FeedbackStore {
        FeedbackStore {
            clickhouse,
            config,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn table(&self) -> &TableName {
        &self.config.table
    }

    fn quoted_table(&self) -> String {
        let TableName { database, table } = &self.config.table;
        format!(
            "`{}`.`{}`",
            database.replace('`', "\\`"),
            table.replace('`', "\\`")
        )
    }

    /// Stores `mark` (creating the database and the table the first time).
    pub async fn record(&self, mark: &Mark) -> Result<(), ClickHouseError> {
        if mark.question.len() > MAX_MARK_TEXT || mark.sql.len() > MAX_MARK_TEXT {
            return Err(ClickHouseError {
                code: None,
                message: format!(
                    "a marked question or SQL is longer than {MAX_MARK_TEXT} bytes and is not stored"
                ),
            });
        }
        let table = self.quoted_table();
        let row = serde_json::json!({
            "database": mark.database,
            "user": mark.user,
            "question": mark.question,
            "sql": mark.sql,
            "verdict": mark.verdict.as_str(),
        });
        let insert =
            format!("INSERT INTO {table} (database, user, question, sql, verdict) FORMAT JSONEachRow");
        let body = row.to_string().into_bytes();
        let credentials = &self.config.credentials;
        let first = self.clickhouse.command(credentials, &insert, body.clone()).await;
        match first {
            Err(error) if error.code == Some(UNKNOWN_TABLE) || error.code == Some(UNKNOWN_DATABASE) => {
                let database = format!(
                    "CREATE DATABASE IF NOT EXISTS `{}`",
                    self.config.table.database.replace('`', "\\`")
                );
                self.clickhouse
                    .command(credentials, &database, Vec::new())
                    .await?;
                self.clickhouse
                    .command(credentials, &self.create_sql(), Vec::new())
                    .await?;
                self.clickhouse.command(credentials, &insert, body).await?;
            }
            other => other?,
        }
        self.cache.lock().expect("feedback lock").remove(&mark.database);
        Ok(())
    }

    fn create_sql(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (at DateTime DEFAULT now(), database String, user String, question String, sql String, verdict Enum8('bad' = -1, 'good' = 1)) ENGINE = MergeTree ORDER BY (database, at)",
            self.quoted_table()
        )
    }

    /// The marks of `database`: read at most once per TTL; a table that does not exist yet means none, and a
    /// read that fails means none for now (logged), so feedback never stops an ASK.
    pub async fn marks(&self, database: &str) -> Arc<Marks> {
        if let Some((at, marks)) = self.cache.lock().expect("feedback lock").get(database) {
            if at.elapsed() < self.ttl {
                return marks.clone();
            }
        }
        let sql = format!(
            "SELECT question, sql, toString(verdict) FROM {} WHERE database = {} ORDER BY at DESC LIMIT {MAX_MARKS_READ}",
            self.quoted_table(),
            quoted_string(database)
        );
        let marks = match self
            .clickhouse
            .query(&self.config.credentials, None, &sql, &[])
            .await
        {
            Ok(result) => Marks::from_rows(result.rows.iter().filter_map(|row| match row.as_slice() {
                [q, s, v] => Some((value_text(q), value_text(s), value_text(v))),
                _ => None,
            })),
            Err(error) if error.code == Some(UNKNOWN_TABLE) || error.code == Some(UNKNOWN_DATABASE) => {
                Marks::default()
            }
            Err(error) => {
                tracing::warn!(%error, table = %self.config.table, "cannot read ASK feedback; answering without it");
                Marks::default()
            }
        };
        let marks = Arc::new(marks);
        let mut cache = self.cache.lock().expect("feedback lock");
        if cache.len() >= MAX_CACHED_DATABASES {
            cache.clear();
        }
        cache.insert(database.to_string(), (Instant::now(), marks.clone()));
        marks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(q: &str, sql: &str, v: &str) -> (String, String, String) {
        (q.into(), sql.into(), v.into())
    }

    #[test]
    fn verdicts_read_good_or_bad_only() {
        assert_eq!("good".parse::<Verdict>(), Ok(Verdict::Good));
        assert_eq!(" BAD ".parse::<Verdict>(), Ok(Verdict::Bad));
        assert!("1".parse::<Verdict>().unwrap_err().contains("'good' or 'bad'"));
    }

    #[test]
    fn the_table_is_database_dot_table_of_plain_names() {
        assert_eq!(
            FeedbackConfig::parse_table("default.aurora_feedback"),
            Ok(TableName::new("default", "aurora_feedback"))
        );
        for bad in ["aurora_feedback", "a.b.c", "a.`b`", "a.b;DROP", ".b", "1a.b"] {
            assert!(FeedbackConfig::parse_table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pair_marked_bad_once_is_never_an_example() {
        let marks = Marks::from_rows([
            row("Events per day?", "SELECT 1", "good"),
            row("events per day", "SELECT 1", "bad"),
            row("events per day", "SELECT 2", "good"),
            row("events per day", "SELECT 2", "good"),
            row("top tenants", "SELECT 3", "good"),
        ]);
        let good: Vec<&str> = marks.good.iter().map(|e| e.sql.as_str()).collect();
        assert_eq!(good, ["SELECT 2", "SELECT 3"]);
        assert_eq!(marks.bad_for("Events per day?"), ["SELECT 1"]);
        assert!(marks.bad_for("top tenants").is_empty());
    }
}
