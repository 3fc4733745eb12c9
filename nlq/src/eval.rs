//! Evaluation: how often the pipeline answers a question set correctly.
//!
//! Each question of a set (YAML: `id`, `question`, reference `sql`, `tags`, `ordered`) goes through the whole
//! pipeline as a user's ASK would — catalog, retrieval, context, model, validation, binding, execution with one
//! correction — and its result is compared with the reference query's. Reported:
//! - **validity**: the generated query passed validation and ClickHouse ran it;
//! - **execution accuracy**: its rows equal the reference's (as multisets, or in order when `ordered`);
//!   numbers compare after rounding to 2 decimals (the references round money that way), and column names
//!   and order do not matter (each row compares as the sorted list of its values);
//! - **latency** per question (p50, p95).
//!
//! The baseline is the same model with a bare prompt: every table's columns and types, no retrieval, no
//! semantic file, no examples, no sampled values.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::clickhouse::{ClickHouseError, ClickHouseHttp, QueryResult};
use crate::engine::{AskOptions, Asker, Engine, Plan};
use crate::llm::Usage;

pub use crate::compare::same_result;

#[derive(Debug, Clone, Deserialize)]
pub struct EvalQuestion {
    pub id: String,
    pub question: String,
    pub sql: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub ordered: bool,
}

#[derive(Deserialize)]
struct QuestionFile {
    questions: Vec<EvalQuestion>,
}

pub fn load_questions(path: &Path) -> Result<Vec<EvalQuestion>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: QuestionFile = serde_saphyr::from_str(&text)
        .map_err(|e| format!("{} is not a question file: {e}", path.display()))?;
    Ok(file.questions)
}

/// What happened to one question.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: String,
    /// The generated query validated and ClickHouse ran it.
    pub valid: bool,
    /// Its rows equal the reference's.
    pub correct: bool,
    /// A ClickHouse error went back to the model.
    pub corrected: bool,
    pub latency: Duration,
    pub sql: Option<String>,
    pub error: Option<String>,
    /// easy, medium or hard (from the question's tags), `-` when it has none.
    pub difficulty: String,
    /// Tokens and model time of every call for this question (corrections included).
    pub usage: Usage,
    /// The SQL as the model wrote it, and the parameters Aurora bound.
    pub written_sql: Option<String>,
    pub params: Option<String>,
    /// The conversation with the model (prompt, answers).
    pub transcript: Option<String>,
}

/// Which prompt the model gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pipeline,
    Baseline,
}

/// Runs one question through the pipeline (or the baseline) and compares with `reference`.
pub async fn run_question(
    engine: &Engine,
    asker: &Asker,
    question: &EvalQuestion,
    reference: &QueryResult,
    mode: Mode,
) -> Outcome {
    let started = Instant::now();
    let options = AskOptions {
        refresh_catalog: false,
        no_cache: true,
        ..AskOptions::default()
    };
    let (planned, stats) = match mode {
        Mode::Pipeline => engine.plan(&question.question, asker, options).await,
        Mode::Baseline => engine.plan_baseline(&question.question, asker).await,
    };
    let difficulty = ["easy", "medium", "hard"]
        .into_iter()
        .find(|d| question.tags.iter().any(|t| t == d))
        .unwrap_or("-");
    let mut outcome = Outcome {
        id: question.id.clone(),
        valid: false,
        correct: false,
        corrected: false,
        latency: Duration::ZERO,
        sql: None,
        error: None,
        difficulty: difficulty.to_string(),
        usage: stats.usage,
        written_sql: None,
        params: None,
        transcript: None,
    };
    let mut plan = match planned {
        Ok(plan) => plan,
        Err(error) => {
            outcome.error = Some(error.to_string());
            outcome.latency = started.elapsed();
            return outcome;
        }
    };
    let mut result = execute(engine, asker, &plan).await;
    if let Err(error) = &result {
        let (corrected, stats) = engine.correct(&plan, asker, &error.message).await;
        outcome.corrected = true;
        outcome.usage.add(&stats.usage);
        match corrected {
            Ok(new_plan) => {
                plan = new_plan;
                result = execute(engine, asker, &plan).await;
            }
            Err(error) => {
                outcome.sql = Some(plan.sql.clone());
                outcome.error = Some(error.to_string());
                outcome.latency = started.elapsed();
                return outcome;
            }
        }
    }
    outcome.sql = Some(plan.sql.clone());
    outcome.written_sql = Some(plan.written_sql.clone());
    outcome.params = Some(plan.params_json());
    outcome.transcript = Some(plan.transcript());
    outcome.latency = started.elapsed();
    match result {
        Ok(rows) => {
            outcome.valid = true;
            outcome.correct = same_result(&rows, reference, question.ordered);
        }
        Err(error) => outcome.error = Some(error.message),
    }
    outcome
}

/// Runs a plan the way the proxy would over HTTP: the bounded query, parameters or literals, readonly.
pub async fn execute(engine: &Engine, asker: &Asker, plan: &Plan) -> Result<QueryResult, ClickHouseError> {
    engine.execute(plan, asker, engine.config().max_rows).await
}

