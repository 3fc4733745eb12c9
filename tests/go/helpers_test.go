// Package driver runs clickhouse-go/v2 — the driver of Grafana's ClickHouse data source — against aurora-proxy and
// against ClickHouse directly, and compares what the driver's user sees on both sides.
//
// Endpoints come from the environment (set by tests/peers/test_go_driver.py through scripts/go-peers.sh):
//
//	AURORA_GO_DIRECT_NATIVE  host:port of ClickHouse's native port (the reference answer)
//	AURORA_GO_PROXY_NATIVE   host:port of aurora-proxy's native port
//	AURORA_GO_DIRECT_HTTP    host:port of ClickHouse's HTTP port
//	AURORA_GO_PROXY_HTTP     host:port of aurora-proxy's HTTP port
//	AURORA_GO_PROXY_TLS      host:port of aurora-proxy's native TLS listener (TestTLS skips without it)
package driver

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// side is one way of reaching the same ClickHouse: directly, or through the proxy.
type side struct {
	name string
	addr string
}

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set (run through scripts/go-peers.sh test, see tests/peers/test_go_driver.py)", name)
	}
	return v
}

// nativeSides: direct first (the reference), then the proxy.
func nativeSides(t *testing.T) []side {
	return []side{{"direct", mustEnv(t, "AURORA_GO_DIRECT_NATIVE")}, {"proxy", mustEnv(t, "AURORA_GO_PROXY_NATIVE")}}
}

func httpSides(t *testing.T) []side {
	return []side{{"direct", mustEnv(t, "AURORA_GO_DIRECT_HTTP")}, {"proxy", mustEnv(t, "AURORA_GO_PROXY_HTTP")}}
}

// open connects to addr with the driver's defaults, changed by tweak; the connection is closed at the test's end.
func open(t *testing.T, addr string, tweak func(*clickhouse.Options)) driver.Conn {
	t.Helper()
	opts := &clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: "default", Username: "default"},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 60 * time.Second,
	}
	if tweak != nil {
		tweak(opts)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatalf("open %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func bounded(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// result is what a user of the driver sees of one query: columns, their types, every value, or the error.
type result struct {
	Columns []string
	Types   []string
	Rows    []string
	Err     string
}

func (r result) String() string {
	if r.Err != "" {
		return "error: " + r.Err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v %v %d rows", r.Columns, r.Types, len(r.Rows))
	for i, row := range r.Rows {
		if i == 20 {
			b.WriteString("\n  …")
			break
		}
		b.WriteString("\n  " + row)
	}
	return b.String()
}

// describeErr renders an error as the user meets it: a server exception by code, name and message.
func describeErr(err error) string {
	if err == nil {
		return ""
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return fmt.Sprintf("exception %d %s: %s", ex.Code, ex.Name, ex.Message)
	}
	return err.Error()
}

// query runs sql and scans every value into the Go type the driver names for its column.
func query(ctx context.Context, conn driver.Conn, sql string, args ...any) result {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return result{Err: describeErr(err)}
	}
	defer rows.Close()
	var r result
	cts := rows.ColumnTypes()
	for _, ct := range cts {
		r.Columns = append(r.Columns, ct.Name())
		r.Types = append(r.Types, ct.DatabaseTypeName()+" as "+ct.ScanType().String())
	}
	for rows.Next() {
		dest := make([]any, len(cts))
		for i, ct := range cts {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return result{Err: "scan: " + describeErr(err)}
		}
		vals := make([]string, len(dest))
		for i, d := range dest {
			vals[i] = render(reflect.ValueOf(d).Elem())
		}
		r.Rows = append(r.Rows, strings.Join(vals, " | "))
	}
	if err := rows.Err(); err != nil {
		r.Err = describeErr(err)
	}
	return r
}

// render prints a scanned value without pointer addresses (Nullable and nested values come as pointers).
func render(v reflect.Value) string {
	if !v.IsValid() {
		return "<nil>"
	}
	if v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "NULL"
		}
		return render(v.Elem())
	}
	if v.CanInterface() {
		switch x := v.Interface().(type) {
		case time.Time:
			return x.Format(time.RFC3339Nano) + " " + x.Location().String()
		case fmt.Stringer:
			return x.String()
		}
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return "nil" + v.Type().String()
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = render(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		keys := v.MapKeys()
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = render(k) + ":" + render(v.MapIndex(k))
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ", ") + "}"
	case reflect.String:
		return fmt.Sprintf("%q", v.String())
	}
	return fmt.Sprintf("%v", v.Interface())
}

// same fails the test when the proxy's answer differs from the direct one.
func same(t *testing.T, what string, direct, proxy any) {
	t.Helper()
	if !reflect.DeepEqual(direct, proxy) {
		t.Errorf("%s: proxy differs from direct\n direct: %v\n proxy:  %v", what, direct, proxy)
	}
}

// checksum folds every row of a streamed result into a count and an FNV-64a hash of the rendered values.
type checksum struct {
	Rows uint64
	Hash uint64
	Err  string
}

func stream(ctx context.Context, conn driver.Conn, sql string) checksum {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return checksum{Err: describeErr(err)}
	}
	defer rows.Close()
	h := fnv.New64a()
	var c checksum
	var (
		n uint64
		s string
		a []uint16
	)
	for rows.Next() {
		if err := rows.Scan(&n, &s, &a); err != nil {
			return checksum{Err: "scan: " + describeErr(err)}
		}
		fmt.Fprintf(h, "%d|%s|%v\n", n, s, a)
		c.Rows++
	}
	if err := rows.Err(); err != nil {
		c.Err = describeErr(err)
	}
	c.Hash = h.Sum64()
	return c
}

// scratch creates a database of the test's own on the direct server and drops it at the end.
func scratch(t *testing.T) string {
	t.Helper()
	conn := open(t, nativeSides(t)[0].addr, nil)
	name := fmt.Sprintf("go_%s_%d", strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name())), time.Now().UnixNano()%1e9)
	ctx := bounded(t, 30*time.Second)
	if err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
	})
	return name
}
