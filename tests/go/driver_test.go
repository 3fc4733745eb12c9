package driver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"
)

// lowCardinality is needed by 18.16 for LowCardinality columns (experimental there).
var lowCardinality = clickhouse.Settings{"allow_experimental_low_cardinality_type": 1}

func TestPing(t *testing.T) {
	type seen struct {
		Ping    string
		Version string
		Answer  result
	}
	var got []seen
	for _, s := range nativeSides(t) {
		conn := open(t, s.addr, nil)
		ctx := bounded(t, 10*time.Second)
		v, err := conn.ServerVersion()
		version := describeErr(err)
		if err == nil {
			version = v.String()
		}
		got = append(got, seen{describeErr(conn.Ping(ctx)), version, query(ctx, conn, "SELECT version(), 1 + 1")})
	}
	if got[0].Ping != "" {
		t.Fatalf("direct ping failed: %s", got[0].Ping)
	}
	same(t, "ping, server version, first query", got[0], got[1])
}

// typesSelect builds one value of every column type 18.16 has, on 1000 generated rows, NULLs included.
const typesSelect = `
SELECT
  toInt8(number % 256 - 128) AS i8, toInt16(number * 7 - 3000) AS i16, toInt32(number * -100003) AS i32,
  toInt64(number * 1000000007) - 500000000000 AS i64,
  toUInt8(number % 256) AS u8, toUInt16(number * 61) AS u16, toUInt32(number * 4000037) AS u32,
  toUInt64(number) * 18446744073709 AS u64,
  toFloat32(number / 7) AS f32, toFloat64(number) / 3 - 100 AS f64,
  toDecimal32(number / 100, 2) AS d32, toDecimal64(number / 1000 - 0.5, 4) AS d64,
  toDecimal128(number * 1234567.891, 10) AS d128,
  concat('s', toString(number), if(number % 10 = 0, '', ' ünï\t\n"')) AS str,
  toFixedString(toString(number % 1000), 5) AS fixed,
  toDate('2018-12-01') + number AS date, toDateTime('2018-12-01 10:20:30') + number * 3607 AS dt,
  toDateTime('2018-12-01 10:20:30', 'Asia/Kolkata') + number AS dt_tz,
  if(number % 3 = 0, NULL, toInt32(number)) AS n_i32, if(number % 4 = 0, NULL, toString(number)) AS n_str,
  if(number % 5 = 0, NULL, toDate('2018-01-01') + number) AS n_date,
  range(number % 5) AS arr_u64, arrayMap(x -> toString(x), range(number % 3)) AS arr_str,
  [if(number % 2 = 0, NULL, toUInt8(number % 200)), 7] AS arr_nullable, [range(number % 3), []] AS arr_arr,
  (toUInt8(number % 100), toString(number), toFloat64(number) / 2) AS tup,
  CAST(if(number % 2 = 0, 'a', 'b'), 'Enum8(\'a\' = 1, \'b\' = 2)') AS e8,
  CAST(if(number % 3 = 0, 'x', 'yy'), 'Enum16(\'x\' = -1000, \'yy\' = 1000)') AS e16,
  toUUID(concat('6d0f07a1-0000-4000-8000-', substring(toString(1000000000000 + number), 2))) AS uid,
  toLowCardinality(concat('lc', toString(number % 7))) AS lc,
  CAST(if(number % 6 = 0, NULL, toString(number % 4)), 'LowCardinality(Nullable(String))') AS lc_n
FROM system.numbers LIMIT 1000`

func TestTypes(t *testing.T) {
	var got []result
	for _, s := range nativeSides(t) {
		conn := open(t, s.addr, func(o *clickhouse.Options) { o.Settings = lowCardinality })
		got = append(got, query(bounded(t, 60*time.Second), conn, typesSelect))
	}
	if got[0].Err != "" || len(got[0].Rows) != 1000 {
		t.Fatalf("direct: %v", got[0])
	}
	t.Logf("columns seen directly: %v", got[0].Types)
	same(t, "every column type", got[0], got[1])
}

