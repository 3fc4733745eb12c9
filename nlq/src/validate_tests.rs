//! Tests of `validate.rs`.

use super::*;

fn policy() -> Policy {
    Policy::new("analytics")
        .allow_table("analytics", "events")
        .allow_table("analytics", "tenants")
        .allow_table("analytics", "purchases")
        .allow_table("billing", "invoices")
}

fn ok(sql: &str) -> ValidatedQuery {
    validate(sql, &policy()).unwrap_or_else(|e| panic!("{sql}\nrefused: {e}"))
}

fn refused(sql: &str) -> ValidationError {
    match validate(sql, &policy()) {
        Ok(v) => panic!("{sql}\naccepted: {v:?}"),
        Err(e) => e,
    }
}

fn tables(v: &ValidatedQuery) -> Vec<String> {
    v.tables.iter().map(|t| t.to_string()).collect()
}

fn not_allowed(database: &str, table: &str) -> ValidationError {
    ValidationError::TableNotAllowed {
        database: database.into(),
        table: table.into(),
    }
}

#[test]
fn plain_select_resolves_the_default_database() {
    let v = ok("SELECT event_type, count() AS n FROM events GROUP BY event_type ORDER BY n DESC LIMIT 10");
    assert_eq!(tables(&v), ["analytics.events"]);
    assert!(v.placeholders.is_empty() && v.sites.is_empty());
}

#[test]
fn join_of_qualified_and_unqualified_tables() {
    let v = ok(
        "SELECT t.name, sum(p.amount) AS revenue FROM analytics.purchases AS p \
                INNER JOIN tenants AS t ON p.tenant_id = t.tenant_id \
                LEFT JOIN billing.invoices i ON i.tenant_id = t.tenant_id \
                WHERE p.timestamp >= now() - INTERVAL 7 DAY GROUP BY t.name ORDER BY revenue DESC LIMIT 5",
    );
    assert_eq!(
        tables(&v),
        ["analytics.purchases", "analytics.tenants", "billing.invoices"]
    );
}

#[test]
fn subqueries_in_from_and_where_are_checked() {
    let v = ok(
        "SELECT tenant_id, c FROM (SELECT tenant_id, count() AS c FROM events GROUP BY tenant_id) \
                WHERE tenant_id IN (SELECT tenant_id FROM tenants WHERE plan = 'pro')",
    );
    assert_eq!(tables(&v), ["analytics.events", "analytics.tenants"]);
    let e = refused("SELECT * FROM events WHERE user_id IN (SELECT user_id FROM secrets.users)");
    assert_eq!(e, not_allowed("secrets", "users"));
    assert_eq!(
        refused("SELECT (SELECT max(x) FROM hidden) FROM events"),
        not_allowed("analytics", "hidden")
    );
}

#[test]
fn cte_names_are_not_tables() {
    let v = ok(
        "WITH daily AS (SELECT toDate(timestamp) AS d, count() AS c FROM events GROUP BY d), \
                peak AS (SELECT max(c) AS m FROM daily) \
                SELECT d, c FROM daily, peak WHERE c = peak.m",
    );
    assert_eq!(tables(&v), ["analytics.events"]);
}

#[test]
fn a_cte_does_not_hide_a_table_outside_its_scope() {
    let e = refused("SELECT * FROM secret WHERE x IN (WITH secret AS (SELECT 1 AS x) SELECT x FROM secret)");
    assert_eq!(e, not_allowed("analytics", "secret"));
    // A CTE's own query sees the table of the same name, not itself.
    let e = refused("WITH secret AS (SELECT * FROM secret) SELECT * FROM secret");
    assert_eq!(e, not_allowed("analytics", "secret"));
    // A later CTE is not visible to an earlier one.
    let e = refused("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a");
    assert_eq!(e, not_allowed("analytics", "b"));
}

