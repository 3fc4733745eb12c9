//! `aurora-eval`: execution accuracy, validity and latency of ASK over a question set, against a real
//! ClickHouse and a real model, with the bare schema-dump prompt as the baseline.
//!
//! ```text
//! aurora-eval --questions fixtures/analytics/questions.yaml --semantic-file fixtures/analytics/semantic.yaml \
//!     --clickhouse-url http://127.0.0.1:8123 --llm-base-url http://127.0.0.1:8090/v1 --llm-model qwen \
//!     [--embed-model-dir DIR] [--baseline] [--learn N] [--limit N] [--json FILE]
//! ```
//!
//! `--learn N` measures learning from answers: after the first pass, the first N questions the pipeline
//! answered right are marked good (as a user would mark them, stored in `--feedback-table`), and every other
//! question is asked again; the report compares the two passes on those unmarked questions.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use nlq::clickhouse::{ClickHouseHttp, Credentials};
use nlq::eval::{load_questions, reference, run_question, summarize, Mode, Outcome};
use nlq::{Asker, Engine, EngineConfig, FeedbackConfig, Verdict};

#[derive(Debug, Parser)]
#[command(name = "aurora-eval", version, about = "Evaluate ASK over a question set")]
struct Cli {
    /// Question file (YAML: questions: [{id, question, sql, tags, ordered}]).
    #[arg(long)]
    questions: PathBuf,
    /// Semantic file for the pipeline (the baseline never uses it).
    #[arg(long)]
    semantic_file: Option<PathBuf>,
    /// ClickHouse HTTP interface.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    clickhouse_url: String,
    #[arg(long, default_value = "default")]
    user: String,
    /// The password, from the environment only.
    #[arg(
        long,
        env = "AURORA_EVAL_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    password: String,
    /// The database unqualified names refer to.
    #[arg(long, default_value = "default")]
    database: String,
    /// OpenAI-compatible endpoint, e.g. http://127.0.0.1:8090/v1.
    #[arg(long)]
    llm_base_url: String,
    #[arg(long)]
    llm_model: String,
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    llm_timeout: Duration,
    #[arg(long, default_value_t = 512)]
    llm_max_tokens: u32,
    /// Sentence-embedding model directory (ORT_DYLIB_PATH must name ONNX Runtime).
    #[arg(long)]
    embed_model_dir: Option<PathBuf>,
    /// Also run the baseline (bare schema dump prompt).
    #[arg(long)]
    baseline: bool,
    /// Only the first N questions.
    #[arg(long)]
    limit: Option<usize>,
    /// Only questions with these ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    ids: Vec<String>,
    /// Mark the first N right answers good, then ask the other questions again (0: no second pass).
    #[arg(long, default_value_t = 0)]
    learn: usize,
    /// Where --learn stores its marks; dropped at the start of every run with --learn.
    #[arg(long, default_value = "default.aurora_eval_feedback")]
    feedback_table: String,
    /// Answers asked of the model per question; above 1 the one most of them agree with is kept.
    #[arg(long, default_value_t = 1)]
    candidates: u32,
    /// An answer that runs but finds nothing (no rows, only NULLs) goes back to the model once.
    #[arg(long)]
    repair_empty: bool,
    /// Write every outcome as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aurora-eval: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let mut questions = load_questions(&cli.questions)?;
    if !cli.ids.is_empty() {
        questions.retain(|q| cli.ids.contains(&q.id));
    }
    if let Some(limit) = cli.limit {
        questions.truncate(limit);
    }
    let mut config = EngineConfig::new(cli.clickhouse_url.clone());
    config.llm = Some(nlq::llm::LlmConfig {
        base_url: cli.llm_base_url.clone(),
        model: cli.llm_model.clone(),
        api_key: std::env::var("AURORA_LLM_API_KEY").ok().filter(|k| !k.is_empty()),
        timeout: cli.llm_timeout,
        max_tokens: cli.llm_max_tokens,
    });
    config.semantic_file = cli.semantic_file.clone();
    config.embed_model_dir = cli.embed_model_dir.clone();
    config.catalog_ttl = Duration::from_secs(3600);
    config.candidates = cli.candidates.clamp(1, 5);
    config.repair_empty = cli.repair_empty;
    let credentials = Credentials::new(cli.user.clone(), cli.password.clone());
    if cli.learn > 0 {
        let table =
            FeedbackConfig::parse_table(&cli.feedback_table).map_err(|e| format!("--feedback-table: {e}"))?;
        let ch =
            ClickHouseHttp::new(&cli.clickhouse_url, Duration::from_secs(60)).map_err(|e| e.to_string())?;
        ch.command(&credentials, &format!("DROP TABLE IF EXISTS {table}"), Vec::new())
            .await
            .map_err(|e| format!("cannot drop {table}: {e}"))?;
        config.feedback = Some(FeedbackConfig {
            table,
            credentials: credentials.clone(),
        });
    }
    let engine = Engine::new(config).map_err(|e| e.to_string())?;
    let asker = Asker {
        credentials,
        database: cli.database.clone(),
        session: None,
        tenant: None,
    };
    let ch = ClickHouseHttp::new(&cli.clickhouse_url, Duration::from_secs(60)).map_err(|e| e.to_string())?;