func TestStreamMillionRows(t *testing.T) {
	const sql = "SELECT number, concat('row-', toString(number)), [toUInt16(number % 65536), 1] FROM numbers(1000000)"
	var got []checksum
	for _, s := range nativeSides(t) {
		conn := open(t, s.addr, nil)
		start := time.Now()
		c := stream(bounded(t, 120*time.Second), conn, sql)
		t.Logf("%s: %d rows in %v", s.name, c.Rows, time.Since(start).Round(time.Millisecond))
		got = append(got, c)
	}
	if got[0].Err != "" || got[0].Rows != 1000000 {
		t.Fatalf("direct: %+v", got[0])
	}
	same(t, "1M rows streamed (count, checksum)", got[0], got[1])
}

const typesTable = `CREATE TABLE %s.t (
  id UInt32, i8 Int8, i64 Int64, u64 UInt64, f32 Float32, f64 Float64, d Decimal(18, 4), d128 Decimal(38, 10),
  s String, fs FixedString(4), day Date, at DateTime, n Nullable(Int32), ns Nullable(String),
  arr Array(String), arr_n Array(Nullable(Int16)), tup Tuple(UInt8, String), e Enum8('on' = 1, 'off' = 2),
  uid UUID, lc LowCardinality(String)
) ENGINE = MergeTree ORDER BY id`

// batchColumns are named in the INSERT: for `INSERT INTO t FORMAT Native` without a column list 18.16 sends a header
// block with no columns (measured directly, with clickhouse-driver too), so Append fails; TestBatchWithoutColumnList.
const batchColumns = "id, i8, i64, u64, f32, f64, d, d128, s, fs, day, at, n, ns, arr, arr_n, tup, e, uid, lc"

func batchRow(i int) []any {
	var n *int32
	var ns *string
	if i%3 != 0 {
		v := int32(i * -7)
		n = &v
	}
	if i%4 != 0 {
		v := fmt.Sprintf("nullable-%d", i)
		ns = &v
	}
	v16 := int16(i)
	return []any{
		uint32(i), int8(i % 100), int64(i) * -1000000007, uint64(i) * 1000000000007,
		float32(i) / 3, float64(i) / 7,
		decimal.New(int64(i)*12345, -4), decimal.New(int64(i)*987654321, -10),
		fmt.Sprintf("str %d ✓", i), fmt.Sprintf("%04d", i%10000),
		time.Date(2018, 12, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i%400),
		time.Date(2018, 12, 1, 10, 20, 30, 0, time.UTC).Add(time.Duration(i) * time.Minute),
		n, ns,
		[]string{"a", fmt.Sprint(i)}, []*int16{nil, &v16},
		[]any{uint8(i % 200), fmt.Sprint(i)},
		[]string{"on", "off"}[i%2],
		uuid.MustParse(fmt.Sprintf("00000000-0000-4000-8000-%012d", i)),
		fmt.Sprintf("lc%d", i%5),
	}
}