#[test]
fn union_all_of_selects_is_allowed_and_each_side_checked() {
    let v = ok("SELECT tenant_id FROM events UNION ALL SELECT tenant_id FROM tenants");
    assert_eq!(tables(&v), ["analytics.events", "analytics.tenants"]);
    let e = refused("SELECT tenant_id FROM events UNION ALL SELECT name FROM system.users");
    assert_eq!(
        e,
        ValidationError::SystemTable {
            database: "system".into(),
            table: "users".into()
        }
    );
}

#[test]
fn tables_outside_the_catalog_are_refused_with_their_name() {
    let e = refused("SELECT * FROM salaries");
    assert_eq!(
        e.to_string(),
        "table analytics.salaries is not in the catalog this question may use"
    );
    assert_eq!(
        refused("SELECT * FROM `billing`.\"payouts\""),
        not_allowed("billing", "payouts")
    );
    assert!(matches!(
        refused("SELECT * FROM a.b.c"),
        ValidationError::InvalidTableName { .. }
    ));
}

#[test]
fn quoted_names_resolve_like_plain_ones() {
    assert_eq!(
        tables(&ok("SELECT * FROM `analytics`.\"events\"")),
        ["analytics.events"]
    );
}

#[test]
fn a_second_statement_is_refused() {
    let e = refused("SELECT * FROM events; DROP TABLE events");
    assert_eq!(e, ValidationError::MultipleStatements { count: 2 });
    assert_eq!(
        e.to_string(),
        "exactly one SELECT statement is allowed, found 2 statements"
    );
    // A single trailing semicolon is still one statement.
    ok("SELECT 1 FROM events;");
}

#[test]
fn statements_other_than_select_are_refused() {
    for (sql, kind) in [
        ("DROP TABLE events", "DROP TABLE"),
        ("INSERT INTO events VALUES (1)", "INSERT INTO"),
        ("SET max_memory_usage = 0", "SET"),
        ("TRUNCATE TABLE events", "TRUNCATE TABLE"),
        ("CREATE TABLE x (a UInt8) ENGINE = Memory", "CREATE TABLE"),
    ] {
        assert_eq!(
            refused(sql),
            ValidationError::NotASelect { kind: kind.into() },
            "{sql}"
        );
    }
    for sql in [
        "ALTER TABLE events DELETE WHERE 1",
        "SYSTEM SHUTDOWN",
        "KILL QUERY WHERE 1",
    ] {
        assert!(
            matches!(
                refused(sql),
                ValidationError::NotASelect { .. } | ValidationError::Syntax { .. }
            ),
            "{sql}"
        );
    }
}

#[test]
fn external_table_functions_are_refused_by_name() {
    let e = refused("SELECT * FROM url('http://x', CSV, 'a String')");
    assert_eq!(e, ValidationError::ExternalTableFunction { name: "url".into() });
    assert!(e.to_string().contains("url()"));
    for f in [
        "url",
        "file",
        "s3",
        "remote",
        "remoteSecure",
        "cluster",
        "mysql",
        "postgresql",
        "jdbc",
        "odbc",
        "hdfs",
        "input",
        "executable",
        "azureBlobStorage",
        "mongodb",
        "redis",
        "sqlite",
        "dictionary",
    ] {
        let sql = format!("SELECT * FROM {f}('a', 'b')");
        let e = validate(&sql, &policy()).unwrap_err();
        assert_eq!(
            e,
            ValidationError::ExternalTableFunction { name: f.into() },
            "{sql}"
        );
        assert!(e.to_string().contains(&format!("{f}()")), "{e}");
    }
    // Even an allow-list does not let them in, nor does a JOIN position.
    let mut p = policy();
    p.allowed_table_functions.insert("url".into());
    assert!(matches!(
        validate("SELECT * FROM events JOIN url('http://x') AS u ON 1", &p),
        Err(ValidationError::ExternalTableFunction { .. })
    ));
    assert!(matches!(
        refused("SELECT * FROM remote('10.0.0.1', default.users)"),
        ValidationError::ExternalTableFunction { .. }
    ));
}

