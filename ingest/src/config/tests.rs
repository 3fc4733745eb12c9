use super::*;

#[test]
fn example_file_loads() {
    // The example names AURORA_INGEST_API_TOKEN; no other test reads that variable.
    std::env::set_var("AURORA_INGEST_API_TOKEN", "example-token-0123456789");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("aurora-ingest.example.toml");
    let config = Config::load(Some(&path)).unwrap();
    assert_eq!(config.pipelines.len(), 1);
    assert_eq!(config.pipelines[0].columns().len(), 8);
    assert_eq!(config.api_token().unwrap().unwrap().0, "example-token-0123456789");
}

fn pipeline_error(extra: &str) -> ConfigError {
    let text = format!("[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'db.t'\n{extra}");
    let c: Config = toml::from_str(&text).unwrap();
    c.validate().unwrap_err()
}

#[test]
fn librdkafka_properties_that_run_code_are_refused_at_load() {
    let dir = std::env::temp_dir().join(format!("aurora-ingest-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("plugin.toml");
    std::fs::write(
        &file,
        "[kafka.options]\n\"plugin.library.paths\" = \"/tmp/evil.so\"\n",
    )
    .unwrap();
    let e = Config::load(Some(&file)).unwrap_err();
    assert!(e.contains(&file.display().to_string()), "names the file: {e}");
    assert!(
        e.contains("kafka.options.\"plugin.library.paths\""),
        "names the key: {e}"
    );
    let e = pipeline_error("kafka_options = { 'sasl.kerberos.kinit.cmd' = 'touch /tmp/x' }");
    assert_eq!(e.key, "pipelines[0].kafka_options.\"sasl.kerberos.kinit.cmd\"");
    let e = pipeline_error("kafka_options = { 'group.id' = 'other' }");
    assert!(e.reason.contains("group_id"), "{e}");
    let c: Config =
        toml::from_str("[kafka.options]\ndebug = 'consumer'\n'fetch.wait.max.ms' = '50'").unwrap();
    c.validate().unwrap();
}

#[test]
fn the_api_allows_tuning_options_only() {
    let spec: PipelineSpec =
        serde_json::from_str(r#"{"name":"p","topics":["t"],"table":"db.t","kafka_options":{"debug":"all"}}"#)
            .unwrap();
    spec.validate("pipeline").unwrap();
    let e = spec.check_api_options("pipeline").unwrap_err();
    assert_eq!(e.key, "pipeline.kafka_options.\"debug\"");
    let spec: PipelineSpec = serde_json::from_str(
        r#"{"name":"p","topics":["t"],"table":"db.t","kafka_options":{"fetch.wait.max.ms":"50"}}"#,
    )
    .unwrap();
    spec.check_api_options("pipeline").unwrap();
}

#[test]
fn the_api_token_never_sits_in_the_file() {
    let c: Config = toml::from_str("api_token = 'abcdefghijklmnopqrstuvwxyz'").unwrap();
    assert_eq!(c.validate().unwrap_err().key, "api_token");
    let c: Config = toml::from_str("api_token_env = 'AURORA_TEST_SURELY_UNSET_TOKEN_VAR'").unwrap();
    assert!(c
        .validate()
        .unwrap_err()
        .reason
        .contains("AURORA_TEST_SURELY_UNSET_TOKEN_VAR"));
    let dir = std::env::temp_dir().join(format!("aurora-ingest-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let short = dir.join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let c: Config = toml::from_str(&format!("api_token_file = {:?}", short.display().to_string())).unwrap();
    assert!(c.validate().unwrap_err().reason.contains("at least 16"));
    let good = dir.join("good");
    std::fs::write(&good, "0123456789abcdef0123\nsecond line ignored\n").unwrap();
    let c: Config = toml::from_str(&format!("api_token_file = {:?}", good.display().to_string())).unwrap();
    c.validate().unwrap();
    assert_eq!(c.api_token().unwrap().unwrap().0, "0123456789abcdef0123");
    assert!(!format!("{c:?}").contains("0123456789abcdef0123"));
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c.api_token().unwrap(), None);
}

#[test]
fn system_databases_and_aurora_tables_are_no_targets() {
    for (table, extra) in [
        ("system.x", ""),
        ("SYSTEM.x", ""),
        ("information_schema.x", ""),
        ("INFORMATION_SCHEMA.x", ""),
        ("db.aurora_ingest_ledger", ""),
        ("db.aurora_stage_other", ""),
        ("db.aurora_probe_1_a", ""),
        ("db.events_dead_letters", ""),
        ("db.events_per_minute", ""),
        ("db.events_per_minute_mv", ""),
    ] {
        let c: Config = toml::from_str(&format!(
            "[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = '{table}'\n{extra}"
        ))
        .unwrap();
        assert_eq!(c.validate().unwrap_err().key, "pipelines[0].table", "{table}");
    }
    let c: Config =
        toml::from_str("[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'db.aurora_events'").unwrap();
    c.validate().unwrap();
}

#[test]
fn keys_are_parsed_expressions_never_text() {
    let e = pipeline_error("partition_by = 'tuple() ORDER BY tuple() SETTINGS index_granularity = 3 --'");
    assert_eq!(e.key, "pipelines[0].partition_by");
    let e = pipeline_error("order_by = ['tenant_id', 'event_id) SETTINGS index_granularity = 3 --']");
    assert_eq!(e.key, "pipelines[0].order_by[1]");
    let e = pipeline_error("order_by = []");
    assert_eq!(e.key, "pipelines[0].order_by[0]");
    let c: Config = toml::from_str(
        "[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'db.t'\npartition_by = 'toYYYYMMDD(timestamp)'\n\
         order_by = ['tenant_id', 'toStartOfHour(timestamp)']",
    )
    .unwrap();
    c.validate().unwrap();
}

#[test]
fn errors_name_the_key() {
    let e = toml::from_str::<Config>("[kafka]\nbrokerz = 'x'").unwrap_err();
    assert!(e.to_string().contains("brokerz"), "{e}");
    let c: Config =
        toml::from_str("[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'db.t'\nbatch_max_rows = 0")
            .unwrap();
    assert_eq!(c.validate().unwrap_err().key, "pipelines[0].batch_max_rows");
    let c: Config = toml::from_str(
        "[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'db.t'\n[[pipelines.columns]]\nname='a'\ntype='Strin'",
    )
    .unwrap();
    assert_eq!(c.validate().unwrap_err().key, "pipelines[0].columns[0].type");
    let c: Config = toml::from_str("[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'nodot'").unwrap();
    assert_eq!(c.validate().unwrap_err().key, "pipelines[0].table");
}

#[test]
fn secrets_are_not_printed() {
    let c: Config = toml::from_str("[clickhouse]\npassword = 'hunter2'").unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    let c: Config = toml::from_str("[clickhouse]\npassword = 'a'\npassword_env = 'B'").unwrap();
    assert!(c.validate().is_err());
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let text = "[clickhouse]\nurl = 'ch:8123'\n\
                [[pipelines]]\nname = 'p'\ntopics = ['t', 'bad topic']\ntable = 'db.t'\nbatch_max_rows = 0\n\
                [[pipelines.columns]]\nname = 'a'\ntype = 'Strin'\n\
                [[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'nodot'\n";
    let c: Config = toml::from_str(text).unwrap();
    let problems = c.problems();
    let keys: Vec<&str> = problems.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "clickhouse.url",
            "pipelines[0].topics[1]",
            "pipelines[0].columns[0].type",
            "pipelines[0].batch_max_rows",
            "pipelines[1].table",
            "pipelines[1].name",
        ]
    );
    assert_eq!(
        c.validate().unwrap_err(),
        problems[0],
        "validate answers with the first"
    );
    assert_eq!(c.pipelines[0].problems("pipelines[0]"), problems[1..4]);

    let dir = std::env::temp_dir().join(format!("aurora-ingest-problems-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("many.toml");
    std::fs::write(&file, text).unwrap();
    let e = Config::load(Some(&file)).unwrap_err();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), problems.len(), "{e}");
    for (line, problem) in lines.iter().zip(&problems) {
        assert_eq!(*line, format!("{}: {problem}", file.display()));
    }
}

#[test]
fn urls_is_an_alternative_to_url_and_several_nodes_need_a_cluster() {
    let c: Config =
        toml::from_str("[clickhouse]\nurls = ['http://a:8123', 'https://b:8443']\ncluster = 'aurora'")
            .unwrap();
    assert!(c.problems().is_empty(), "{:?}", c.problems());
    assert_eq!(c.clickhouse.node_urls(), ["http://a:8123", "https://b:8443"]);
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c.clickhouse.node_urls(), ["http://127.0.0.1:8123"]);
    let c: Config = toml::from_str("[clickhouse]\nurl = 'http://x:1'\ncluster = 'aurora'").unwrap();
    assert!(c.problems().is_empty(), "{:?}", c.problems());
    assert_eq!(c.clickhouse.node_urls(), ["http://x:1"]);

    let keys = |text: &str| -> Vec<String> {
        let c: Config = toml::from_str(text).unwrap();
        c.problems().into_iter().map(|e| e.key).collect()
    };
    assert_eq!(
        keys("[clickhouse]\nurl = 'http://a:1'\nurls = ['http://b:1']"),
        ["clickhouse.urls"]
    );
    assert_eq!(keys("[clickhouse]\nurls = []"), ["clickhouse.urls"]);
    assert_eq!(
        keys("[clickhouse]\nurls = ['http://a:1', 'b:1', 'http://a:1/']\ncluster = 'c'"),
        ["clickhouse.urls[1]", "clickhouse.urls[2]"]
    );
    assert_eq!(
        keys("[clickhouse]\nurls = ['http://a:1', 'http://b:1']"),
        ["clickhouse.cluster"]
    );
    assert_eq!(
        keys("[clickhouse]\nurls = ['http://a:1']\ncluster = 'bad name'"),
        ["clickhouse.cluster"]
    );
    assert!(toml::from_str::<Config>("[clickhouse]\nurls = 'http://a:1'").is_err());
}
