//! The configuration's tests: precedence of the layers, each problem reported with its key, several at once,
//! the example file. Tests that set environment variables use keys no other test here reads.

use super::*;
use clap::{CommandFactory as _, Parser as _};

fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("aurora-proxy").chain(args.iter().copied()))
}

#[test]
fn defaults_apply_and_flags_win_over_the_file() {
    let dir = std::env::temp_dir().join(format!("aurora-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.toml");
    std::fs::write(
        &file,
        "upstream_native = \"10.0.0.1:9000\"\nshutdown_timeout = \"2s\"\nnative_listen = \"127.0.0.1:1\"\n",
    )
    .unwrap();
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
fn pipeline_admins_and_the_ingest_token_load_from_flags_and_file() {
    let dir = std::env::temp_dir().join(format!("aurora-config-test-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "ingest-token-0123456789\n").unwrap();
    let config = Config::load(
        cli(&[
            "--pipeline-admins",
            "alice, bob",
            "--ingest-api-token-file",
            token.to_str().unwrap(),
        ])
        .unwrap(),
    )
    .unwrap();
    assert_eq!(config.pipeline_admins, ["alice", "bob"]);
    assert_eq!(
        config.ingest_api_token,
        Some(IngestApiToken("ingest-token-0123456789".into()))
    );
    assert!(!format!("{config:?}").contains("ingest-token-0123456789"));
    let file = dir.join("proxy.toml");
    std::fs::write(&file, "pipeline_admins = [\"carol\"]\n").unwrap();
    let config = Config::load(cli(&["--config", file.to_str().unwrap()]).unwrap()).unwrap();
    assert_eq!(config.pipeline_admins, ["carol"]);
    assert_eq!(config.ingest_api_token, None);
    let err = Config::load(cli(&["--ingest-api-token-env", "AURORA_TEST_SURELY_UNSET_VAR"]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("AURORA_TEST_SURELY_UNSET_VAR"), "{err}");
}

#[test]
fn the_example_config_loads() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/aurora-proxy.example.toml");
    let config = Config::load(cli(&["--config", example]).unwrap()).unwrap();
    assert_eq!(config.native_listen.port(), 9001);
    let feedback = config.ask_feedback.expect("feedback on");
    assert_eq!(feedback.table.to_string(), "default.aurora_feedback");
}

#[test]
fn feedback_is_on_by_default_off_with_none_and_its_table_is_checked() {
    let on = Config::load(cli(&[]).unwrap()).unwrap().ask_feedback.unwrap();
    assert_eq!(
        (on.table.to_string().as_str(), on.credentials.user.as_str()),
        (DEFAULT_FEEDBACK_TABLE, "default")
    );
    assert!(Config::load(cli(&["--ask-feedback-table", "none"]).unwrap())
        .unwrap()
        .ask_feedback
        .is_none());
    let err = Config::load(cli(&["--ask-feedback-table", "x.y;DROP TABLE z"]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("ask_feedback_table"), "{err}");
    let err = Config::load(cli(&["--ask-feedback-password-env", "AURORA_TEST_SURELY_UNSET_VAR"]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("AURORA_TEST_SURELY_UNSET_VAR"), "{err}");
}

/// A file of `text` in a directory of this test's own.
fn file(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aurora-config-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The keys of the problems `args` have, in order.
fn problem_keys(args: &[&str]) -> Vec<String> {
    let err = Config::load(cli(args).unwrap()).expect_err("refused");
    err.problems().iter().map(|p| p.key.clone()).collect()
}

#[test]
fn each_problem_is_reported_with_its_key() {
    for (args, key) in [
        (&["--upstream-native", "nohostport"][..], "upstream_native"),
        (&["--upstream-http", "ch:8123"], "upstream_http"),
        (&["--llm-base-url", "http://127.0.0.1:8080/v1"], "llm_model"),
        (&["--llm-model", "m"], "llm_base_url"),
        (&["--llm-max-tokens", "0"], "llm_max_tokens"),
        (&["--llm-timeout", "0s"], "llm_timeout"),
        (&["--embed-model-dir", "/surely/not/here"], "embed_model_dir"),
        (&["--ort-library", "/surely/not/here.so"], "ort_library"),
        (&["--semantic-file", "/surely/not/here.yaml"], "semantic_file"),
        (&["--ask-max-rows", "0"], "ask_max_rows"),
        (
            &["--ask-semantic-cache-threshold", "1.5"],
            "ask_semantic_cache_threshold",
        ),
        (&["--ask-token-budget", "100"], "ask_token_budget"),
        (&["--ask-candidates", "6"], "ask_candidates"),
        (&["--ask-repair-attempts", "4"], "ask_repair_attempts"),
        (
            &["--ask-feedback-table", "x.y;DROP TABLE z"],
            "ask_feedback_table",
        ),
        (
            &["--ask-feedback-password-env", "AURORA_TEST_SURELY_UNSET_VAR"],
            "ask_feedback_password_env",
        ),
        (&["--ingest-api-url", "https://ingest:8125"], "ingest_api_url"),
        (
            &["--ingest-api-token-env", "AURORA_TEST_SURELY_UNSET_VAR"],
            "ingest_api_token_env",
        ),
        (
            &["--ingest-api-token-file", "/surely/not/here"],
            "ingest_api_token_file",
        ),
        (&["--grafana-url", "grafana:3000"], "grafana_url"),
        (
            &["--tls-key-file", "k.pem", "--tls-cert-file", "c.pem"],
            "native_tls_listen",
        ),
        (&["--max-connections", "0"], "max_connections"),
        (&["--max-framed-packet", "1000"], "max_framed_packet"),
        (&["--max-framing-memory", "1000"], "max_framing_memory"),
        (&["--connect-timeout", "0s"], "connect_timeout"),
        (&["--handshake-timeout", "0s"], "handshake_timeout"),
        (&["--http-receive-timeout", "0s"], "http_receive_timeout"),
    ] {
        assert_eq!(problem_keys(args), [key], "{args:?}");
        let err = Config::load(cli(args).unwrap()).unwrap_err().to_string();
        assert!(err.starts_with(&format!("invalid {key}: ")), "{err}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let path = file(
        "several",
        "ask_candidates = 9\nask_max_rows = \"many\"\nllm_modl = \"m\"\n",
    );
    let err = Config::load(
        cli(&[
            "--config",
            path.to_str().unwrap(),
            "--upstream-native",
            "nohostport",
            "--ask-feedback-table",
            "x.y;DROP TABLE z",
            "--native-tls-listen",
            "127.0.0.1:9440",
        ])
        .unwrap(),
    )
    .unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            // The file's, in key order: a value of the wrong type and an unknown key, then what is checked
            // after loading.
            "ask_max_rows",
            "llm_modl",
            "tls_cert_file",
            "tls_key_file",
            "upstream_native",
            "ask_candidates",
            "ask_feedback_table",
        ]
    );
    let text = err.to_string();
    assert!(
        text.starts_with("7 problems in the configuration:\n  ask_max_rows: "),
        "{text}"
    );
    assert!(text.contains(path.to_str().unwrap()), "{text}");
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file_over_defaults() {
    // Keys no other test reads, since the environment is the whole process's.
    std::env::set_var("AURORA_LLM_MAX_TOKENS", "200");
    std::env::set_var("AURORA_ASK_TOKEN_BUDGET", "400");
    let path = file(
        "layers",
        "catalog_ttl = \"1s\"\nllm_max_tokens = 100\nask_token_budget = 300\n",
    );
    let parsed = cli(&["--config", path.to_str().unwrap(), "--ask-token-budget", "500"]);
    std::env::remove_var("AURORA_LLM_MAX_TOKENS");
    std::env::remove_var("AURORA_ASK_TOKEN_BUDGET");
    let config = Config::load(parsed.unwrap()).unwrap();
    assert_eq!(config.ask_token_budget, 500, "flag over environment");
    assert_eq!(config.llm_max_tokens, 200, "environment over file");
    assert_eq!(config.catalog_ttl, Duration::from_secs(1), "file over default");
    assert_eq!(config.ask_max_rows, DEFAULT_ASK_MAX_ROWS, "default");
}

#[test]
fn the_file_is_refused_for_an_unknown_key_or_a_value_of_the_wrong_type() {
    let path = file("unknown", "config = \"other.toml\"\nupstream_natve = \"x\"\n");
    let err = Config::load(cli(&["--config", path.to_str().unwrap()]).unwrap()).unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["config", "upstream_natve"]);
    assert!(
        err.problems()[1]
            .message
            .starts_with("unknown key in config file"),
        "{err}"
    );

    let path = file("wrong-type", "llm_timeout = \"soon\"\nnative_listen = 9001\n");
    // A flag overrides native_listen; the file's value is still checked.
    let err = Config::load(
        cli(&[
            "--config",
            path.to_str().unwrap(),
            "--native-listen",
            "127.0.0.1:7000",
        ])
        .unwrap(),
    )
    .unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["llm_timeout", "native_listen"], "{err}");
    assert!(err.to_string().contains("\"soon\" is not a duration"), "{err}");

    let path = file("not-toml", "native_listen = \n");
    let err = Config::load(cli(&["--config", path.to_str().unwrap()]).unwrap()).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
}

#[test]
fn an_https_upstream_is_refused_at_load_as_the_http_side_would_refuse_it() {
    let err = Config::load(cli(&["--upstream-http", "https://ch:8443"]).unwrap()).unwrap_err();
    assert_eq!(err.problems().len(), 1);
    let problem = &err.problems()[0];
    assert_eq!(problem.key, "upstream_http");
    assert!(problem.message.contains("only http:// is supported"), "{problem}");
    // A trailing slash and a path prefix are fine; a query string is not.
    let config = Config::load(cli(&["--upstream-http", "http://ch:8123/prefix/"]).unwrap()).unwrap();
    assert_eq!(config.upstream_http, "http://ch:8123/prefix");
    assert_eq!(
        problem_keys(&["--upstream-http", "http://ch:8123/?x=1"]),
        ["upstream_http"]
    );
}

#[test]
fn every_key_is_a_flag_and_documented_in_the_example_and_the_readme() {
    Cli::command().debug_assert();
    let keys = Cli::keys();
    // Every section contributes its keys (a section left out of the flattening would lose them silently).
    for key in [
        "native_listen",
        "upstream_http",
        "llm_model",
        "catalog_ttl",
        "ask_repair_empty",
        "log_format",
    ] {
        assert!(keys.contains(&key.to_string()), "{key} is not a key");
    }
    let example = include_str!("../../aurora-proxy.example.toml");
    let readme = include_str!("../../../README.md");
    for key in super::cli::FILE_ONLY_KEYS {
        assert!(
            example.contains(&format!("[[{key}]]")),
            "{key} is not in the example file"
        );
        assert!(
            readme.contains(&format!("`[[{key}]]`")),
            "{key} is not in the README"
        );
    }
    for key in keys
        .iter()
        .filter(|k| !super::cli::FILE_ONLY_KEYS.contains(&k.as_str()))
    {
        assert!(
            example.contains(&format!("{key} = ")),
            "{key} is not in the example file"
        );
        let flag = key.replace('_', "-");
        assert!(
            readme.contains(&format!("`--{flag}` / `{key}`")),
            "{key} is not in the README"
        );
    }
}

#[test]
fn durations_read_and_print_as_people_write_them() {
    for (text, seconds) in [("5s", 5), ("2m", 120), ("1h 30m", 5400)] {
        let span: Span = text.parse().unwrap();
        assert_eq!(span.0, Duration::from_secs(seconds));
        assert_eq!(span.to_string().parse::<Span>().unwrap(), span);
    }
    let err = cli(&["--llm-timeout", "soon"]).unwrap_err().to_string();
    assert!(err.contains("--llm-timeout"), "{err}");
}

#[test]
fn nodes_load_from_the_file_and_each_problem_names_its_node() {
    let path = file(
        "nodes",
        "balance = \"round_robin\"\nhealthy_after = 3\n\
         [[nodes]]\nname = \"ch1\"\nnative = \"127.0.0.1:9000\"\nhttp = \"http://127.0.0.1:8123/\"\n\
         [[nodes]]\nname = \"ch2\"\nnative = \"127.0.0.1:9010\"\nhttp = \"http://127.0.0.1:8133\"\nrole = \"read\"\nweight = 3\nshard = 1\n",
    );
    let config = Config::load(cli(&["--config", path.to_str().unwrap()]).unwrap()).unwrap();
    let cluster = &config.cluster;
    assert_eq!(cluster.balance, Balance::RoundRobin);
    assert_eq!(cluster.health.healthy_after, 3);
    assert_eq!(cluster.health.unhealthy_after, DEFAULT_UNHEALTHY_AFTER);
    let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["ch1", "ch2"]);
    assert_eq!(
        cluster.nodes[0].http, "http://127.0.0.1:8123",
        "the trailing slash goes"
    );
    assert_eq!(
        (
            cluster.nodes[1].role,
            cluster.nodes[1].weight,
            cluster.nodes[1].shard
        ),
        (Role::Read, 3, Some(1))
    );

    // Without [[nodes]], the one node is the upstream_* keys'.
    let single = Config::load(cli(&["--upstream-native", "10.0.0.1:9000"]).unwrap()).unwrap();
    assert_eq!(single.cluster.nodes.len(), 1);
    assert_eq!(single.cluster.nodes[0].native, "10.0.0.1:9000");

    let path = file(
        "bad-nodes",
        "[[nodes]]\nname = \"ch 1\"\nnative = \"nohostport\"\nhttp = \"https://x:8443\"\nweight = 0\n\
         [[nodes]]\nname = \"ch2\"\nnative = \"a:1\"\nhttp = \"http://a:2\"\n\
         [[nodes]]\nname = \"ch2\"\nnative = \"b:1\"\nhttp = \"http://b:2\"\n",
    );
    let err = Config::load(cli(&["--config", path.to_str().unwrap()]).unwrap()).unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "nodes[0].name",
            "nodes[0].native",
            "nodes[0].http",
            "nodes[0].weight",
            "nodes[2].name"
        ],
        "{err}"
    );

    let path = file(
        "node-typo",
        "[[nodes]]\nname = \"ch1\"\nnative = \"a:1\"\nhttp = \"http://a:2\"\nrole = \"reader\"\nport = 1\n",
    );
    let err = Config::load(cli(&["--config", path.to_str().unwrap()]).unwrap()).unwrap_err();
    assert_eq!(err.problems()[0].key, "nodes", "{err}");
    assert!(
        problem_keys(&["--healthy-after", "0", "--health-interval", "0s"]).len() == 2,
        "zero counts and intervals are refused"
    );
}
