//! From [`Settings`] to the [`Config`] the proxy runs with, in one pass that checks every key and reports
//! every problem with the key it is about. A value is accepted here only if the part of the proxy that uses it
//! accepts it too (the HTTP upstream's URL is read by that upstream's own parser).

use std::path::PathBuf;

use aurora_common::secret::{self, SecretError};

use super::error::Problem;
use super::settings::{Settings, DEFAULT_FEEDBACK_USER};
use super::{Config, IngestApiToken, NativeTls};

/// The configuration `settings` describe; each problem found is added to `problems` (the config returned is
/// then not to be used).
pub fn resolve(settings: Settings, problems: &mut Vec<Problem>) -> Config {
    let Settings {
        listen,
        upstream,
        cluster,
        llm,
        retrieval,
        ask,
        console,
        limits,
        gateway,
        log,
    } = settings;
    let mut report = |key: &str, message: String| problems.push(Problem::new(key, message));

    // One certificate and key serve both TLS listeners.
    let listening = listen.native_tls_listen.is_some() || listen.https_listen.is_some();
    let files = match (listen.tls_cert_file, listen.tls_key_file) {
        (Some(_), Some(_)) if !listening => {
            report(
                "native_tls_listen",
                "tls_cert_file and tls_key_file serve native_tls_listen or https_listen: set one".into(),
            );
            None
        }
        (Some(cert_file), Some(key_file)) => Some((cert_file, key_file)),
        (None, None) if !listening => None,
        (cert, key) => {
            for (missing, key) in [(cert.is_none(), "tls_cert_file"), (key.is_none(), "tls_key_file")] {
                if missing {
                    report(
                        key,
                        "native_tls_listen / https_listen, tls_cert_file and tls_key_file are set together"
                            .into(),
                    );
                }
            }
            None
        }
    };
    let tls_files = files.map(|(cert_file, key_file)| super::TlsFiles { cert_file, key_file });
    let native_tls = match (&tls_files, listen.native_tls_listen) {
        (Some(files), Some(listen)) => Some(NativeTls {
            listen,
            cert_file: files.cert_file.clone(),
            key_file: files.key_file.clone(),
        }),
        _ => None,
    };
    let https = match (&tls_files, listen.https_listen) {
        (Some(files), Some(listen)) => Some(super::Https {
            listen,
            files: files.clone(),
        }),
        _ => None,
    };

    if !super::nodes::is_host_port(&upstream.upstream_native) {
        report(
            "upstream_native",
            format!("{:?} is not HOST:PORT", upstream.upstream_native),
        );
    }
    let upstream_http = upstream.upstream_http.trim_end_matches('/').to_string();
    // The same reading of the URL as the HTTP side's at start, so that what is accepted here runs.
    if let Err(reason) = super::upstream_url::UpstreamUrl::parse(&upstream_http) {
        report(
            "upstream_http",
            format!("{upstream_http:?} cannot be used: {reason}"),
        );
    }

    let cluster = super::nodes::resolve(cluster, &upstream.upstream_native, &upstream_http, &mut report);
    let audit = resolve_audit(&gateway, &mut report);
    let users = super::users::resolve_users(&gateway.users, &gateway.tenant_column, &mut report);

    match (&llm.llm_base_url, &llm.llm_model) {
        (Some(_), None) => report("llm_model", "llm_base_url and llm_model are set together".into()),
        (None, Some(_)) => report(
            "llm_base_url",
            "llm_base_url and llm_model are set together".into(),
        ),
        _ => {}
    }
    if llm.llm_max_tokens == 0 {
        report("llm_max_tokens", "must be at least 1".into());
    }

    for (key, path) in [
        ("embed_model_dir", &retrieval.embed_model_dir),
        ("ort_library", &retrieval.ort_library),
        ("semantic_file", &retrieval.semantic_file),
    ] {
        if let Some(path) = path {
            if !path.exists() {
                report(key, format!("{} does not exist", path.display()));
            }
        }
    }

    if ask.ask_max_rows == 0 {
        report("ask_max_rows", "must be at least 1".into());
    }
    // 0 (or less) turns the semantic cache off.
    let ask_semantic_cache_threshold = Some(ask.ask_semantic_cache_threshold).filter(|t| *t > 0.0);
    if let Some(t) = ask_semantic_cache_threshold {
        if t > 1.0 {
            report(
                "ask_semantic_cache_threshold",
                format!("{t} is not between 0 and 1"),
            );
        }
    }
    if ask.ask_token_budget < 200 {
        report("ask_token_budget", "must be at least 200".into());
    }
    if !(1..=5).contains(&ask.ask_candidates) {
        report("ask_candidates", "must be 1 to 5".into());
    }
    if ask.ask_repair_attempts > 3 {
        report("ask_repair_attempts", "must be 0 to 3".into());
    }
    let ask_feedback = feedback(
        &ask.ask_feedback_table,
        ask.ask_feedback_user,
        ask.ask_feedback_password_env.as_deref(),
    )
    .unwrap_or_else(|problem| {
        report(&problem.key, problem.message);
        None
    });

    let ingest_api_url = console
        .ingest_api_url
        .map(|url| url.trim_end_matches('/').to_string());
    if let Some(url) = &ingest_api_url {
        if !url.starts_with("http://") {
            report(
                "ingest_api_url",
                format!("{url:?} is not an http:// URL (aurora-ingest's API speaks plain HTTP)"),
            );
        }
    }
    let ingest_api_token = ingest_api_token(console.ingest_api_token_env, console.ingest_api_token_file)
        .unwrap_or_else(|problem| {
            report(&problem.key, problem.message);
            None
        });
    let grafana_url = console
        .grafana_url
        .map(|url| url.trim_end_matches('/').to_string());
    if let Some(url) = &grafana_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            report(
                "grafana_url",
                format!("{url:?} is not an http:// or https:// URL"),
            );
        }
    }

    if limits.max_connections == 0 {
        report("max_connections", "must be at least 1".into());
    }
    if limits.max_framed_packet < 1 << 20 {
        report("max_framed_packet", "must be at least 1048576 (1 MiB)".into());
    }
    if limits.max_framing_memory < limits.max_framed_packet.min(64 << 20) {
        report(
            "max_framing_memory",
            "must be at least 67108864 (64 MiB) or max_framed_packet, whichever is smaller".into(),
        );
    }
    for (key, value) in [
        ("connect_timeout", upstream.connect_timeout),
        ("handshake_timeout", limits.handshake_timeout),
        ("llm_timeout", llm.llm_timeout),
        ("http_receive_timeout", limits.http_receive_timeout),
    ] {
        if value.0.is_zero() {
            report(key, "must be longer than zero".into());
        }
    }

    Config {
        native_listen: listen.native_listen,
        native_tls,
        https,
        http_listen: listen.http_listen,
        metrics_listen: listen.metrics_listen,
        native_read_listen: listen.native_read_listen,
        http_read_listen: listen.http_read_listen,
        native_write_listen: listen.native_write_listen,
        http_write_listen: listen.http_write_listen,
        upstream_native: upstream.upstream_native,
        upstream_http,
        cluster,
        users,
        audit,
        llm_base_url: llm.llm_base_url,
        llm_model: llm.llm_model,
        ingest_api_url,
        pipeline_admins: console
            .pipeline_admins
            .unwrap_or_default()
            .into_iter()
            .map(|user| user.trim().to_string())
            .filter(|user| !user.is_empty())
            .collect(),
        ingest_api_token,
        grafana_url,
        llm_timeout: llm.llm_timeout.0,
        llm_max_tokens: llm.llm_max_tokens,
        embed_model_dir: retrieval.embed_model_dir,
        ort_library: retrieval.ort_library,
        cache_dir: retrieval.cache_dir,
        semantic_file: retrieval.semantic_file,
        catalog_ttl: retrieval.catalog_ttl.0,
        ask_max_rows: ask.ask_max_rows,
        ask_allow_system_tables: ask.ask_allow_system_tables,
        ask_semantic_cache_threshold,
        ask_token_budget: ask.ask_token_budget,
        ask_candidates: ask.ask_candidates,
        ask_repair_attempts: ask.ask_repair_attempts,
        ask_repair_empty: ask.ask_repair_empty,
        ask_feedback,
        connect_timeout: upstream.connect_timeout.0,
        handshake_timeout: limits.handshake_timeout.0,
        shutdown_timeout: limits.shutdown_timeout.0,
        max_connections: limits.max_connections,
        max_framed_packet: limits.max_framed_packet,
        max_framing_memory: limits.max_framing_memory,
        http_receive_timeout: limits.http_receive_timeout.0,
        log_format: log.log_format,
    }
}