// TestBatchInsert writes the same rows with PrepareBatch/Send through each side (plain and LZ4) into a table of its
// own, then reads every table back through each side: all readings must be equal.
func TestBatchInsert(t *testing.T) {
	db := scratch(t)
	const rows = 20000
	var tables, appendErrs []string
	for _, s := range nativeSides(t) {
		for _, method := range []clickhouse.CompressionMethod{clickhouse.CompressionNone, clickhouse.CompressionLZ4, clickhouse.CompressionZSTD} {
			table := fmt.Sprintf("%s_%s", s.name, method.String())
			conn := open(t, s.addr, func(o *clickhouse.Options) {
				o.Settings = lowCardinality
				o.Compression = &clickhouse.Compression{Method: method}
			})
			ctx := bounded(t, 60*time.Second)
			if err := conn.Exec(ctx, strings.Replace(fmt.Sprintf(typesTable, db), ".t (", "."+table+" (", 1)); err != nil {
				t.Fatalf("%s: create: %s", s.name, describeErr(err))
			}
			batch, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", db, table, batchColumns))
			if err != nil {
				t.Fatalf("%s %s: prepare batch: %s", s.name, method, describeErr(err))
			}
			var appendErr string
			for i := 0; i < rows && appendErr == ""; i++ {
				appendErr = describeErr(batch.Append(batchRow(i)...))
			}
			if appendErr != "" {
				appendErrs = append(appendErrs, appendErr)
				continue
			}
			if err := batch.Send(); err != nil {
				t.Fatalf("%s %s: send: %s", s.name, method, describeErr(err))
			}
			tables = append(tables, table)
		}
	}
	if len(appendErrs) > 0 {
		// Should a server refuse every Append directly, the proxy must fail the same way for every compression.
		if len(appendErrs) != 6 {
			t.Fatalf("only some sides failed to append: %v (tables written: %v)", appendErrs, tables)
		}
		same(t, "PrepareBatch/Append failure", appendErrs[:3], appendErrs[3:])
		t.Skipf("PrepareBatch fails against ClickHouse 18.16 directly too (proxy the same): %s", appendErrs[0])
	}
	var reference *result
	for _, s := range nativeSides(t) {
		conn := open(t, s.addr, nil)
		for _, table := range tables {
			r := query(bounded(t, 60*time.Second), conn, fmt.Sprintf("SELECT * FROM %s.%s ORDER BY id", db, table))
			if reference == nil {
				if r.Err != "" || len(r.Rows) != rows {
					t.Fatalf("read %s directly: %v", table, r)
				}
				reference = &r
				continue
			}
			same(t, fmt.Sprintf("table %s read through %s", table, s.name), *reference, r)
		}
	}
}

func TestSettings(t *testing.T) {
	const sql = "SELECT name, value, changed FROM system.settings WHERE name IN ('max_block_size', 'max_threads', 'readonly') ORDER BY name"
	var got []result
	for _, s := range nativeSides(t) {
		conn := open(t, s.addr, func(o *clickhouse.Options) {
			o.Settings = clickhouse.Settings{"max_threads": 3}
		})
		ctx := clickhouse.Context(bounded(t, 30*time.Second), clickhouse.WithSettings(clickhouse.Settings{"max_block_size": 777}))
		got = append(got, query(ctx, conn, sql))
		// a query setting that the server enforces: the user sees its exception
		limited := clickhouse.Context(bounded(t, 30*time.Second), clickhouse.WithSettings(clickhouse.Settings{"max_result_rows": 10}))
		got = append(got, query(limited, conn, "SELECT number FROM numbers(1000)"))
		// a setting the server does not know
		unknown := clickhouse.Context(bounded(t, 30*time.Second), clickhouse.WithSettings(clickhouse.Settings{"no_such_setting_at_all": 1}))
		got = append(got, query(unknown, conn, "SELECT 1"))
	}
	if !strings.Contains(strings.Join(got[0].Rows, "\n"), `"max_block_size" | "777" | 1`) {
		t.Fatalf("direct: the per-query setting is not seen: %v", got[0])
	}
	if !strings.Contains(got[1].Err, "exception 396") {
		t.Fatalf("direct: max_result_rows did not raise 396: %v", got[1])
	}
	same(t, "settings seen by the server", got[0], got[3])
	same(t, "max_result_rows exceeded", got[1], got[4])
	same(t, "unknown setting", got[2], got[5])
}

func TestErrorCodes(t *testing.T) {
	cases := []struct {
		sql  string
		code int32
	}{
		{"SELECT * FROM default.no_such_table_here", 60},
		{"SELEC 1", 62},
		{"SELECT no_such_function(1)", 46},
		{"SELECT throwIf(number = 3) FROM numbers(10)", 395},
	}
	for _, c := range cases {
		var got []result
		var codes []int32
		for _, s := range nativeSides(t) {
			conn := open(t, s.addr, nil)
			ctx := bounded(t, 30*time.Second)
			r := query(ctx, conn, c.sql)
			got = append(got, r)
			err := conn.Exec(ctx, c.sql)
			var ex *clickhouse.Exception
			if !errors.As(err, &ex) {
				t.Fatalf("%s via %s: not a server exception: %v", c.sql, s.name, err)
			}
			codes = append(codes, ex.Code)
			// the connection stays usable after the exception
			got = append(got, query(ctx, conn, "SELECT 42"))
		}
		if codes[0] != c.code {
			t.Errorf("%s: direct code %d, want %d", c.sql, codes[0], c.code)
		}
		same(t, c.sql+": exception codes", codes[0], codes[1])
		same(t, c.sql+": what the user sees", got[:2], got[2:])
	}
}

