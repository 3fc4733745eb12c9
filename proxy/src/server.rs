//! Runs the proxy: binds every listener, serves until SIGTERM/SIGINT, then drains running queries.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::ask::AskService;
use crate::cluster::{self, Cluster, Route};
use crate::config::{Cli, Config};
use crate::gateway::Gateway;
use crate::http;
use crate::metrics::{self, Metrics};
use crate::native;

/// Serves until a shutdown signal, then waits up to `shutdown_timeout` for running queries. `cli` is what
/// `config` was loaded from: SIGHUP loads it again and puts the new proxy users in force.
pub async fn run(config: Config, cli: Cli) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let tracker = TaskTracker::new();

    let native_listener = bind(config.native_listen, "native").await?;
    let http_listener = bind(config.http_listen, "HTTP").await?;
    let metrics_listener = bind(config.metrics_listen, "metrics").await?;
    // The read and write endpoints, each off unless configured.
    let mut native_routed = Vec::new();
    let mut http_routed = Vec::new();
    for (addr, route, what, native) in [
        (config.native_read_listen, Route::Read, "native read", true),
        (config.native_write_listen, Route::Write, "native write", true),
        (config.http_read_listen, Route::Read, "HTTP read", false),
        (config.http_write_listen, Route::Write, "HTTP write", false),
    ] {
        if let Some(addr) = addr {
            let bound = (bind(addr, what).await?, route, what, addr);
            if native {
                native_routed.push(bound);
            } else {
                http_routed.push(bound);
            }
        }
    }
    let tls = match &config.native_tls {
        Some(tls) => {
            let acceptor = crate::tls::acceptor(&tls.cert_file, &tls.key_file)?;
            Some((bind(tls.listen, "native TLS").await?, acceptor))
        }
        None => None,
    };
    let https = match &config.https {
        Some(https) => {
            let acceptor = crate::tls::acceptor(&https.files.cert_file, &https.files.key_file)?;
            Some((bind(https.listen, "HTTPS").await?, acceptor))
        }
        None => None,
    };
    let ask = Arc::new(
        AskService::new(&config, metrics.clone()).context("cannot set up the natural-language engine")?,
    );
    let cluster = Cluster::new(&config.cluster, metrics.clone());
    let gateway = Arc::new(Gateway::new(config.users.clone()));
    if gateway.enabled() {
        tracing::info!(
            users = config.users.len(),
            "proxy users in force: clients log in to the proxy"
        );
    }
    tokio::spawn(reload_on_sighup(cli, gateway.clone(), stop_rx.clone()));
    let mut http_env = http::HttpEnv::new(
        config.clone(),
        metrics.clone(),
        ask.clone(),
        cluster.clone(),
        gateway.clone(),
    )
    .context("cannot set up the HTTP interface")?;
    if let Some(audit) = &config.audit {
        tracing::info!(table = %format!("{}.{}", audit.database, audit.table), "audit records go to ClickHouse");
        http_env.audit = crate::http::audit::start(audit.clone(), http_env.router.clone(), metrics.clone());
    }
    let http_env = Arc::new(http_env);
    let env = Arc::new(native::session::SessionEnv {
        config: config.clone(),
        metrics: metrics.clone(),
        ask,
        framing_budget: native::budget::Budget::new(
            usize::try_from(config.max_framing_memory).unwrap_or(usize::MAX),
        ),
        cluster: cluster.clone(),
        route: Route::Any,
        gateway,
        router: http_env.router.clone(),
        audit: http_env.audit.clone(),
    });
    // Each node on both its ports: the native Hello and Ping, then HTTP /ping.
    let probe_env = http_env.clone();
    let connect_timeout = config.cluster.health.timeout;
    cluster::health::spawn(
        cluster.clone(),
        move |node| {
            let env = probe_env.clone();
            async move {
                native::upstream::probe(&node.config.native, connect_timeout).await?;
                env.router.ping(node.index).await
            }
        },
        stop_rx.clone(),
    );
    tracing::info!(
        native = %config.native_listen,
        http = %config.http_listen,
        metrics = %config.metrics_listen,
        nodes = %config
            .cluster
            .nodes
            .iter()
            .map(|n| format!("{} (native {}, http {})", n.name, n.native, n.http))
            .collect::<Vec<_>>()
            .join(", "),
        balance = ?config.cluster.balance,
        "aurora-proxy listening"
    );
    if let Some(tls) = &config.native_tls {
        tracing::info!(native_tls = %tls.listen, "serving native clients over TLS");
    }
    let tls_task = tls.map(|(listener, acceptor)| {
        tokio::spawn(native::server::serve_tls(
            listener,
            acceptor,
            env.clone(),
            stop_rx.clone(),
            tracker.clone(),
        ))
    });
    let mut serving = Vec::new();
    for (listener, route, what, addr) in native_routed {
        tracing::info!(listen = %addr, "serving the {what} endpoint");
        let env = Arc::new(native::session::SessionEnv {
            route,
            ..(*env).clone()
        });
        serving.push(tokio::spawn(native::server::serve(
            listener,
            env,
            stop_rx.clone(),
            tracker.clone(),
        )));
    }
    let native_task = tokio::spawn(native::server::serve(
        native_listener,
        env,
        stop_rx.clone(),
        tracker.clone(),
    ));
    // The upstream's error dialect, before the first client can see an error: briefly here, then in the
    // background while ClickHouse does not answer (errors are written in the modern dialect meanwhile, or the
    // one a native Hello shows).
    let learnt = tokio::time::timeout(config.connect_timeout, http_env.probe_dialect())
        .await
        .unwrap_or(false);
    if !learnt {
        let probe_env = http_env.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                if probe_env.probe_dialect().await {
                    break;
                }
            }
        });
    }
    for (listener, route, what, addr) in http_routed {
        tracing::info!(listen = %addr, "serving the {what} endpoint");
        serving.push(tokio::spawn(http::serve(
            listener,
            Arc::new(http_env.with_route(route)),
            stop_rx.clone(),
            tracker.clone(),
        )));
    }
    if let Some((listener, acceptor)) = https {
        tracing::info!(https = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving HTTP clients over TLS");
        serving.push(tokio::spawn(http::serve_tls(
            listener,
            acceptor,
            http_env.clone(),
            stop_rx.clone(),
            tracker.clone(),
        )));
    }
    let http_task = tokio::spawn(http::serve(
        http_listener,
        http_env,
        stop_rx.clone(),
        tracker.clone(),
    ));
    let report = cluster.clone();
    let health: metrics::HealthReport = Arc::new(move || report.report());
    let metrics_task = tokio::spawn(metrics::serve(
        metrics_listener,
        metrics.clone(),
        health,
        stop_rx.clone(),
    ));

    aurora_common::telemetry::shutdown_signal().await;
    tracing::info!(timeout = %humantime::format_duration(config.shutdown_timeout), "shutting down: draining running queries");
    let _ = stop_tx.send(true);
    let _ = native_task.await;
    if let Some(task) = tls_task {
        let _ = task.await;
    }
    let _ = http_task.await;
    for task in serving {
        let _ = task.await;
    }
    tracker.close();
    if tokio::time::timeout(config.shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.len(),
            "shutdown timeout reached; closing remaining connections"
        );
    }
    metrics_task.abort();
    tracing::info!("aurora-proxy stopped");
    Ok(())
}

/// On each SIGHUP: loads the configuration again and puts its proxy users and their limits in force, without
/// dropping a connection. A configuration with problems is refused with them, and the users in force stay.
/// (Other keys take effect at the next start.)
async fn reload_on_sighup(cli: Cli, gateway: Arc<Gateway>, mut stop: watch::Receiver<bool>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: proxy users are not reloadable");
        return;
    };
    loop {
        tokio::select! {
            got = hangups.recv() => if got.is_none() { return },
            _ = crate::listener::stopped(&mut stop) => return,
        }
        match Config::load(cli.clone()) {
            Ok(config) => {
                let users = gateway.replace(config.users);
                tracing::info!(users, "SIGHUP: proxy users reloaded");
            }
            Err(error) => {
                tracing::error!("SIGHUP: configuration refused, the proxy users in force stay: {error}");
            }
        }
    }
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} clients on {addr}"))
}
