//! The model's round trips: asking it ([`Engine::answer`]: one retry for a malformed answer, repairs of a
//! refused one), checking what it wrote (validation, lifting, parameters), choosing among several candidates
//! by running them, and running a plan ([`Engine::execute`]).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use super::{AskError, AskStats, Asker, Engine, Plan, CANDIDATE_ROWS};
use crate::bind::check_params;
use crate::catalog::Catalog;
use crate::clickhouse::ClickHouseError;
use crate::lift::lift;
use crate::llm::{parse_draft, shorten, Draft, Llm, Message};
use crate::retrieve::RankedTable;
use crate::validate::validate;

impl Engine {
    /// Asks the model; a malformed answer gets one retry that says what was wrong.
    async fn ask_model(
        &self,
        llm: &Llm,
        conversation: &mut Vec<Message>,
        stats: &mut AskStats,
    ) -> Result<(Draft, String), AskError> {
        let stage = Instant::now();
        let result = async {
            let mut attempt = 0;
            loop {
                let (text, usage, elapsed) = llm.complete(conversation).await.map_err(AskError::Llm)?;
                stats.llm_durations.push(elapsed);
                stats.usage.add(&usage);
                match parse_draft(&text) {
                    Ok(draft) => return Ok((draft, text)),
                    Err(reason) if attempt == 0 => {
                        attempt += 1;
                        stats.malformed_retries += 1;
                        tracing::info!(%reason, "malformed LLM answer; asking again");
                        conversation.push(Message::Assistant(text));
                        conversation.push(Message::User(format!(
                            "That answer was not usable: {reason}. Answer again with only the JSON object {{\"sql\": ..., \"params\": {{...}}, \"explanation\": ...}}."
                        )));
                    }
                    Err(reason) => {
                        return Err(AskError::Malformed {
                            reason,
                            answer: shorten(&text, 300),
                        })
                    }
                }
            }
        }
        .await;
        stats.stages.push(("llm", stage.elapsed()));
        result
    }

