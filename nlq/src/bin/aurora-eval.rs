//! `aurora-eval`: execution accuracy, validity and latency of ASK over a question set, against a real
//! ClickHouse and a real model, with the bare schema-dump prompt as the baseline.
//!
//! ```text
//! aurora-eval --questions fixtures/analytics/questions.yaml --semantic-file fixtures/analytics/semantic.yaml \
//!     --clickhouse-url http://127.0.0.1:8123 --llm-base-url http://127.0.0.1:8090/v1 --llm-model qwen \
//!     [--embed-model-dir DIR] [--baseline] [--limit N] [--json FILE]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use nlq::clickhouse::{ClickHouseHttp, Credentials};
use nlq::eval::{load_questions, reference, run_question, summarize, Mode, Outcome};
use nlq::{Asker, Engine, EngineConfig};

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
    let engine = Engine::new(config).map_err(|e| e.to_string())?;
    let asker = Asker {
        credentials: Credentials::new(cli.user.clone(), cli.password.clone()),
        database: cli.database.clone(),
        session: None,
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
    for (i, question) in questions.iter().enumerate() {
        let expected = reference(&ch, &asker, &question.sql)
            .await
            .map_err(|e| format!("reference query of {} failed: {e}", question.id))?;
        for (m, (mode, name)) in modes.iter().enumerate() {
            let outcome = run_question(&engine, &asker, question, &expected, *mode).await;
            eprintln!(
                "[{name} {}/{}] {} {} {:.1}s {}{}",
                i + 1,
                questions.len(),
                question.id,
                if outcome.correct {
                    "correct"
                } else if outcome.valid {
                    "wrong"
                } else {
                    "invalid"
                },
                outcome.latency.as_secs_f64(),
                outcome
                    .written_sql
                    .as_deref()
                    .or(outcome.sql.as_deref())
                    .unwrap_or("-")
                    .replace('\n', " "),
                outcome
                    .error
                    .as_deref()
                    .map(|e| format!("  [{}]", nlq::llm::shorten(&e.replace('\n', " "), 200)))
                    .unwrap_or_default(),
            );
            outcomes[m].push(outcome);
        }
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
    Ok(())
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
