//! Configuration: command-line flags, `AURORA_…` environment variables and a TOML file, in that order of
//! precedence, over named defaults. Unknown flags and unknown keys are errors that name the offender.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// Default addresses follow ClickHouse's ports shifted by one so the proxy can run beside a local server.
pub const DEFAULT_NATIVE_LISTEN: &str = "127.0.0.1:9001";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8124";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_UPSTREAM_NATIVE: &str = "127.0.0.1:9000";
pub const DEFAULT_UPSTREAM_HTTP: &str = "http://127.0.0.1:8123";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_FRAMED_PACKET: u64 = 256 << 20;

/// `aurora-proxy` command line. Every flag can also be set by its environment variable or config key.
#[derive(Debug, Parser, Default)]
#[command(
    name = "aurora-proxy",
    version,
    about = "ClickHouse native and HTTP proxy that answers ASK questions"
)]
pub struct Cli {
    /// TOML config file; its keys are the flag names with '_' for '-'.
    #[arg(long, env = "AURORA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address for ClickHouse native-protocol clients [default: 127.0.0.1:9001].
    #[arg(long, env = "AURORA_NATIVE_LISTEN")]
    pub native_listen: Option<SocketAddr>,
    /// Address for native-protocol clients over TLS (clickhouse-client --secure; ClickHouse uses 9440). Off unless
    /// set; needs --tls-cert-file and --tls-key-file.
    #[arg(long, env = "AURORA_NATIVE_TLS_LISTEN")]
    pub native_tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for --native-tls-listen.
    #[arg(long, env = "AURORA_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for --native-tls-listen.
    #[arg(long, env = "AURORA_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Address for ClickHouse HTTP-interface clients [default: 127.0.0.1:8124].
    #[arg(long, env = "AURORA_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Address of the Prometheus /metrics endpoint [default: 127.0.0.1:9464].
    #[arg(long, env = "AURORA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// ClickHouse native port, HOST:PORT [default: 127.0.0.1:9000].
    #[arg(long, env = "AURORA_UPSTREAM_NATIVE")]
    pub upstream_native: Option<String>,
    /// ClickHouse HTTP interface URL [default: http://127.0.0.1:8123].
    #[arg(long, env = "AURORA_UPSTREAM_HTTP")]
    pub upstream_http: Option<String>,
    /// OpenAI-compatible endpoint for ASK (e.g. http://127.0.0.1:8080/v1).
    #[arg(long, env = "AURORA_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// Model name sent to the LLM endpoint.
    #[arg(long, env = "AURORA_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// HTTP API of aurora-ingest that the console at /ui/ manages pipelines through (e.g.
    /// http://127.0.0.1:8125). Off unless set.
    #[arg(long, env = "AURORA_INGEST_API_URL")]
    pub ingest_api_url: Option<String>,
    /// Grafana's base URL, linked from the console's Visualize page (e.g. http://127.0.0.1:3000).
    #[arg(long, env = "AURORA_GRAFANA_URL")]
    pub grafana_url: Option<String>,
    /// Time allowed to connect to ClickHouse, e.g. "5s" [default: 5s].
    #[arg(long, env = "AURORA_CONNECT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Time allowed for a native client's handshake [default: 10s].
    #[arg(long, env = "AURORA_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// On SIGTERM/SIGINT, how long running queries may finish before connections are closed [default: 30s].
    #[arg(long, env = "AURORA_SHUTDOWN_TIMEOUT", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// Most client connections served at once per protocol; more wait in the listen queue [default: 4096].
    #[arg(long, env = "AURORA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Largest native packet the proxy frames in memory; a larger one switches that connection to a plain byte
    /// relay [default: 268435456].
    #[arg(long, env = "AURORA_MAX_FRAMED_PACKET")]
    pub max_framed_packet: Option<u64>,
    /// Log format: "text" or "json" [default: text]. The level comes from RUST_LOG (default "info").
    #[arg(long, env = "AURORA_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The TOML file: the same keys as the flags, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    native_listen: Option<SocketAddr>,
    native_tls_listen: Option<SocketAddr>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    http_listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    upstream_native: Option<String>,
    upstream_http: Option<String>,
    llm_base_url: Option<String>,
    llm_model: Option<String>,
    ingest_api_url: Option<String>,
    grafana_url: Option<String>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    handshake_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    shutdown_timeout: Option<Duration>,
    max_connections: Option<usize>,
    max_framed_packet: Option<u64>,
    log_format: Option<LogFormat>,
}