#[test]
fn other_table_functions_need_the_allow_list() {
    let e = refused("SELECT number FROM numbers(10)");
    assert_eq!(
        e,
        ValidationError::TableFunctionNotAllowed {
            name: "numbers".into()
        }
    );
    let mut p = policy();
    p.allowed_table_functions.insert("numbers".into());
    assert!(validate("SELECT number FROM numbers(10)", &p).is_ok());
    assert!(matches!(
        refused("SELECT * FROM TABLE(numbers(1))"),
        ValidationError::UnsupportedTableExpression { .. }
    ));
}

#[test]
fn functions_that_read_outside_tables_are_refused() {
    for (sql, name) in [
        ("SELECT file('/etc/passwd') FROM events", "file"),
        ("SELECT joinGet('secrets.j', 'v', 1) FROM events", "joinGet"),
        (
            "SELECT dictGetString('users', 'email', toUInt64(1))",
            "dictGetString",
        ),
    ] {
        assert_eq!(
            refused(sql),
            ValidationError::FunctionNotAllowed { name: name.into() },
            "{sql}"
        );
    }
}

#[test]
fn into_outfile_is_a_clear_refusal() {
    let e = refused("SELECT * FROM events INTO OUTFILE '/tmp/x.csv'");
    assert_eq!(e, ValidationError::IntoOutfile);
    assert_eq!(
        refused("select 1 from events into  -- c\n outfile 'x'"),
        ValidationError::IntoOutfile
    );
}

#[test]
fn system_tables_only_when_the_policy_allows() {
    let system = |d: &str, t: &str| ValidationError::SystemTable {
        database: d.into(),
        table: t.into(),
    };
    assert_eq!(
        refused("SELECT name FROM system.users"),
        system("system", "users")
    );
    assert_eq!(
        refused("SELECT * FROM INFORMATION_SCHEMA.TABLES"),
        system("INFORMATION_SCHEMA", "TABLES")
    );
    assert_eq!(
        refused("SELECT * FROM information_schema.columns"),
        system("information_schema", "columns")
    );
    let mut p = policy();
    p.allow_system = true;
    let v = validate("SELECT name FROM system.tables WHERE database = 'analytics'", &p).unwrap();
    assert_eq!(tables(&v), ["system.tables"]);
    // A default database of `system` does not open a back door.
    let mut p = policy();
    p.default_database = "system".into();
    assert_eq!(
        validate("SELECT * FROM users", &p).unwrap_err(),
        system("system", "users")
    );
}

#[test]
fn settings_are_refused_unless_allow_listed() {
    let e = refused("SELECT * FROM events SETTINGS max_rows_to_read = 0, readonly = 0");
    assert_eq!(
        e,
        ValidationError::SettingNotAllowed {
            name: "max_rows_to_read".into()
        }
    );
    let mut p = policy();
    p.allowed_settings.insert("max_threads".into());
    assert!(validate("SELECT * FROM events SETTINGS max_threads = 1", &p).is_ok());
}

#[test]
fn format_and_select_into_are_refused() {
    assert_eq!(
        refused("SELECT * FROM events FORMAT JSON"),
        ValidationError::FormatClause {
            format: "JSON".into()
        }
    );
    assert!(matches!(
        refused("SELECT * INTO copy FROM events"),
        ValidationError::SelectInto { .. }
    ));
}

#[test]
fn untyped_placeholders_are_refused() {
    for (sql, text) in [
        ("SELECT * FROM events WHERE tenant_id = ?", "?"),
        ("SELECT * FROM events WHERE tenant_id = $1", "$1"),
    ] {
        assert_eq!(
            refused(sql),
            ValidationError::UntypedPlaceholder { text: text.into() },
            "{sql}"
        );
    }
}