    /// Asks the model and checks its answer; an answer Aurora refuses goes back with the reason, up to
    /// `repair_attempts` times.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn answer(
        &self,
        llm: &Llm,
        question: &str,
        asker: &Asker,
        catalog: &Arc<Catalog>,
        chosen: &[RankedTable],
        mut conversation: Vec<Message>,
        stats: &mut AskStats,
    ) -> Result<Plan, AskError> {
        let mut repairs = 0;
        // A plan that ran but found nothing, kept in case its repair is refused.
        let mut empty: Option<Plan> = None;
        loop {
            let (draft, answer) = match self.ask_model(llm, &mut conversation, stats).await {
                Err(_) if empty.is_some() => return Ok(empty.take().expect("checked")),
                other => other?,
            };
            let checked = self.check(
                question,
                asker,
                catalog.clone(),
                chosen.to_vec(),
                draft,
                answer.clone(),
                conversation.clone(),
                stats,
            );
            match checked {
                Err(error @ (AskError::Rejected { .. } | AskError::Params { .. }))
                    if repairs < self.config.repair_attempts =>
                {
                    repairs += 1;
                    stats.repairs += 1;
                    tracing::info!(
                        code = error.code(),
                        "refused answer; asking the model to repair it"
                    );
                    conversation.push(Message::Assistant(answer));
                    conversation.push(Message::User(format!(
                        "Aurora refused that query: {}\nWrite a corrected query for the question \"{}\", using only the tables and columns listed. Answer with only the JSON object.",
                        shorten(&error.to_string(), 1500),
                        shorten(question, 1000)
                    )));
                }
                Ok(plan) if self.config.candidates > 1 => {
                    return Ok(self.choose_candidate(llm, plan, asker, stats).await);
                }
                Ok(plan) if self.config.repair_empty && repairs < self.config.repair_attempts => {
                    let Some(reason) = self.finds_nothing(&plan, asker).await else {
                        return Ok(plan);
                    };
                    repairs += 1;
                    stats.empty_repairs += 1;
                    tracing::info!(
                        reason,
                        "the answer ran but found nothing; asking the model to check it"
                    );
                    conversation.push(Message::Assistant(answer));
                    conversation.push(Message::User(format!(
                        "That query ran but {reason}. Check the values it compares with (the sampled values show how the data writes them), its filters, joins and time window. If nothing is the right answer to \"{}\", repeat the same query; otherwise write a corrected one. Answer with only the JSON object.",
                        shorten(question, 1000)
                    )));
                    empty = Some(plan);
                }
                Err(_) if empty.is_some() => return Ok(empty.take().expect("checked")),
                other => return other,
            }
        }
    }

    /// Asks for `candidates - 1` more answers (sampled, temperature 0.7) to the same prompt, runs every valid
    /// one read-only on at most [`CANDIDATE_ROWS`] rows, and keeps the first answer of the largest group of
    /// identical results (ties: the earlier group). Answers that fail to validate or to run do not vote.
    async fn choose_candidate(&self, llm: &Llm, first: Plan, asker: &Asker, stats: &mut AskStats) -> Plan {
        let mut plans = vec![first];
        for _ in 1..self.config.candidates {
            let stage = Instant::now();
            let called = llm.complete_sampled(&plans[0].conversation, 0.7).await;
            stats.stages.push(("llm", stage.elapsed()));
            let Ok((text, usage, elapsed)) = called else {
                continue;
            };
            stats.llm_durations.push(elapsed);
            stats.usage.add(&usage);
            let Ok(draft) = parse_draft(&text) else { continue };
            let base = &plans[0];
            if let Ok(plan) = self.check(
                &base.question,
                asker,
                base.catalog.clone(),
                base.chosen.clone(),
                draft,
                text,
                base.conversation.clone(),
                stats,
            ) {
                plans.push(plan);
            }
        }
        let mut results = Vec::with_capacity(plans.len());
        for plan in &plans {
            results.push(self.execute(plan, asker, CANDIDATE_ROWS).await.ok());
        }
        // (index of the group's first plan, votes)
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for (i, result) in results.iter().enumerate() {
            let Some(rows) = result else { continue };
            match groups.iter_mut().find(|(g, _)| {
                results[*g]
                    .as_ref()
                    .is_some_and(|other| crate::compare::same_result(rows, other, false))
            }) {
                Some((_, votes)) => *votes += 1,
                None => groups.push((i, 1)),
            }
        }
        let ran = groups.iter().map(|(_, v)| v).sum();
        let (winner, votes) = groups
            .iter()
            .copied()
            .fold(None, |best: Option<(usize, usize)>, g| match best {
                Some(b) if b.1 >= g.1 => Some(b),
                _ => Some(g),
            })
            .unwrap_or((0, 0));
        stats.candidates = Some((ran, votes));
        tracing::debug!(
            candidates = plans.len(),
            ran,
            votes,
            "candidate chosen by agreement"
        );
        plans.swap_remove(winner)
    }

    /// Runs `plan` read-only on at most [`CANDIDATE_ROWS`] rows and says what is suspicious about the result
    /// ([`nothing_found`]). `None` when it has values, and when it fails to run
    /// (the proxy's correction handles errors).
    async fn finds_nothing(&self, plan: &Plan, asker: &Asker) -> Option<&'static str> {
        let result = self.execute(plan, asker, CANDIDATE_ROWS).await.ok()?;
        nothing_found(&result)
    }

    /// Runs `plan` as the proxy would over HTTP, on at most `max_rows` rows: with the asker's credentials and
    /// database, query parameters or literals by the server's version, `readonly` unless the profile sets it.
    pub async fn execute(
        &self,
        plan: &Plan,
        asker: &Asker,
        max_rows: u64,
    ) -> Result<crate::clickhouse::QueryResult, ClickHouseError> {
        let executable = plan
            .executable(plan.catalog.supports_parameters(), max_rows)
            .map_err(|e| ClickHouseError {
                code: Some(e.code()),
                message: e.to_string(),
            })?;
        let mut params: Vec<(String, String)> = executable
            .parameters
            .iter()
            .map(|(k, v)| (format!("param_{k}"), v.clone()))
            .collect();
        if executable.set_readonly {
            params.push(("readonly".into(), "1".into()));
        }
        self.clickhouse
            .query(
                &asker.credentials,
                Some(&asker.database),
                &executable.sql,
                &params,
            )
            .await
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        question: &str,
        asker: &Asker,
        catalog: Arc<Catalog>,
        chosen: Vec<RankedTable>,
        draft: Draft,
        answer: String,
        conversation: Vec<Message>,
        stats: &mut AskStats,
    ) -> Result<Plan, AskError> {
        let stage = Instant::now();
        let policy = catalog.policy(asker.current_database(), self.config.allow_system_tables);
        // What the server's dialect rejects although its meaning is clear is fixed first (crate::dialect).
        let adapted = crate::dialect::adapt(&draft.sql, catalog.server_major_minor(), &catalog);
        let sql = adapted.as_deref().unwrap_or(&draft.sql);
        let result = validate(sql, &policy)
            .map_err(|error| AskError::Rejected {
                sql: sql.to_string(),
                error,
            })
            .and_then(|written| {
                // The model's literals become typed parameters; the lifted form is validated again, with the
                // same policy, and is what runs and what EXPLAIN ASK shows.
                let lifted = lift(&written, &catalog, &draft.params);
                let validated = validate(&lifted.sql, &policy).map_err(|error| AskError::Rejected {
                    sql: lifted.sql.clone(),
                    error,
                })?;
                let bound = check_params(&validated.placeholders, &lifted.params).map_err(|error| {
                    AskError::Params {
                        sql: lifted.sql.clone(),
                        error,
                    }
                })?;
                let params: Map<String, Value> = lifted
                    .params
                    .into_iter()
                    .filter(|(name, _)| validated.placeholders.iter().any(|p| &p.name == name))
                    .collect();
                Ok(Plan {
                    question: question.to_string(),
                    sql: lifted.sql,
                    written_sql: draft.sql.clone(),
                    params,
                    bound,
                    explanation: draft.explanation.clone(),
                    tables: validated.tables.iter().map(|t| t.to_string()).collect(),
                    chosen,
                    follows: None,
                    cached: None,
                    catalog: catalog.clone(),
                    validated,
                    policy,
                    conversation,
                    answer,
                })
            });
        stats.stages.push(("validate", stage.elapsed()));
        result
    }
}