/// Runs a reference query.
pub async fn reference(
    ch: &ClickHouseHttp,
    asker: &Asker,
    sql: &str,
) -> Result<QueryResult, ClickHouseError> {
    ch.query(&asker.credentials, Some(&asker.database), sql, &[])
        .await
}

/// Totals over outcomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub questions: usize,
    pub valid: usize,
    pub correct: usize,
    pub corrected: usize,
    pub p50: Duration,
    pub p95: Duration,
    /// (difficulty, correct, questions), easy, medium, hard, then any other.
    pub by_difficulty: Vec<(String, usize, usize)>,
    /// Model time and tokens over all questions.
    pub usage: Usage,
    /// Median prompt tokens of one question (all its calls).
    pub prompt_tokens_p50: u64,
}

pub fn summarize(outcomes: &[Outcome]) -> Summary {
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort();
    let pick = |q: f64| {
        if latencies.is_empty() {
            Duration::ZERO
        } else {
            latencies[((latencies.len() as f64 - 1.0) * q).round() as usize]
        }
    };
    Summary {
        questions: outcomes.len(),
        valid: outcomes.iter().filter(|o| o.valid).count(),
        correct: outcomes.iter().filter(|o| o.correct).count(),
        corrected: outcomes.iter().filter(|o| o.corrected).count(),
        p50: pick(0.5),
        p95: pick(0.95),
        by_difficulty: {
            let mut levels: Vec<String> = vec!["easy".into(), "medium".into(), "hard".into()];
            for o in outcomes {
                if !levels.contains(&o.difficulty) {
                    levels.push(o.difficulty.clone());
                }
            }
            levels
                .into_iter()
                .map(|level| {
                    let total = outcomes.iter().filter(|o| o.difficulty == level).count();
                    let correct = outcomes
                        .iter()
                        .filter(|o| o.difficulty == level && o.correct)
                        .count();
                    (level, correct, total)
                })
                .filter(|(_, _, total)| *total > 0)
                .collect()
        },
        usage: outcomes.iter().fold(Usage::default(), |mut sum, o| {
            sum.add(&o.usage);
            sum
        }),
        prompt_tokens_p50: {
            let mut tokens: Vec<u64> = outcomes.iter().map(|o| o.usage.prompt_tokens).collect();
            tokens.sort_unstable();
            tokens
                .get(tokens.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or(0)
        },
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |n: usize| 100.0 * n as f64 / self.questions.max(1) as f64;
        write!(
            f,
            "execution accuracy {}/{} ({:.0}%), valid {}/{} ({:.0}%), corrections {}, latency p50 {:.1} s, p95 {:.1} s",
            self.correct,
            self.questions,
            pct(self.correct),
            self.valid,
            self.questions,
            pct(self.valid),
            self.corrected,
            self.p50.as_secs_f64(),
            self.p95.as_secs_f64()
        )?;
        let levels: Vec<String> = self
            .by_difficulty
            .iter()
            .map(|(level, correct, total)| format!("{level} {correct}/{total}"))
            .collect();
        write!(f, "; {}", levels.join(", "))?;
        let model_ms = self.usage.prompt_ms + self.usage.generation_ms;
        if model_ms > 0.0 {
            write!(
                f,
                "; model time {:.0} s: prompt reading {:.0} s ({:.0}%), generation {:.0} s",
                model_ms / 1000.0,
                self.usage.prompt_ms / 1000.0,
                100.0 * self.usage.prompt_ms / model_ms,
                self.usage.generation_ms / 1000.0
            )?;
        }
        write!(
            f,
            "; prompt tokens p50 {} per question, {:.0}% of all read from the server's cache",
            self.prompt_tokens_p50,
            100.0 * self.usage.cached_tokens as f64 / self.usage.prompt_tokens.max(1) as f64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_and_take_percentiles() {
        let outcome = |valid, correct, ms| Outcome {
            id: "q".into(),
            valid,
            correct,
            corrected: false,
            latency: Duration::from_millis(ms),
            sql: None,
            error: None,
            written_sql: None,
            params: None,
            transcript: None,
            difficulty: if ms == 300 { "hard".into() } else { "easy".into() },
            usage: Usage {
                prompt_tokens: ms,
                cached_tokens: ms / 2,
                prompt_ms: 3.0 * ms as f64,
                generation_ms: ms as f64,
                ..Usage::default()
            },
        };
        let s = summarize(&[
            outcome(true, true, 100),
            outcome(true, false, 300),
            outcome(false, false, 200),
        ]);
        assert_eq!((s.questions, s.valid, s.correct), (3, 2, 1));
        assert_eq!(s.p50, Duration::from_millis(200));
        assert_eq!(
            s.by_difficulty,
            [("easy".to_string(), 1, 2), ("hard".to_string(), 0, 1)]
        );
        let text = s.to_string();
        assert!(
            text.starts_with("execution accuracy 1/3 (33%), valid 2/3 (67%)"),
            "{text}"
        );
        assert!(
            text.contains("; easy 1/2, hard 0/1; model time 2 s: prompt reading 2 s (75%), generation 1 s"),
            "{text}"
        );
        assert!(
            text.contains("prompt tokens p50 200 per question, 50% of all"),
            "{text}"
        );
    }
}