// TestCancelMidQuery cancels a long scan through the context: the call returns at once, the next query on the
// same pool works, and the server's system.processes no longer lists the query.
func TestCancelMidQuery(t *testing.T) {
	type seen struct {
		Err        string
		Quick      bool
		After      result
		GoneFromCH bool
	}
	admin := open(t, nativeSides(t)[0].addr, nil)
	var got []seen
	for _, s := range nativeSides(t) {
		conn := open(t, s.addr, func(o *clickhouse.Options) { o.MaxOpenConns = 2 })
		id := fmt.Sprintf("aurora-go-cancel-%s-%d", s.name, time.Now().UnixNano())
		ctx, cancel := context.WithCancel(context.Background())
		ctx = clickhouse.Context(ctx, clickhouse.WithQueryID(id))
		done := make(chan error, 1)
		go func() {
			var n uint64
			done <- conn.QueryRow(ctx, "SELECT count() FROM numbers(100000000000) WHERE NOT ignore(sipHash64(number))").Scan(&n)
		}()
		running := waitFor(10*time.Second, func() bool { return processes(t, admin, id) > 0 })
		if !running {
			t.Fatalf("%s: the query never showed in system.processes", s.name)
		}
		start := time.Now()
		cancel()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the cancelled query did not return within 10s", s.name)
		}
		quick := time.Since(start) < 3*time.Second
		t.Logf("%s: cancelled call returned after %v: %v", s.name, time.Since(start).Round(time.Millisecond), err)
		gone := waitFor(10*time.Second, func() bool { return processes(t, admin, id) == 0 })
		got = append(got, seen{
			Err:        describeErr(err),
			Quick:      quick,
			After:      query(bounded(t, 30*time.Second), conn, "SELECT sum(number) FROM numbers(1000)"),
			GoneFromCH: gone,
		})
	}
	if got[0].Err == "" || !got[0].Quick || !got[0].GoneFromCH || got[0].After.Err != "" {
		t.Fatalf("direct: %+v", got[0])
	}
	same(t, "cancel mid-query", got[0], got[1])
}

func processes(t *testing.T, admin driver.Conn, id string) uint64 {
	var n uint64
	if err := admin.QueryRow(bounded(t, 10*time.Second), "SELECT count() FROM system.processes WHERE query_id = ?", id).Scan(&n); err != nil {
		t.Fatalf("system.processes: %v", err)
	}
	return n
}

func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

func TestCompression(t *testing.T) {
	const sql = "SELECT number, concat(toString(number % 97), ' some padding text to compress ', toString(number % 97)), [toUInt16(number % 1000)] FROM numbers(300000)"
	methods := []clickhouse.CompressionMethod{clickhouse.CompressionNone, clickhouse.CompressionLZ4, clickhouse.CompressionZSTD}
	var reference *checksum
	for _, method := range methods {
		for _, s := range nativeSides(t) {
			conn := open(t, s.addr, func(o *clickhouse.Options) { o.Compression = &clickhouse.Compression{Method: method} })
			c := stream(bounded(t, 60*time.Second), conn, sql)
			if reference == nil {
				if c.Err != "" || c.Rows != 300000 {
					t.Fatalf("direct uncompressed: %+v", c)
				}
				reference = &c
				continue
			}
			same(t, fmt.Sprintf("%s via %s", method, s.name), *reference, c)
		}
	}
}

