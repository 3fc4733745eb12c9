//! Aurora's answer to `ASK` and `EXPLAIN ASK`, shared by the native and HTTP sides.
//!
//! The statement is recognised by `nlq::classify` on both protocols. [`AskRun`] carries one ASK from its
//! statement to its outcome: [`AskService::plan`] turns it into a [`Prepared`] query — the generated SQL under
//! the row limit, with its parameters (or literals) and the settings to send — which the protocol side runs on
//! the client's own upstream connection, so the answer reaches the client in its protocol, revision,
//! compression and format. `EXPLAIN ASK` and feedback marks are prepared as one-row SELECTs of literals that
//! ClickHouse formats. When ClickHouse rejects a generated query, [`AskRun::rejected`] corrects it once; a
//! second rejection reaches the client as an exception naming the SQL.
//!
//! Metrics and logs of every ASK go through here.

mod run;

pub use run::AskRun;

use std::sync::Arc;
use std::time::Instant;

use nlq::{AskOptions, AskStats, Asker, Engine, Plan, SettingValue, Verdict};

use crate::codes;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::telemetry;

/// A setting of `ASK … SETTINGS` that Aurora reads itself: read the catalog again.
pub const SETTING_REFRESH_CATALOG: &str = "aurora_refresh_catalog";
/// A setting of `ASK … SETTINGS` that Aurora reads itself: do not answer from the caches.
pub const SETTING_NO_CACHE: &str = "aurora_no_cache";
/// A setting of `ASK … SETTINGS` that Aurora reads itself: `1` the question refines the session's previous
/// one, `0` it stands alone (without it, Aurora decides from the question's words).
pub const SETTING_FOLLOW_UP: &str = "aurora_follow_up";
/// A setting of `ASK … SETTINGS` that Aurora reads itself: `'good'` or `'bad'` marks the answer given earlier to
/// the same question (the ASK answers with one row that says what was marked, and runs nothing else).
pub const SETTING_FEEDBACK: &str = "aurora_feedback";

/// How the upstream takes `{name:Type}` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamMode {
    /// As query parameters (native revisions with `Feature::Parameters`, HTTP `param_*` on 19.11+).
    Parameters,
    /// As typed literals substituted into the SQL.
    Literals,
    /// Decided by the server version in the catalog (HTTP).
    ByServerVersion,
}

/// A generated query ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: Plan,
    /// The SQL is Aurora's own one-row description (`EXPLAIN ASK`, a feedback mark), never corrected.
    pub explain: bool,
    /// The mark this ASK stored (`SETTINGS aurora_feedback`); the plan is the answer it marked.
    pub feedback: Option<Verdict>,
    /// The SQL to send (without FORMAT).
    pub sql: String,
    /// Query parameters `(name, value)` without the `param_` prefix.
    pub parameters: Vec<(String, String)>,
    /// Settings to send with the query (the user's own `SETTINGS`, and `readonly = 1` when needed).
    pub settings: Vec<(String, String)>,
    /// The client's `FORMAT`, if it gave one.
    pub format: Option<String>,
    /// When the ASK began (query metrics).
    pub started: Instant,
    /// When the query was ready to send (the execute stage runs from here).
    pub planned: Instant,
}

/// An error answer: ClickHouse code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskFailure {
    pub code: i32,
    pub message: String,
}

/// Produces Aurora's answers to ASK statements.
pub struct AskService {
    engine: Engine,
    metrics: Arc<Metrics>,
    max_rows: u64,
    /// Failure lines per user and minute.
    log_limiter: telemetry::LogLimiter,
}

