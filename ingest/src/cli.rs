//! The command line: `run` starts the daemon; `connect`, `disconnect` and `status` talk to a running daemon's
//! HTTP API (`--api`, default from `api_listen` of `--config`, else http://127.0.0.1:8125), with the bearer token
//! of `api_token_env` / `api_token_file` of the same `--config`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use aurora_common::http::{self, Method};
use clap::{Parser, Subcommand};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use serde_json::Value;

use crate::config::{Config, PipelineSpec, Secret};

#[derive(Debug, Parser)]
#[command(
    name = "aurora-ingest",
    version,
    about = "Kafka topics into ClickHouse tables"
)]
pub struct Cli {
    /// TOML configuration (see aurora-ingest.example.toml).
    #[arg(long, global = true, env = "AURORA_INGEST_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the API, /metrics, /health and the configured pipelines.
    Run,
    /// Create a pipeline on a running daemon (the table is created when missing) and start it.
    Connect(ConnectArgs),
    /// Stop a pipeline: flush what was read, insert it, commit its offsets, remove it.
    Disconnect {
        name: String,
        #[arg(long, env = "AURORA_INGEST_API")]
        api: Option<String>,
    },
    /// Show each pipeline's state, lag, rows/s and last error.
    Status {
        #[arg(long, env = "AURORA_INGEST_API")]
        api: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        /// Refresh every second until interrupted.
        #[arg(long)]
        watch: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// Pipeline name (letters, digits, _).
    #[arg(long)]
    pub name: Option<String>,
    /// Topic to consume (repeat for several).
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// Target table, database.table.
    #[arg(long)]
    pub table: Option<String>,
    /// Also create the per-minute rollup (<table>_per_minute and <table>_per_minute_mv).
    #[arg(long)]
    pub rollup: bool,
    /// Consumer group (default aurora-ingest-<name>).
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub batch_max_rows: Option<usize>,
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Fail when the table does not exist instead of creating it.
    #[arg(long)]
    pub no_create_table: bool,
    /// A whole pipeline spec as a JSON file (the flags above override its keys).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Show a progress bar until the pipeline has caught up with its topics.
    #[arg(long)]
    pub follow: bool,
    #[arg(long, env = "AURORA_INGEST_API")]
    pub api: Option<String>,
}

/// Runs a client command against the daemon's API.
pub async fn client(command: Command, config: &Config) -> anyhow::Result<()> {
    let default_api = format!("http://{}", config.api_listen);
    let token = config.api_token().map_err(anyhow::Error::msg)?;
    let api_client = ApiClient { token };
    match command {
        Command::Run => unreachable!("run is not a client command"),
        Command::Connect(args) => {
            let api = args.api.clone().unwrap_or(default_api);
            let spec = connect_spec(&args)?;
            let (status, body) = api_client
                .call(&api, Method::POST, "/pipelines", Some(serde_json::to_vec(&spec)?))
                .await?;
            if status != 201 {
                bail!("{}", error_text(&body));
            }
            println!(
                "pipeline {} connected: {} → {}",
                spec.name,
                spec.topics.join(","),
                spec.table
            );
            if args.follow {
                follow(&api_client, &api, &spec.name).await?;
            }
            Ok(())
        }
        Command::Disconnect { name, api } => {
            let api = api.unwrap_or(default_api);
            let (status, body) = api_client
                .call(&api, Method::DELETE, &format!("/pipelines/{name}"), None)
                .await?;
            if status != 200 {
                bail!("{}", error_text(&body));
            }
            println!("pipeline {name} disconnected (flushed and committed)");
            Ok(())
        }
        Command::Status { api, json, watch } => {
            let api = api.unwrap_or(default_api);
            loop {
                let (status, body) = api_client.call(&api, Method::GET, "/pipelines", None).await?;
                if status != 200 {
                    bail!("{}", error_text(&body));
                }
                if json {
                    println!("{body}");
                } else {
                    if watch {
                        print!("\x1b[2J\x1b[H");
                    }
                    print_status(&body);
                }
                if !watch {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn connect_spec(args: &ConnectArgs) -> anyhow::Result<PipelineSpec> {
    let mut value: serde_json::Map<String, Value> = match &args.spec {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not a JSON object", path.display()))?
        }
        None => serde_json::Map::new(),
    };
    if let Some(n) = &args.name {
        value.insert("name".into(), Value::from(n.clone()));
    }
    if !args.topics.is_empty() {
        value.insert("topics".into(), Value::from(args.topics.clone()));
    }
    if let Some(t) = &args.table {
        value.insert("table".into(), Value::from(t.clone()));
    }
    if args.rollup {
        value.insert("rollup".into(), Value::from(true));
    }
    if let Some(g) = &args.group {
        value.insert("group_id".into(), Value::from(g.clone()));
    }
    if let Some(n) = args.batch_max_rows {
        value.insert("batch_max_rows".into(), Value::from(n));
    }
    if let Some(n) = args.parallelism {
        value.insert("parallelism".into(), Value::from(n));
    }
    if args.no_create_table {
        value.insert("create_table".into(), Value::from(false));
    }
    for key in ["name", "topics", "table"] {
        if !value.contains_key(key) {
            bail!(
                "connect needs --{} (or the key {key} in --spec)",
                key.trim_end_matches('s')
            );
        }
    }
    let spec: PipelineSpec = serde_json::from_value(Value::Object(value))?;
    spec.validate("pipeline")?;
    Ok(spec)
}

async fn follow(client: &ApiClient, api: &str, name: &str) -> anyhow::Result<()> {
    let mut seen_rows = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (status, body) = client.call(api, Method::GET, "/pipelines", None).await?;
        if status != 200 {
            bail!("{}", error_text(&body));
        }
        let v: Value = serde_json::from_str(&body)?;
        let Some(p) = v["pipelines"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == name))
        else {
            bail!("pipeline {name} is gone");
        };
        let rows = p["rows_inserted"].as_u64().unwrap_or(0);
        let lag = p["lag"].as_i64();
        let rate = p["rows_per_sec"].as_f64().unwrap_or(0.0);
        let state = p["state"].as_str().unwrap_or("?");
        seen_rows |= rows > 0;
        let fraction = match lag {
            Some(l) if rows + (l as u64) > 0 => rows as f64 / (rows + l as u64) as f64,
            _ => 0.0,
        };
        let filled = (fraction * 30.0).round() as usize;
        print!(
            "\r[{}{}] {:>5.1}% {rows} rows, {rate:.0} rows/s, lag {}, {state}   ",
            "#".repeat(filled),
            ".".repeat(30 - filled.min(30)),
            fraction * 100.0,
            lag.map(|l| l.to_string()).unwrap_or_else(|| "?".into()),
        );
        let _ = std::io::stdout().flush();
        if state == "failed" {
            println!();
            bail!("{}", p["last_error"].as_str().unwrap_or("failed"));
        }
        if seen_rows && lag == Some(0) {
            println!();
            return Ok(());
        }
    }
}

fn print_status(body: &str) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let pipelines = v["pipelines"].as_array().cloned().unwrap_or_default();
    if pipelines.is_empty() {
        println!("no pipelines");
        return;
    }
    println!(
        "{:<20} {:<9} {:<28} {:>10} {:>10} {:>12} {:>8}  LAST ERROR",
        "NAME", "STATE", "TABLE", "ROWS/S", "LAG", "ROWS", "DEAD"
    );
    for p in pipelines {
        println!(
            "{:<20} {:<9} {:<28} {:>10.0} {:>10} {:>12} {:>8}  {}",
            p["name"].as_str().unwrap_or(""),
            p["state"].as_str().unwrap_or(""),
            p["table"].as_str().unwrap_or(""),
            p["rows_per_sec"].as_f64().unwrap_or(0.0),
            p["lag"]
                .as_i64()
                .map(|l| l.to_string())
                .unwrap_or_else(|| "-".into()),
            p["rows_inserted"].as_u64().unwrap_or(0),
            p["dead_letters"].as_u64().unwrap_or(0),
            p["last_error"].as_str().unwrap_or("-"),
        );
    }
}

fn error_text(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(String::from))
        .unwrap_or_else(|| body.to_string())
}

/// What every request to the daemon carries.
struct ApiClient {
    /// Sent as `Authorization: Bearer …`; never printed.
    token: Option<Secret>,
}

impl ApiClient {
    /// One request to the daemon's API: (status, body). A refusal for want of the token says where it comes from.
    async fn call(
        &self,
        api: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(u16, String)> {
        let (status, text) = call(api, method, path, body, self.token.as_ref()).await?;
        if (status == 401 || status == 403) && path.starts_with("/pipelines") {
            let hint = if self.token.is_some() {
                "the token of api_token_env / api_token_file in --config was refused"
            } else {
                "no token sent: give --config (or AURORA_INGEST_CONFIG) with the daemon's api_token_env or api_token_file"
            };
            let message = format!("{} ({hint})", error_text(&text));
            return Ok((status, serde_json::json!({ "error": message }).to_string()));
        }
        Ok((status, text))
    }
}

/// The most bytes of the daemon's answer read (a status of many pipelines is a few kilobytes).
const MAX_ANSWER: usize = 16 << 20;

/// One request to the daemon's API: (status, body). No request timeout: a disconnect waits for the pipeline
/// to flush and commit.
async fn call(
    api: &str,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    token: Option<&Secret>,
) -> anyhow::Result<(u16, String)> {
    if !api.starts_with("http://") {
        bail!("--api must be an http:// URL, got {api}");
    }
    let options = http::Options {
        max_answer: MAX_ANSWER,
        ..http::Options::default()
    };
    let client = http::Client::new(api, options)?;
    let mut request = client
        .request(method, path)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(body.unwrap_or_default());
    if let Some(Secret(token)) = token {
        request = request.auth(&http::Auth::Bearer(token.clone()));
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(http::Error::Connect { error, .. }) => {
            return Err(anyhow::Error::new(error).context(format!(
                "cannot reach the daemon at {api} (is `aurora-ingest run` running?)"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    Ok((response.status.as_u16(), response.text().into_owned()))
}