/// The proxy's configuration after merging and validation.
#[derive(Debug, Clone)]
pub struct Config {
    pub native_listen: SocketAddr,
    /// TLS listener for native clients, with its certificate chain and key (all three or none).
    pub native_tls: Option<NativeTls>,
    pub http_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    /// `host:port` of ClickHouse's native interface.
    pub upstream_native: String,
    /// Base URL of ClickHouse's HTTP interface, without a trailing slash.
    pub upstream_http: String,
    pub llm_base_url: Option<String>,
    pub llm_model: Option<String>,
    /// Base URL of aurora-ingest's HTTP API (no trailing slash), for the console's pipelines page.
    pub ingest_api_url: Option<String>,
    /// Grafana's base URL (no trailing slash), for the console's Visualize page.
    pub grafana_url: Option<String>,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_connections: usize,
    pub max_framed_packet: u64,
    pub log_format: LogFormat,
}

/// Where the TLS listener binds and what it presents.
#[derive(Debug, Clone)]
pub struct NativeTls {
    pub listen: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Merges flags and environment (already in `cli`) over the config file over defaults, then validates.
    pub fn load(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let parse_default = |s: &str| s.parse::<SocketAddr>().expect("default address is valid");
        let tls_listen = cli.native_tls_listen.or(file.native_tls_listen);
        let cert_file = cli.tls_cert_file.or(file.tls_cert_file);
        let key_file = cli.tls_key_file.or(file.tls_key_file);
        let native_tls = match (tls_listen, cert_file, key_file) {
            (None, None, None) => None,
            (Some(listen), Some(cert_file), Some(key_file)) => Some(NativeTls {
                listen,
                cert_file,
                key_file,
            }),
            _ => {
                return Err(ConfigError::Invalid {
                    key: "native_tls_listen",
                    message: "native_tls_listen, tls_cert_file and tls_key_file are set together".into(),
                })
            }
        };
        let config = Config {
            native_tls,
            native_listen: cli
                .native_listen
                .or(file.native_listen)
                .unwrap_or_else(|| parse_default(DEFAULT_NATIVE_LISTEN)),
            http_listen: cli
                .http_listen
                .or(file.http_listen)
                .unwrap_or_else(|| parse_default(DEFAULT_HTTP_LISTEN)),
            metrics_listen: cli
                .metrics_listen
                .or(file.metrics_listen)
                .unwrap_or_else(|| parse_default(DEFAULT_METRICS_LISTEN)),
            upstream_native: cli
                .upstream_native
                .or(file.upstream_native)
                .unwrap_or_else(|| DEFAULT_UPSTREAM_NATIVE.into()),
            upstream_http: cli
                .upstream_http
                .or(file.upstream_http)
                .unwrap_or_else(|| DEFAULT_UPSTREAM_HTTP.into())
                .trim_end_matches('/')
                .to_string(),
            llm_base_url: cli.llm_base_url.or(file.llm_base_url),
            llm_model: cli.llm_model.or(file.llm_model),
            ingest_api_url: cli
                .ingest_api_url
                .or(file.ingest_api_url)
                .map(|url| url.trim_end_matches('/').to_string()),
            grafana_url: cli
                .grafana_url
                .or(file.grafana_url)
                .map(|url| url.trim_end_matches('/').to_string()),
            connect_timeout: cli
                .connect_timeout
                .or(file.connect_timeout)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            handshake_timeout: cli
                .handshake_timeout
                .or(file.handshake_timeout)
                .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
            shutdown_timeout: cli
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            max_connections: cli
                .max_connections
                .or(file.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_framed_packet: cli
                .max_framed_packet
                .or(file.max_framed_packet)
                .unwrap_or(DEFAULT_MAX_FRAMED_PACKET),
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        match self.upstream_native.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => {
                return invalid(
                    "upstream_native",
                    format!("{:?} is not HOST:PORT", self.upstream_native),
                )
            }
        }
        if !(self.upstream_http.starts_with("http://") || self.upstream_http.starts_with("https://")) {
            return invalid(
                "upstream_http",
                format!("{:?} is not an http:// or https:// URL", self.upstream_http),
            );
        }
        if self.llm_base_url.is_some() != self.llm_model.is_some() {
            return invalid(
                "llm_base_url",
                "llm_base_url and llm_model are set together".into(),
            );
        }
        if let Some(url) = &self.ingest_api_url {
            if !url.starts_with("http://") {
                return invalid(
                    "ingest_api_url",
                    format!("{url:?} is not an http:// URL (aurora-ingest's API speaks plain HTTP)"),
                );
            }
        }
        if let Some(url) = &self.grafana_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(
                    "grafana_url",
                    format!("{url:?} is not an http:// or https:// URL"),
                );
            }
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1".into());
        }
        if self.max_framed_packet < 1 << 20 {
            return invalid("max_framed_packet", "must be at least 1048576 (1 MiB)".into());
        }
        for (key, value) in [
            ("connect_timeout", self.connect_timeout),
            ("handshake_timeout", self.handshake_timeout),
        ] {
            if value.is_zero() {
                return invalid(key, "must be longer than zero".into());
            }
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("aurora-proxy").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_apply_and_flags_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("aurora-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("proxy.toml");
        std::fs::write(&file, "upstream_native = \"10.0.0.1:9000\"\nshutdown_timeout = \"2s\"\nnative_listen = \"127.0.0.1:1\"\n").unwrap();
        let config = Config::load(
            cli(&[
                "--config",
                file.to_str().unwrap(),
                "--native-listen",
                "127.0.0.1:7000",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config.native_listen.port(), 7000);
        assert_eq!(config.upstream_native, "10.0.0.1:9000");
        assert_eq!(config.shutdown_timeout, Duration::from_secs(2));
        assert_eq!(config.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(config.upstream_http, DEFAULT_UPSTREAM_HTTP);
    }

    #[test]
    fn unknown_flags_and_keys_are_named_in_the_error() {
        let err = cli(&["--natve-listen", "x"]).unwrap_err().to_string();
        assert!(err.contains("--natve-listen"), "{err}");
        let dir = std::env::temp_dir().join(format!("aurora-config-test-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("proxy.toml");
        std::fs::write(&file, "upstream_natve = \"x\"\n").unwrap();
        let err = Config::load(cli(&["--config", file.to_str().unwrap()]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstream_natve"), "{err}");
        let err = Config::load(cli(&["--upstream-native", "nohostport"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstream_native"), "{err}");
    }

    #[test]
    fn tls_needs_its_certificate_and_key() {
        let err = Config::load(cli(&["--native-tls-listen", "127.0.0.1:9440"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_cert_file"), "{err}");
        let config = Config::load(
            cli(&[
                "--native-tls-listen",
                "127.0.0.1:9440",
                "--tls-cert-file",
                "c.pem",
                "--tls-key-file",
                "k.pem",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config.native_tls.unwrap().listen.port(), 9440);
    }

    #[test]
    fn console_urls_are_checked_and_lose_their_trailing_slash() {
        let config = Config::load(
            cli(&[
                "--ingest-api-url",
                "http://127.0.0.1:8125/",
                "--grafana-url",
                "https://grafana.example.com/",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config.ingest_api_url.as_deref(), Some("http://127.0.0.1:8125"));
        assert_eq!(config.grafana_url.as_deref(), Some("https://grafana.example.com"));
        let err = Config::load(cli(&["--ingest-api-url", "127.0.0.1:8125"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ingest_api_url"), "{err}");
        let err = Config::load(cli(&["--grafana-url", "grafana:3000"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("grafana_url"), "{err}");
    }

    #[test]
    fn the_example_config_loads() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/aurora-proxy.example.toml");
        let config = Config::load(cli(&["--config", example]).unwrap()).unwrap();
        assert_eq!(config.native_listen.port(), 9001);
    }
}