impl AskService {
    /// Builds the engine (reads the semantic file, loads the embedding model) from the configuration.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Result<AskService, nlq::engine::EngineError> {
        let engine = Engine::new(config.engine_config())?;
        Ok(AskService {
            engine,
            metrics,
            max_rows: config.ask_max_rows,
            log_limiter: telemetry::LogLimiter::default(),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The answer to a statement that starts like ASK but does not follow its grammar.
    pub fn syntax_error(&self, syntax: &nlq::AskSyntaxError) -> AskFailure {
        self.metrics.ask_total.with_label_values(&["error"]).inc();
        AskFailure {
            code: codes::SYNTAX_ERROR,
            message: format!(
                "Aurora: {syntax}. An ASK statement is ASK 'question' [FORMAT name] [SETTINGS k = v, ...] (or SELECT * FROM ask('question') for clients that parse SQL first), e.g. ASK 'top 5 tenants by revenue this week'"
            ),
        }
    }

    /// Turns the statement into a query for `asker`.
    async fn plan(
        &self,
        ask: &nlq::AskStatement,
        asker: &Asker,
        mode: ParamMode,
    ) -> Result<Prepared, AskFailure> {
        let started = Instant::now();
        let Split {
            options,
            feedback,
            settings,
        } = match split_settings(&ask.settings) {
            Ok(split) => split,
            Err(message) => return Err(self.fail("error", codes::BAD_ARGUMENTS, message)),
        };
        if let Some(verdict) = feedback {
            return self.mark(ask, asker, verdict, settings, started).await;
        }
        let (result, stats) = self.engine.plan(&ask.question, asker, options).await;
        self.record_stats(&stats, false);
        let plan = result.map_err(|error| self.failed(asker, &ask.question, &error))?;
        telemetry::ask_planned(
            &asker.credentials.user,
            &ask.question,
            &plan.sql,
            plan.cached.map(|c| c.as_str()),
        );
        self.prepare(plan, ask, settings, mode, started, asker.tenant.as_ref())
    }

    /// Sends ClickHouse's rejection of `prepared` back to the model once (see [`AskRun::rejected`]). The error
    /// that comes back (from the model or validation) is final.
    async fn correct(
        &self,
        prepared: &Prepared,
        ask: &nlq::AskStatement,
        asker: &Asker,
        mode: ParamMode,
        clickhouse_error: &str,
    ) -> Result<Prepared, AskFailure> {
        self.metrics.ask_retries.with_label_values(&["sql_error"]).inc();
        telemetry::ask_correcting(
            &self.log_limiter,
            &asker.credentials.user,
            &prepared.plan.sql,
            clickhouse_error,
        );
        let (result, stats) = self.engine.correct(&prepared.plan, asker, clickhouse_error).await;
        self.record_stats(&stats, true);
        let plan =
            result.map_err(|error| self.fail(error.outcome(), error.code(), format!("Aurora: {error}")))?;
        let settings = split_settings(&ask.settings)
            .map(|s| s.settings)
            .unwrap_or_default();
        self.prepare(plan, ask, settings, mode, prepared.started, asker.tenant.as_ref())
    }

    /// Stores a user's mark of the answer given earlier to the same question; answers with the one-row
    /// description of what was marked.
    async fn mark(
        &self,
        ask: &nlq::AskStatement,
        asker: &Asker,
        verdict: Verdict,
        settings: Vec<(String, String)>,
        started: Instant,
    ) -> Result<Prepared, AskFailure> {
        let plan = self
            .engine
            .mark(&ask.question, asker, verdict)
            .await
            .map_err(|error| self.failed(asker, &ask.question, &error))?;
        self.metrics
            .ask_feedback
            .with_label_values(&[verdict.as_str()])
            .inc();
        let sql = plan.mark_sql(verdict);
        Ok(described(plan, sql, Some(verdict), ask, settings, started))
    }

    /// An ASK that got no plan: logged (rate-limited) and counted, in the shape the client sees.
    fn failed(&self, asker: &Asker, question: &str, error: &nlq::AskError) -> AskFailure {
        telemetry::ask_failed(&self.log_limiter, &asker.credentials.user, question, error);
        self.fail(error.outcome(), error.code(), format!("Aurora: {error}"))
    }

    /// The answer when ClickHouse rejected a generated query for good: after the one correction
    /// (`corrected`), or where no correction applies (`EXPLAIN ASK`, a plan from the cache).
    fn sql_rejected(
        &self,
        prepared: &Prepared,
        code: Option<i32>,
        clickhouse_error: &str,
        corrected: bool,
    ) -> AskFailure {
        let when = if corrected {
            ", also after one correction"
        } else {
            ""
        };
        self.fail(
            "sql_error",
            code.unwrap_or(codes::NETWORK_ERROR),
            format!(
                "Aurora: ClickHouse rejected the generated query{when}: {}. Generated SQL: {}",
                clickhouse_error.trim(),
                prepared.plan.sql
            ),
        )
    }

    /// ClickHouse accepted the query: counts the ASK as answered.
    fn answered(&self, prepared: &Prepared) {
        self.metrics.ask_total.with_label_values(&["ok"]).inc();
        self.metrics
            .ask_stage_duration
            .with_label_values(&["execute"])
            .observe(prepared.planned.elapsed().as_secs_f64());
    }

    fn prepare(
        &self,
        plan: Plan,
        ask: &nlq::AskStatement,
        mut settings: Vec<(String, String)>,
        mode: ParamMode,
        started: Instant,
        tenant: Option<&nlq::tenant::TenantRule>,
    ) -> Result<Prepared, AskFailure> {
        if ask.explain {
            let sql = plan.explain_sql();
            return Ok(described(plan, sql, None, ask, settings, started));
        }
        let parameters = match mode {
            ParamMode::Parameters => true,
            ParamMode::Literals => false,
            ParamMode::ByServerVersion => plan.catalog.supports_parameters(),
        };
        let executable = plan
            .executable(parameters, self.max_rows)
            .map_err(|error| self.fail(error.outcome(), error.code(), format!("Aurora: {error}")))?;
        if executable.set_readonly {
            settings.push(("readonly".into(), "1".into()));
        }
        // A tenant user's answer reads every table filtered to its tenant (after the caches: plans are shared).
        let sql = match tenant {
            Some(rule) => nlq::tenant::scope(&executable.sql, rule, &|database, table| {
                tenant_scope_of(&plan.catalog, &rule.column, database, table)
            })
            .map_err(|error| {
                self.fail(
                    "rejected",
                    codes::ACCESS_DENIED,
                    format!("Aurora: tenant scoping: {error}"),
                )
            })?,
            None => executable.sql,
        };
        Ok(Prepared {
            plan,
            explain: false,
            feedback: None,
            sql,
            parameters: executable.parameters,
            settings,
            format: ask.format.clone(),
            started,
            planned: Instant::now(),
        })
    }

    /// SQL of a tenant user, scoped to its tenant through the user's catalog (read with `asker`'s
    /// credentials, cached like ASK's): the text ClickHouse runs instead, or why it cannot be scoped.
    pub async fn scope_sql(&self, asker: &Asker, sql: &str) -> Result<String, AskFailure> {
        let Some(rule) = &asker.tenant else {
            return Ok(sql.to_string());
        };
        let (catalog, _) = self
            .engine
            .catalogs()
            .get(self.engine.clickhouse(), &asker.credentials, false)
            .await
            .map_err(|error| AskFailure {
                code: error.code.unwrap_or(codes::NETWORK_ERROR),
                message: format!("Aurora: tenant scoping needs the catalog: {error}"),
            })?;
        nlq::tenant::scope(sql, rule, &|database, table| {
            tenant_scope_of(&catalog, &rule.column, database, table)
        })
        .map_err(|error| AskFailure {
            code: codes::ACCESS_DENIED,
            message: format!("Aurora: tenant scoping: {error} (user of tenant {})", rule.value),
        })
    }

    fn fail(&self, outcome: &str, code: i32, message: String) -> AskFailure {
        self.metrics.ask_total.with_label_values(&[outcome]).inc();
        AskFailure { code, message }
    }

    fn record_stats(&self, stats: &AskStats, correction: bool) {
        let m = &self.metrics;
        for elapsed in &stats.llm_durations {
            m.ask_llm_duration
                .with_label_values(&[] as &[&str])
                .observe(elapsed.as_secs_f64());
        }
        m.ask_llm_tokens
            .with_label_values(&["prompt"])
            .inc_by(stats.usage.prompt_tokens);
        m.ask_llm_tokens
            .with_label_values(&["completion"])
            .inc_by(stats.usage.completion_tokens);
        if let Some(hit) = stats.cache {
            m.ask_cache_hits.with_label_values(&[hit.as_str()]).inc();
        }
        if stats.malformed_retries > 0 {
            m.ask_retries
                .with_label_values(&["malformed"])
                .inc_by(u64::from(stats.malformed_retries));
        }
        if !correction {
            for (stage, elapsed) in &stats.stages {
                m.ask_stage_duration
                    .with_label_values(&[stage])
                    .observe(elapsed.as_secs_f64());
            }
        }
    }
}

/// Aurora's own one-row answer about `plan` (`EXPLAIN ASK`, a feedback mark): `sql` selects literals, runs
/// nothing else and is never corrected.
/// What `catalog` says of `database.table` for tenant scoping on `column`.
fn tenant_scope_of(
    catalog: &nlq::catalog::Catalog,
    column: &str,
    database: &str,
    table: &str,
) -> nlq::tenant::TableScope {
    let name = nlq::TableName {
        database: database.to_string(),
        table: table.to_string(),
    };
    match catalog.table(&name) {
        Some(found) if found.columns.iter().any(|c| c.name == column) => nlq::tenant::TableScope::Scoped,
        Some(_) => nlq::tenant::TableScope::Unscoped,
        None => nlq::tenant::TableScope::Unknown,
    }
}

fn described(
    plan: Plan,
    sql: String,
    feedback: Option<Verdict>,
    ask: &nlq::AskStatement,
    settings: Vec<(String, String)>,
    started: Instant,
) -> Prepared {
    Prepared {
        sql,
        plan,
        explain: true,
        feedback,
        parameters: Vec::new(),
        settings,
        format: ask.format.clone(),
        started,
        planned: Instant::now(),
    }
}

/// `ASK … SETTINGS` read: Aurora's own options, a feedback mark, and settings for the generated query.
#[derive(Debug, Default)]
struct Split {
    options: AskOptions,
    feedback: Option<Verdict>,
    settings: Vec<(String, String)>,
}

/// Splits `ASK … SETTINGS` into Aurora's own options and settings for the generated query. `readonly` is
/// Aurora's to set and refused.
fn split_settings(settings: &[(String, SettingValue)]) -> Result<Split, String> {
    let mut options = AskOptions::default();
    let mut feedback = None;
    let mut rest = Vec::new();
    for (name, value) in settings {
        let text = match value {
            SettingValue::Number(n) | SettingValue::String(n) | SettingValue::Word(n) => n.clone(),
        };
        let on = matches!(text.as_str(), "1" | "true");
        match name.as_str() {
            SETTING_REFRESH_CATALOG => options.refresh_catalog = on,
            SETTING_NO_CACHE => options.no_cache = on,
            SETTING_FOLLOW_UP => options.follow_up = Some(on),
            SETTING_FEEDBACK => feedback = Some(text.parse::<Verdict>().map_err(|e| format!("Aurora: {e}"))?),
            "readonly" => return Err("Aurora: ASK sets readonly itself; remove it from SETTINGS".to_string()),
            _ => rest.push((name.clone(), text)),
        }
    }
    Ok(Split {
        options,
        feedback,
        settings: rest,
    })
}

/// How long a failed attempt's error body may be for the correction prompt.
pub const MAX_ERROR_BODY: usize = 64 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ask_settings_split_into_options_and_query_settings() {
        let split = split_settings(&[
            (SETTING_REFRESH_CATALOG.into(), SettingValue::Number("1".into())),
            ("max_threads".into(), SettingValue::Number("2".into())),
            (SETTING_FEEDBACK.into(), SettingValue::String("good".into())),
        ])
        .unwrap();
        assert!(split.options.refresh_catalog && !split.options.no_cache);
        assert_eq!(split.feedback, Some(Verdict::Good));
        assert_eq!(split.settings, [("max_threads".to_string(), "2".to_string())]);
        assert!(
            split_settings(&[(SETTING_FEEDBACK.into(), SettingValue::String("great".into()))])
                .unwrap_err()
                .contains("'good' or 'bad'")
        );
        assert!(
            split_settings(&[("readonly".into(), SettingValue::Number("0".into()))])
                .unwrap_err()
                .contains("readonly")
        );
    }
}