    let modes: &[(Mode, &str)] = if cli.baseline {
        &[(Mode::Pipeline, "pipeline"), (Mode::Baseline, "baseline")]
    } else {
        &[(Mode::Pipeline, "pipeline")]
    };
    // Question by question, both prompts in turn, the report rewritten after each: an interrupted run still
    // compares the two on the same questions.
    let mut outcomes: Vec<Vec<Outcome>> = vec![Vec::new(); modes.len()];
    let mut expected_rows = Vec::with_capacity(questions.len());
    for (i, question) in questions.iter().enumerate() {
        let expected = reference(&ch, &asker, &question.sql)
            .await
            .map_err(|e| format!("reference query of {} failed: {e}", question.id))?;
        for (m, (mode, name)) in modes.iter().enumerate() {
            let outcome = run_question(&engine, &asker, question, &expected, *mode).await;
            print_outcome(name, i, questions.len(), question, &outcome);
            outcomes[m].push(outcome);
        }
        expected_rows.push(expected);
        if let Some(path) = &cli.json {
            write_report(path, modes, &outcomes)?;
        }
    }
    for (m, (_, name)) in modes.iter().enumerate() {
        println!("{name}: {}", summarize(&outcomes[m]));
    }
    if let [pipeline, baseline] = outcomes.as_slice() {
        let (p, b) = (summarize(pipeline), summarize(baseline));
        println!(
            "pipeline vs baseline: accuracy {} vs {}, valid {} vs {} (of {})",
            p.correct, b.correct, p.valid, b.valid, p.questions
        );
    }
    if cli.learn > 0 {
        learn(&cli, &engine, &asker, &questions, &expected_rows, modes, outcomes).await?;
    }
    Ok(())
}

/// The second pass of `--learn`: marks the first `cli.learn` right answers good and asks the others again.
async fn learn(
    cli: &Cli,
    engine: &Engine,
    asker: &Asker,
    questions: &[nlq::eval::EvalQuestion],
    expected: &[nlq::clickhouse::QueryResult],
    modes: &[(Mode, &str)],
    mut outcomes: Vec<Vec<Outcome>>,
) -> Result<(), String> {
    let first = &outcomes[0];
    let marked: Vec<usize> = (0..first.len())
        .filter(|&i| first[i].correct)
        .take(cli.learn)
        .collect();
    for &i in &marked {
        let sql = first[i].written_sql.as_deref().unwrap_or_default();
        engine
            .record_mark(&questions[i].question, sql, asker, Verdict::Good)
            .await
            .map_err(|e| format!("cannot mark {}: {e}", questions[i].id))?;
    }
    let ids: Vec<&str> = marked.iter().map(|&i| questions[i].id.as_str()).collect();
    eprintln!("[learn] marked good: {}", ids.join(", "));
    let unmarked: Vec<usize> = (0..questions.len()).filter(|i| !marked.contains(i)).collect();
    let mut before = Vec::new();
    let mut after = Vec::new();
    for (n, &i) in unmarked.iter().enumerate() {
        let outcome = run_question(engine, asker, &questions[i], &expected[i], Mode::Pipeline).await;
        print_outcome("learned", n, unmarked.len(), &questions[i], &outcome);
        before.push(first[i].clone());
        after.push(outcome);
    }
    let (b, a) = (summarize(&before), summarize(&after));
    println!("learned ({} marked good): {a}", marked.len());
    println!(
        "on the {} unmarked questions: accuracy {} before marks vs {} after",
        unmarked.len(),
        b.correct,
        a.correct
    );
    if let Some(path) = &cli.json {
        let mut all: Vec<(Mode, &str)> = modes.to_vec();
        all.push((Mode::Pipeline, "learned"));
        outcomes.push(after);
        write_report(path, &all, &outcomes)?;
    }
    Ok(())
}

/// One progress line: which prompt, which question, the verdict, the time and the SQL (or the error).
fn print_outcome(name: &str, i: usize, of: usize, question: &nlq::eval::EvalQuestion, outcome: &Outcome) {
    let verdict = if outcome.correct {
        "correct"
    } else if outcome.valid {
        "wrong"
    } else {
        "invalid"
    };
    let sql = outcome
        .written_sql
        .as_deref()
        .or(outcome.sql.as_deref())
        .unwrap_or("-");
    let error = outcome
        .error
        .as_deref()
        .map(|e| format!("  [{}]", nlq::llm::shorten(&e.replace('\n', " "), 200)))
        .unwrap_or_default();
    eprintln!(
        "[{name} {}/{of}] {} {verdict} {:.1}s {}{error}",
        i + 1,
        question.id,
        outcome.latency.as_secs_f64(),
        sql.replace('\n', " "),
    );
}

fn write_report(
    path: &std::path::Path,
    modes: &[(Mode, &str)],
    outcomes: &[Vec<Outcome>],
) -> Result<(), String> {
    let mut report = serde_json::Map::new();
    for ((_, name), list) in modes.iter().zip(outcomes) {
        let summary = summarize(list);
        report.insert(
            name.to_string(),
            serde_json::json!({
                "summary": summary.to_string(),
                "outcomes": list.iter().map(|o| serde_json::json!({"id": o.id, "difficulty": o.difficulty,
                    "valid": o.valid, "correct": o.correct, "corrected": o.corrected,
                    "latency_s": o.latency.as_secs_f64(), "prompt_tokens": o.usage.prompt_tokens,
                    "cached_tokens": o.usage.cached_tokens, "completion_tokens": o.usage.completion_tokens,
                    "prompt_ms": o.usage.prompt_ms, "generation_ms": o.usage.generation_ms,
                    "sql": o.sql, "written_sql": o.written_sql, "params": o.params,
                    "transcript": o.transcript, "error": o.error})).collect::<Vec<_>>(),
            }),
        );
    }
    std::fs::write(path, serde_json::Value::Object(report).to_string())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