#[test]
fn empty_and_unparsable_sql() {
    assert_eq!(refused("  -- nothing\n"), ValidationError::Empty);
    assert!(matches!(
        refused("SELEC * FROM events"),
        ValidationError::Syntax { .. }
    ));
    assert!(matches!(
        refused("SELECT * FROM events WHERE ("),
        ValidationError::Syntax { .. }
    ));
}

#[test]
fn placeholders_are_collected_with_their_types_in_order() {
    let sql = "SELECT user_id, count() FROM events WHERE tenant_id = {tenant:String} \
               AND timestamp >= {since:DateTime} AND event_type IN {types:Array(LowCardinality(String))} \
               AND tenant_id != {tenant:String} GROUP BY user_id LIMIT {limit:UInt32}";
    let v = ok(sql);
    let got: Vec<(String, String)> = v
        .placeholders
        .iter()
        .map(|p| (p.name.clone(), p.ty.to_string()))
        .collect();
    let want = [
        ("tenant", "String"),
        ("since", "DateTime"),
        ("types", "Array(LowCardinality(String))"),
        ("limit", "UInt32"),
    ];
    assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    let texts: Vec<&str> = v.sites.iter().map(|s| &sql[s.range.clone()]).collect();
    assert_eq!(
        texts,
        [
            "{tenant:String}",
            "{since:DateTime}",
            "{types:Array(LowCardinality(String))}",
            "{tenant:String}",
            "{limit:UInt32}"
        ]
    );
}

#[test]
fn placeholder_ranges_are_byte_exact_across_lines_comments_and_non_ascii() {
    let sql = "-- Umsätze je Mandant 💶\nSELECT 'é' AS x, amount\nFROM purchases /* { not: one } */\n\
               WHERE tenant_id = {  tenant :  String  }\n  AND amount > { min : Decimal(10, 2) }";
    let v = ok(sql);
    let texts: Vec<&str> = v.sites.iter().map(|s| &sql[s.range.clone()]).collect();
    assert_eq!(texts, ["{  tenant :  String  }", "{ min : Decimal(10, 2) }"]);
    assert_eq!(
        v.placeholders[1].ty,
        ParamType::Decimal {
            precision: 10,
            scale: 2
        }
    );
}

#[test]
fn braces_inside_strings_are_not_placeholders() {
    let v = ok("SELECT * FROM events WHERE payload = '{x:String}'");
    assert!(v.placeholders.is_empty());
}

#[test]
fn one_name_with_two_types_is_refused() {
    let e = refused("SELECT * FROM events WHERE a = {v:String} OR b = {v:UInt64}");
    assert_eq!(
        e,
        ValidationError::PlaceholderTypeConflict {
            name: "v".into(),
            first: "String".into(),
            second: "UInt64".into()
        }
    );
    // Spacing does not make a different type.
    ok("SELECT * FROM events WHERE a = {v:Decimal(10,2)} OR b = {v: Decimal(10, 2)}");
}

#[test]
fn malformed_placeholders_are_refused() {
    assert!(matches!(
        refused("SELECT {a:String, b:UInt8} FROM events"),
        ValidationError::MalformedPlaceholder { .. }
    ));
    assert!(matches!(
        refused("SELECT {a: 1} FROM events"),
        ValidationError::MalformedPlaceholder { .. }
    ));
}

#[test]
fn declared_types_are_read_from_the_tree() {
    let v = ok(
        "SELECT {a:Nullable(Int64)}, {b:Decimal64(4)}, {c:Map(String, UInt64)}, {dt:DateTime('UTC')}, \
                {e:UUID}, {f:Bool}, {g:Array(Nullable(Float32))} FROM events",
    );
    let types: Vec<String> = v.placeholders.iter().map(|p| p.ty.to_string()).collect();
    assert_eq!(
        types,
        [
            "Nullable(Int64)",
            "Decimal(18, 4)",
            "Map(String, UInt64)",
            "DateTime('UTC')",
            "UUID",
            "Bool",
            "Array(Nullable(Float32))"
        ]
    );
    assert!(matches!(v.placeholders[2].ty, ParamType::Other(_)));
}