// TestTLS: the proxy's native TLS listener (ClickHouse 18.16 here has none) answers as ClickHouse does in plain.
func TestTLS(t *testing.T) {
	addr := os.Getenv("AURORA_GO_PROXY_TLS")
	if addr == "" {
		t.Skip("AURORA_GO_PROXY_TLS is not set: no proxy with --native-tls-listen")
	}
	direct := open(t, nativeSides(t)[0].addr, func(o *clickhouse.Options) { o.Settings = lowCardinality })
	want := query(bounded(t, 60*time.Second), direct, typesSelect)
	wantStream := stream(bounded(t, 60*time.Second), direct, "SELECT number, toString(number), [toUInt16(number % 7)] FROM numbers(200000)")
	if want.Err != "" || wantStream.Err != "" {
		t.Fatalf("direct: %v %v", want, wantStream)
	}
	for _, method := range []clickhouse.CompressionMethod{clickhouse.CompressionNone, clickhouse.CompressionLZ4, clickhouse.CompressionZSTD} {
		conn := open(t, addr, func(o *clickhouse.Options) {
			o.TLS = &tls.Config{InsecureSkipVerify: true}
			o.Auth = clickhouse.Auth{Database: "default", Username: "alice", Password: "alice-secret"}
			o.Compression = &clickhouse.Compression{Method: method}
			o.Settings = lowCardinality
		})
		if err := conn.Ping(bounded(t, 10*time.Second)); err != nil {
			t.Fatalf("TLS %s ping: %v", method, err)
		}
		same(t, "types over TLS, "+method.String(), want, query(bounded(t, 60*time.Second), conn, typesSelect))
		same(t, "stream over TLS, "+method.String(), wantStream,
			stream(bounded(t, 60*time.Second), conn, "SELECT number, toString(number), [toUInt16(number % 7)] FROM numbers(200000)"))
	}
	// a plain client on the TLS port gets no answer it can use
	plain := open(t, addr, nil)
	if err := plain.Ping(bounded(t, 10*time.Second)); err == nil {
		t.Errorf("a plain-text client was answered on the TLS listener")
	}
}

// TestHTTPProtocol: clickhouse-go's HTTP protocol, directly and through the proxy. The driver's first request sets
// client_protocol_version, which 18.16 does not know (code 115): whatever the server answers, the proxy must answer
// the same. The checks past the handshake skip, naming what the server refused.
func TestHTTPProtocol(t *testing.T) {
	var got []result
	var pings []string
	for _, s := range httpSides(t) {
		conn := open(t, s.addr, func(o *clickhouse.Options) { o.Protocol = clickhouse.HTTP })
		ctx := bounded(t, 30*time.Second)
		pings = append(pings, describeErr(conn.Ping(ctx)))
		got = append(got, query(ctx, conn, "SELECT number, toString(number) FROM numbers(5)"))
		got = append(got, query(ctx, conn, "SELECT * FROM default.no_such_table_here"))
	}
	same(t, "HTTP ping", pings[0], pings[1])
	same(t, "HTTP query and error", got[:2], got[2:])
	if pings[0] != "" {
		t.Skipf("clickhouse-go over HTTP fails against ClickHouse 18.16 directly too (proxy answers the same): %s", pings[0])
	}
	if got[0].Err != "" || len(got[0].Rows) != 5 {
		t.Fatalf("direct over HTTP: %v", got[0])
	}
}

// TestBatchWithoutColumnList: PrepareBatch("INSERT INTO t") — the form the driver's examples use — against 18.16.
// Measured: the server's header block has no columns and Append fails directly; the proxy must show the same.
func TestBatchWithoutColumnList(t *testing.T) {
	db := scratch(t)
	var got []string
	for _, s := range nativeSides(t) {
		conn := open(t, s.addr, nil)
		ctx := bounded(t, 30*time.Second)
		table := db + ".plain_" + s.name
		if err := conn.Exec(ctx, "CREATE TABLE "+table+" (a UInt32, s String) ENGINE = Memory"); err != nil {
			t.Fatalf("create: %s", describeErr(err))
		}
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
		if err != nil {
			got = append(got, "prepare: "+describeErr(err))
			continue
		}
		appendErr := describeErr(batch.Append(uint32(1), "x"))
		sendErr := describeErr(batch.Send())
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n); err != nil {
			t.Fatalf("count: %v", err)
		}
		got = append(got, fmt.Sprintf("append: %s; send: %s; rows: %d", appendErr, sendErr, n))
	}
	t.Logf("direct: %s", got[0])
	same(t, "PrepareBatch without a column list", got[0], got[1])
}