/// Why a result looks like the query found nothing: no rows, rows of NULLs only, or one row of zeros (a count
/// or sum over rows that a misspelt value filtered away).
pub(super) fn nothing_found(result: &crate::clickhouse::QueryResult) -> Option<&'static str> {
    if result.rows.is_empty() {
        return Some("returned no rows");
    }
    if result.rows.iter().flatten().all(Value::is_null) {
        return Some("returned only NULL values");
    }
    // JSONCompact quotes 64-bit integers, so a count of nothing is "0".
    let zero = |v: &Value| match v {
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s == "0",
        Value::Null => true,
        _ => false,
    };
    if let [row] = result.rows.as_slice() {
        if row.iter().all(zero) {
            return Some("returned 0");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::nothing_found;
    use crate::clickhouse::QueryResult;
    use serde_json::json;

    fn result(rows: Vec<Vec<serde_json::Value>>) -> QueryResult {
        QueryResult {
            columns: vec![("n".into(), "Nullable(UInt64)".into())],
            rows,
        }
    }

    #[test]
    fn empty_null_and_single_zero_results_are_suspicious() {
        assert_eq!(nothing_found(&result(vec![])), Some("returned no rows"));
        assert_eq!(
            nothing_found(&result(vec![vec![json!(null)], vec![json!(null)]])),
            Some("returned only NULL values")
        );
        assert_eq!(nothing_found(&result(vec![vec![json!("0")]])), Some("returned 0"));
        assert_eq!(
            nothing_found(&result(vec![vec![json!(0.0), json!(null)]])),
            Some("returned 0")
        );
        assert_eq!(
            nothing_found(&result(vec![vec![json!("0")], vec![json!("0")]])),
            None
        );
        assert_eq!(nothing_found(&result(vec![vec![json!("12")]])), None);
        assert_eq!(
            nothing_found(&result(vec![vec![json!(null)], vec![json!("acme")]])),
            None
        );
    }
}
