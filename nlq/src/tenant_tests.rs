use super::*;

fn rule() -> TenantRule {
    TenantRule {
        column: "tenant_id".into(),
        value: "acme".into(),
        default_database: "app".into(),
    }
}

fn catalog(database: &str, table: &str) -> TableScope {
    match (database, table) {
        ("app", "orders" | "customers") | ("other", "events") => TableScope::Scoped,
        ("app", "currencies") => TableScope::Unscoped,
        _ => TableScope::Unknown,
    }
}

fn scoped(sql: &str) -> String {
    scope(sql, &rule(), &catalog).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const F: &str = "WHERE tenant_id = 'acme')";

#[test]
fn every_table_reference_is_filtered_and_keeps_its_name() {
    assert_eq!(
        scoped("SELECT count() FROM orders"),
        format!("SELECT count() FROM (SELECT * FROM orders {F} AS orders")
    );
    assert_eq!(
        scoped("SELECT o.id FROM app.orders AS o"),
        format!("SELECT o.id FROM (SELECT * FROM app.orders {F} AS o")
    );
    let joined = scoped(
        "SELECT c.name, count() FROM orders o JOIN customers c ON o.customer_id = c.id GROUP BY c.name",
    );
    assert_eq!(joined.matches(F).count(), 2, "{joined}");
    let nested = scoped(
        "SELECT id FROM orders WHERE customer_id IN (SELECT id FROM customers) \
         UNION ALL SELECT id FROM other.events WHERE EXISTS (SELECT 1 FROM orders)",
    );
    assert_eq!(nested.matches(F).count(), 4, "{nested}");
    let derived = scoped("SELECT n FROM (SELECT count() AS n FROM orders) AS x");
    assert_eq!(derived.matches(F).count(), 1, "{derived}");
}

#[test]
fn cte_names_are_not_tables_but_their_bodies_are_scoped() {
    let sql = scoped("WITH big AS (SELECT * FROM orders WHERE total > 10) SELECT count() FROM big");
    assert_eq!(sql.matches(F).count(), 1, "{sql}");
    assert!(sql.ends_with("FROM big"), "{sql}");
}

#[test]
fn the_value_cannot_leave_its_literal() {
    let rule = TenantRule {
        value: "a' OR 1=1 --\\".into(),
        ..rule()
    };
    let sql = scope("SELECT 1 FROM orders", &rule, &catalog).unwrap();
    assert!(sql.contains(r"WHERE tenant_id = 'a\' OR 1=1 --\\')"), "{sql}");
}

#[test]
fn format_settings_and_placeholders_stay_as_written() {
    let sql = scoped("SELECT id FROM orders WHERE day = {d:Date} FORMAT JSON");
    assert!(sql.contains("{d:Date}") && sql.ends_with("FORMAT JSON"), "{sql}");
}

#[test]
fn what_cannot_be_proven_scoped_is_refused() {
    for (sql, expected) in [
        ("INSERT INTO orders VALUES (1)", "INSERT"),
        ("SELECT 1; SELECT 2", "2 statements"),
        ("SELECT * FROM currencies", "no tenant column"),
        ("SELECT * FROM nowhere", "not known"),
        ("SELECT * FROM numbers(10)", "table function"),
        ("SELECT * FROM remote('h', app.orders)", "table function"),
        ("SELECT 1 WHERE 3 IN orders", "IN"),
        ("SELECT joinGet('app.orders', 'x', 1)", "joinGet"),
        ("SELECT dictGetString('d', 'a', toUInt64(1))", "dictGetString"),
        ("SELEC 1", "cannot be read"),
        ("DROP TABLE orders", "DROP"),
    ] {
        let error = scope(sql, &rule(), &catalog).unwrap_err().to_string();
        assert!(error.contains(expected), "{sql}: {error}");
    }
}

#[test]
fn odd_identifiers_are_quoted() {
    let rule = TenantRule {
        column: "tenant id".into(),
        ..rule()
    };
    let sql = scope("SELECT 1 FROM orders", &rule, &catalog).unwrap();
    assert!(sql.contains("WHERE `tenant id` = 'acme'"), "{sql}");
}

#[test]
fn clickhouse_join_strictness_is_kept_and_both_sides_scoped() {
    let sql = scoped("SELECT o.id FROM orders AS o ANY LEFT JOIN customers AS c ON o.customer_id = c.id UNION ALL SELECT 1");
    assert_eq!(sql.matches(F).count(), 2, "{sql}");
    assert!(
        sql.contains(") AS o ANY LEFT JOIN (SELECT * FROM customers"),
        "{sql}"
    );
    let global = scoped("SELECT 1 FROM orders GLOBAL ALL INNER JOIN customers USING (id)");
    assert!(global.contains("GLOBAL ALL INNER JOIN (SELECT"), "{global}");
}