#[test]
fn unparenthesized_in_with_a_table_name_is_checked_as_a_table() {
    // sqlparser reads this as `x IN (secret AND …)`; ClickHouse reads `IN secret` as a table.
    let e = refused("SELECT * FROM events WHERE user_id IN secret AND event_type = 'a'");
    assert_eq!(e, not_allowed("analytics", "secret"));
    assert_eq!(
        refused("SELECT * FROM events WHERE user_id IN db.secret"),
        not_allowed("db", "secret")
    );
    ok("SELECT * FROM events WHERE tenant_id IN tenants");
    let v = ok("SELECT * FROM events WHERE user_id IN {ids:Array(UInt64)} AND event_type = {kind:String}");
    assert_eq!(v.placeholders.len(), 2);
    ok("SELECT * FROM events WHERE user_id IN (1, 2, 3) AND event_type IN ('a', 'b')");
}

#[test]
fn every_placeholder_name_clickhouse_accepts_validates_with_byte_exact_sites() {
    // sqlparser alone reads `{t:String}` as an ODBC time literal and refuses `{d:DateTime('UTC')}`; ClickHouse
    // takes any identifier, so validation swaps such names for unused ones of the same length while parsing.
    for (sql, names) in [
        ("SELECT * FROM events WHERE event_type = {t:String}", vec!["t"]),
        (
            "SELECT * FROM events WHERE timestamp > {d:DateTime('UTC')}",
            vec!["d"],
        ),
        (
            "SELECT * FROM events WHERE timestamp > {ts:DateTime} AND event_type = {fn:String}",
            vec!["ts", "fn"],
        ),
        (
            "SELECT * FROM events WHERE a = {t:String} AND b = {a:String} OR c = {t:String}",
            vec!["t", "a"],
        ),
        ("SELECT * FROM events WHERE tenant_id = {FN:String}", vec!["FN"]),
    ] {
        let v = ok(sql);
        assert_eq!(v.sql, sql);
        let found: Vec<&str> = v.placeholders.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(found, names, "{sql}");
        for site in &v.sites {
            assert!(
                sql[site.range.clone()].starts_with(&format!("{{{}:", site.name)),
                "{sql}"
            );
        }
    }
}

#[test]
fn placeholders_without_a_type_are_kept_as_strings_for_typing() {
    let v = ok("SELECT * FROM events WHERE tenant_id = {tenant} AND timestamp > {d}");
    assert_eq!(
        v.sql,
        "SELECT * FROM events WHERE tenant_id = {tenant:String} AND timestamp > {d:String}"
    );
    assert_eq!(v.untyped.iter().collect::<Vec<_>>(), ["d", "tenant"]);
    assert_eq!(
        v.placeholder_comparands[&v.sites[1].range.start]
            .column
            .as_deref(),
        Some("timestamp")
    );
}

#[test]
fn odbc_escapes_are_refused_clearly() {
    let e = refused("SELECT * FROM events WHERE timestamp > {ts '2026-10-01 00:00:00'}");
    assert!(matches!(e, ValidationError::MalformedPlaceholder { .. }), "{e}");
    assert!(e.to_string().contains("toDateTime"), "{e}");
}

#[test]
fn clickhouse_join_strictness_parses_and_stays_in_the_text() {
    // 18.16 wants ANY or ALL before every JOIN; sqlparser does not read them (they are blanked for it).
    let sql = "SELECT t.name, count() FROM analytics.purchases AS p ANY LEFT JOIN tenants AS t \
               ON p.tenant_id = t.tenant_id WHERE p.amount > 10 GROUP BY t.name";
    let v = ok(sql);
    assert_eq!(tables(&v), ["analytics.purchases", "analytics.tenants"]);
    assert_eq!(v.sql, sql);
    assert_eq!(v.literals.len(), 1);
}