/// The feedback table's setting: `none` turns it off; the password comes from the named environment variable.
fn feedback(
    table: &str,
    user: String,
    password_env: Option<&str>,
) -> Result<Option<nlq::FeedbackConfig>, Problem> {
    if table.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let table = nlq::FeedbackConfig::parse_table(table.trim())
        .map_err(|message| Problem::new("ask_feedback_table", message))?;
    let password = match password_env {
        None => String::new(),
        Some(var) => std::env::var(var).map_err(|_| {
            Problem::new(
                "ask_feedback_password_env",
                format!("environment variable {var} is not set"),
            )
        })?,
    };
    let user = Some(user)
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_FEEDBACK_USER.into());
    Ok(Some(nlq::FeedbackConfig {
        table,
        credentials: nlq::clickhouse::Credentials::new(user, password),
    }))
}

/// aurora-ingest's token from the environment variable named `env` or the first line of `file` (at most one
/// of them).
fn ingest_api_token(env: Option<String>, file: Option<PathBuf>) -> Result<Option<IngestApiToken>, Problem> {
    let keys = IngestApiToken::KEYS;
    let token = secret::read(keys, env.as_deref(), file.as_deref()).map_err(|e| {
        // An empty token has always been reported against ingest_api_token_env, from a file too.
        let key = match e {
            SecretError::Empty { .. } => keys.env,
            _ => e.key(),
        };
        Problem::new(key, e.to_string())
    })?;
    Ok(token.map(IngestApiToken))
}

/// The audit table of `audit_table` (`database.table`, plain identifiers) with its writer's credentials; `None`
/// when it is empty.
fn resolve_audit(
    gateway: &super::settings::Gateway,
    report: &mut impl FnMut(&str, String),
) -> Option<super::users::AuditConfig> {
    if gateway.audit_table.is_empty() {
        return None;
    }
    let plain = |part: &str| {
        !part.is_empty()
            && part.len() <= 128
            && !part.starts_with(|c: char| c.is_ascii_digit())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let Some((database, table)) = gateway
        .audit_table
        .split_once('.')
        .filter(|(d, t)| plain(d) && plain(t))
    else {
        report(
            "audit_table",
            format!(
                "{:?} is not database.table (letters, digits and '_')",
                gateway.audit_table
            ),
        );
        return None;
    };
    let password = match &gateway.audit_password_env {
        None => String::new(),
        Some(var) => match std::env::var(var) {
            Ok(value) => value,
            Err(_) => {
                report(
                    "audit_password_env",
                    format!("environment variable {var} is not set"),
                );
                String::new()
            }
        },
    };
    Some(super::users::AuditConfig {
        database: database.to_string(),
        table: table.to_string(),
        user: gateway.audit_user.clone(),
        password,
    })
}
