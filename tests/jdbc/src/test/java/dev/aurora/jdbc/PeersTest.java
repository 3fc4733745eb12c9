package dev.aurora.jdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The ClickHouse JDBC driver as BI tools (DBeaver, Metabase) use it, against aurora-proxy and against ClickHouse
 * directly over HTTP: every call is made on both and what the tool would show is compared.
 *
 * <p>System properties (set by scripts/jdbc-peers.sh): aurora.jdbc.direct and aurora.jdbc.proxy (host:port of the
 * HTTP interfaces); for ask(): aurora.jdbc.ask (an aurora-proxy with a scripted model), aurora.jdbc.ask.question and
 * aurora.jdbc.ask.sql (the SQL the model was scripted to answer, run directly for the reference). Without
 * aurora.jdbc.direct every test is skipped (that is how `scripts/jdbc-peers.sh install` resolves the test runner).
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class PeersTest {
    static final String DIRECT = System.getProperty("aurora.jdbc.direct", "");
    static final String PROXY = System.getProperty("aurora.jdbc.proxy", "");
    static final String DB = "jdbc_peers_" + UUID.randomUUID().toString().replace("-", "").substring(0, 8);

    /** compress=false: 18.16 answers the driver's default compress=1 with an empty body. */
    static Connection connect(String hostPort) throws SQLException {
        return DriverManager.getConnection("jdbc:clickhouse://" + hostPort + "/default?compress=false", "default", "");
    }

    static void exec(String hostPort, String sql) throws SQLException {
        try (Connection c = connect(hostPort); Statement s = c.createStatement()) {
            s.execute(sql);
        }
    }

    /** Every row of a result as strings (getString), with the column labels and type names first. */
    static List<List<String>> rows(ResultSet rs) throws SQLException {
        List<List<String>> out = new ArrayList<>();
        ResultSetMetaData md = rs.getMetaData();
        List<String> header = new ArrayList<>();
        for (int i = 1; i <= md.getColumnCount(); i++) {
            header.add(md.getColumnLabel(i) + ":" + md.getColumnTypeName(i) + ":" + md.getColumnType(i));
        }
        out.add(header);
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (int i = 1; i <= md.getColumnCount(); i++) {
                row.add(rs.getString(i));
            }
            out.add(row);
        }
        return out;
    }

    static List<List<String>> query(String hostPort, String sql) throws SQLException {
        try (Connection c = connect(hostPort); Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            return rows(rs);
        }
    }

    interface MetaCall {
        ResultSet call(DatabaseMetaData md) throws SQLException;
    }

    /** The outcome of one DatabaseMetaData call: its rows, or the error a tool would show. */
    static List<List<String>> meta(String hostPort, MetaCall call) throws SQLException {
        try (Connection c = connect(hostPort)) {
            try (ResultSet rs = call.call(c.getMetaData())) {
                return rows(rs);
            } catch (SQLException | UnsupportedOperationException e) {
                return List.of(List.of("error", e.getClass().getName(), String.valueOf(e.getMessage()).replaceAll("port: \\d+", "")));
            }
        }
    }

    @BeforeAll
    static void createData() throws SQLException {
        assumeTrue(!DIRECT.isEmpty() && !PROXY.isEmpty(), "aurora.jdbc.direct / aurora.jdbc.proxy not set");
        exec(DIRECT, "CREATE DATABASE " + DB);
        exec(DIRECT, "CREATE TABLE " + DB + ".types ("
                + "id UInt32, u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64, i8 Int8, i16 Int16, i32 Int32, i64 Int64,"
                + "f32 Float32, f64 Float64, d9 Decimal(9, 2), d18 Decimal(18, 4), d38 Decimal(38, 10),"
                + "s String, fs FixedString(4), d Date, dt DateTime, uuid UUID,"
                + "e8 Enum8('a' = 1, 'b' = 2), e16 Enum16('x' = 1000, 'y' = -1000),"
                + "n_i32 Nullable(Int32), n_s Nullable(String), a_i32 Array(Int32), a_s Array(String),"
                + "a_n Array(Nullable(String))"
                + ") ENGINE = MergeTree ORDER BY id");
        exec(DIRECT, "INSERT INTO " + DB + ".types VALUES "
                + "(1, 255, 65535, 4294967295, 18446744073709551615, -128, -32768, -2147483648, -9223372036854775808,"
                + " 1.5, -2.25, 1234567.89, -12345678901234.5678, 1234567890123456789012345678.0123456789,"
                + " 'tab\\there ''quoted'' \\\\ back', 'ab\\0\\0', '2026-12-04', '2026-12-04 03:15:00',"
                + " '01234567-89ab-cdef-0123-456789abcdef', 'b', 'y', NULL, NULL, [], [], [NULL, 'z']),"
                + "(2, 0, 0, 0, 0, 127, 32767, 2147483647, 9223372036854775807, -0.0, 1e300, 0, 0, 0,"
                + " 'ünïcødé ✓', 'wxyz', '1970-01-01', '1970-01-01 00:00:01',"
                + " '00000000-0000-0000-0000-000000000000', 'a', 'x', 42, 'forty-two', [1, -2, 3], ['a', 'b,c', ''], [])");
        exec(DIRECT, "CREATE TABLE " + DB + ".events (ts DateTime, tenant String, amount Float64) "
                + "ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (tenant, ts)");
    }

    @AfterAll
    static void dropData() throws SQLException {
        if (!DIRECT.isEmpty()) {
            exec(DIRECT, "DROP DATABASE IF EXISTS " + DB);
        }
    }

    @Test
    void metadataAsBiToolsReadIt() throws SQLException {
        List<MetaCall> calls = List.of(
                DatabaseMetaData::getCatalogs,
                DatabaseMetaData::getSchemas,
                md -> md.getSchemas(null, DB),
                DatabaseMetaData::getTableTypes,
                md -> md.getTables(null, DB, "%", null),
                md -> md.getTables(null, DB, "%", new String[] {"TABLE"}),
                md -> md.getTables(null, "system", "one", null),
                md -> md.getColumns(null, DB, "%", "%"),
                md -> md.getColumns(null, DB, "types", "n\\_%"),
                md -> md.getPrimaryKeys(null, DB, "types"),
                md -> md.getIndexInfo(null, DB, "types", false, true),
                md -> md.getImportedKeys(null, DB, "types"),
                DatabaseMetaData::getTypeInfo,
                md -> md.getFunctions(null, null, "%"));
        for (int i = 0; i < calls.size(); i++) {
            List<List<String>> direct = meta(DIRECT, calls.get(i));
            assertEquals(direct, meta(PROXY, calls.get(i)), "DatabaseMetaData call #" + i);
        }
        // What a tool shows must be there: the test's tables, and the columns with their ClickHouse types.
        List<List<String>> tables = meta(DIRECT, calls.get(4));
        assertEquals(3, tables.size(), tables.toString());
        List<List<String>> columns = meta(PROXY, calls.get(7));
        // COLUMN_NAME, DATA_TYPE (java.sql.Types), NULLABLE: what a tool maps a column to.
        List<String> kinds = new ArrayList<>();
        for (List<String> r : columns.subList(1, columns.size())) {
            kinds.add(r.get(2) + "." + r.get(3) + ":" + r.get(4) + ":" + r.get(10));
        }
        assertTrue(kinds.contains("types.d38:3:0"), kinds.toString());
        assertTrue(kinds.contains("types.n_s:12:1"), kinds.toString());
        assertTrue(kinds.contains("types.u64:-5:0") && kinds.contains("types.dt:93:0"), kinds.toString());
        assertEquals(3 + 26, kinds.size(), kinds.toString());
        assertTrue(meta(PROXY, DatabaseMetaData::getTypeInfo).size() > 10);
        try (Connection p = connect(PROXY); Connection d = connect(DIRECT)) {
            DatabaseMetaData pm = p.getMetaData();
            DatabaseMetaData dm = d.getMetaData();
            assertEquals(dm.getDatabaseProductName(), pm.getDatabaseProductName());
            assertEquals(dm.getDatabaseProductVersion(), pm.getDatabaseProductVersion());
            assertEquals("18.16.1", pm.getDatabaseProductVersion());
            assertEquals(dm.getIdentifierQuoteString(), pm.getIdentifierQuoteString());
            assertEquals(dm.getSQLKeywords(), pm.getSQLKeywords());
        }
    }

    static List<List<String>> prepared(String hostPort, long above, String like) throws SQLException {
        try (Connection c = connect(hostPort);
                PreparedStatement ps = c.prepareStatement("SELECT number, toString(number) AS s, ? AS label "
                        + "FROM system.numbers WHERE number > ? AND toString(number) LIKE ? LIMIT 20")) {
            ps.setString(1, "it's a \"label\"");
            ps.setLong(2, above);
            ps.setString(3, like);
            try (ResultSet rs = ps.executeQuery()) {
                return rows(rs);
            }
        }
    }

    @Test
    void preparedStatementWithParameters() throws SQLException {
        List<List<String>> direct = prepared(DIRECT, 100, "%7");
        assertEquals(direct, prepared(PROXY, 100, "%7"));
        assertEquals(21, direct.size());
        assertEquals(List.of("107", "107", "it's a \"label\""), direct.get(1));
        assertNotEquals(direct, prepared(PROXY, 100, "%8"));
    }

    @Test
    void batchInsertThenReadBack() throws SQLException {
        exec(DIRECT, "CREATE TABLE " + DB + ".batch (id UInt32, name String, ts DateTime, v Nullable(Float64)) "
                + "ENGINE = MergeTree ORDER BY id");
        int n = 500;
        try (Connection c = connect(PROXY);
                PreparedStatement ps = c.prepareStatement("INSERT INTO " + DB + ".batch (id, name, ts, v) VALUES (?, ?, ?, ?)")) {
            for (int i = 0; i < n; i++) {
                ps.setInt(1, i);
                ps.setString(2, "name '" + i + "'\t" + (i % 7));
                ps.setTimestamp(3, java.sql.Timestamp.valueOf("2026-12-04 00:00:00"));
                if (i % 5 == 0) {
                    ps.setNull(4, java.sql.Types.DOUBLE);
                } else {
                    ps.setDouble(4, i / 4.0);
                }
                ps.addBatch();
            }
            int[] counts = ps.executeBatch();
            assertEquals(n, counts.length);
        }
        String sql = "SELECT id, name, ts, v FROM " + DB + ".batch ORDER BY id";
        List<List<String>> direct = query(DIRECT, sql);
        assertEquals(direct, query(PROXY, sql));
        assertEquals(n + 1, direct.size());
        assertEquals(List.of("3", "name '3'\t3", "2026-12-04 00:00:00", "0.75"), direct.get(4));
        assertEquals(null, direct.get(1).get(3));
        assertEquals(List.of(List.of("count():UInt64:-5"), List.of("100")),
                query(PROXY, "SELECT count() FROM " + DB + ".batch WHERE v IS NULL"));
    }

    /** getObject as a tool shows it: the Java class and its text (arrays element by element). */
    static List<List<String>> objects(String hostPort, String sql) throws SQLException {
        List<List<String>> out = new ArrayList<>();
        try (Connection c = connect(hostPort); Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            int columns = rs.getMetaData().getColumnCount();
            while (rs.next()) {
                List<String> row = new ArrayList<>();
                for (int i = 1; i <= columns; i++) {
                    Object o = rs.getObject(i);
                    if (o instanceof java.sql.Array) {
                        Object a = ((java.sql.Array) o).getArray();
                        row.add("Array:" + (a instanceof Object[] ? Arrays.deepToString((Object[]) a) : a.getClass().getName()));
                    } else {
                        row.add(o == null ? "null" : o.getClass().getName() + ":" + o);
                    }
                }
                out.add(row);
            }
        }
        return out;
    }

    @Test
    void everyCommonTypeReadBack() throws SQLException {
        String sql = "SELECT * FROM " + DB + ".types ORDER BY id";
        List<List<String>> strings = query(DIRECT, sql);
        assertEquals(strings, query(PROXY, sql));
        assertEquals(objects(DIRECT, sql), objects(PROXY, sql));
        List<String> first = strings.get(1);
        List<String> header = strings.get(0);
        assertEquals("18446744073709551615", first.get(header.indexOf("u64:UInt64:-5")));
        assertEquals("-9223372036854775808", first.get(4 + 4));
        assertEquals("tab\there 'quoted' \\ back", first.get(14));
        assertEquals("2026-12-04", first.get(16));
        assertEquals("01234567-89ab-cdef-0123-456789abcdef", first.get(18));
        assertEquals(null, first.get(21));
        assertEquals("ünïcødé ✓", strings.get(2).get(14));
        assertEquals("[1,-2,3]", strings.get(2).get(23));
        assertEquals(26, header.size(), header.toString());
    }

    static final String SLOW = "SELECT count() FROM system.numbers WHERE NOT ignore(sipHash64(number))";

    static long running(String marker) throws SQLException {
        List<List<String>> r = query(DIRECT, "SELECT count() FROM system.processes WHERE query LIKE '%" + marker
                + "%' AND query NOT LIKE '%system.processes%'");
        return Long.parseLong(r.get(1).get(0));
    }

    @Test
    void cancelEndsALongQueryOnTheServer() throws Exception {
        for (String endpoint : List.of(DIRECT, PROXY)) {
            String marker = "cancel_" + UUID.randomUUID().toString().replace("-", "");
            try (Connection c = connect(endpoint); Statement s = c.createStatement()) {
                CompletableFuture<Throwable> done = CompletableFuture.supplyAsync(() -> {
                    try (ResultSet rs = s.executeQuery(SLOW + " /* " + marker + " */ SETTINGS max_execution_time = 50")) {
                        rs.next();
                        return null;
                    } catch (Throwable t) {
                        return t;
                    }
                });
                long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
                while (running(marker) == 0) {
                    assertTrue(System.nanoTime() < deadline, "the query never showed in system.processes via " + endpoint);
                    assertFalse(done.isDone(), "the slow query ended by itself: " + done.getNow(null));
                    Thread.sleep(50);
                }
                long started = System.nanoTime();
                s.cancel();
                Throwable outcome = done.get(15, TimeUnit.SECONDS);
                assertTrue(outcome instanceof SQLException, "cancelled query via " + endpoint + " ended with " + outcome);
                while (running(marker) != 0) {
                    assertTrue(System.nanoTime() - started < Duration.ofSeconds(10).toNanos(),
                            "system.processes still has the cancelled query via " + endpoint);
                    Thread.sleep(50);
                }
            }
        }
    }

    static int errorCode(String hostPort, String sql) {
        SQLException e = assertThrows(SQLException.class, () -> query(hostPort, sql));
        return e.getErrorCode();
    }

    @Test
    void errorCodesAreTheServers() {
        String unknown = "SELECT * FROM " + DB + ".no_such_table";
        assertEquals(60, errorCode(DIRECT, unknown));
        assertEquals(60, errorCode(PROXY, unknown));
        String syntax = "SELEC 1 FROM";
        assertEquals(62, errorCode(DIRECT, syntax));
        assertEquals(62, errorCode(PROXY, syntax));
        String function = "SELECT no_such_function(1)";
        assertEquals(46, errorCode(DIRECT, function));
        assertEquals(46, errorCode(PROXY, function));
    }

    @Test
    void askTableFunctionThroughJdbc() throws SQLException {
        String ask = System.getProperty("aurora.jdbc.ask", "");
        assumeTrue(!ask.isEmpty(), "aurora.jdbc.ask not set (no scripted-LLM proxy)");
        String question = System.getProperty("aurora.jdbc.ask.question");
        String sql = System.getProperty("aurora.jdbc.ask.sql");
        List<List<String>> reference = query(DIRECT, sql);
        assertTrue(reference.size() > 1, "the reference answer is empty: " + reference);
        List<List<String>> answer = query(ask, "SELECT * FROM ask('" + question.replace("'", "\\'") + "')");
        assertEquals(reference, answer);
        try (Connection c = connect(ask); PreparedStatement ps = c.prepareStatement("SELECT * FROM ask(?)")) {
            ps.setString(1, question);
            try (ResultSet rs = ps.executeQuery()) {
                assertEquals(reference, rows(rs));
            }
        }
    }
}
