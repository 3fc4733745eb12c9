//! The official Rust client (`clickhouse` crate, HTTP + RowBinary, LZ4-compressed bodies) through aurora-proxy's
//! HTTP interface: an `Inserter` writes rows through the proxy, and queries with `?` binds read them back through
//! the proxy and directly; both answers must be the same.
//!
//! The test starts its own ClickHouse (`scripts/clickhouse.sh`) and proxy (this package's binary). Without a
//! `clickhouse-server` on the machine it is skipped with a message, unless `AURORA_REQUIRE_CLICKHOUSE=1` (set by
//! `scripts/test.sh`), which turns the absence into a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "aurora-proxy exited during startup"
        );
        assert!(
            Instant::now() < deadline,
            "aurora-proxy did not listen on {port} within 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// ClickHouse and a proxy in front of it, stopped on drop.
struct Stack {
    dir: PathBuf,
    ch_http: u16,
    proxy_http: u16,
    proxy: Child,
}

impl Stack {
    fn start() -> Option<Stack> {
        let has_server = Command::new("sh")
            .args(["-c", "command -v clickhouse-server"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_server {
            assert!(
                std::env::var_os("AURORA_REQUIRE_CLICKHOUSE").is_none(),
                "clickhouse-server is not installed (run scripts/setup.sh)"
            );
            eprintln!("SKIPPED: clickhouse-server is not installed (run scripts/setup.sh)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("aurora-crate-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ch_tcp, ch_http) = (free_port(), free_port());
        let status = Command::new(repo_root().join("scripts/clickhouse.sh"))
            .args([
                "start",
                dir.to_str().unwrap(),
                &ch_tcp.to_string(),
                &ch_http.to_string(),
            ])
            .status()
            .unwrap();
        assert!(status.success(), "scripts/clickhouse.sh start failed");
        let (proxy_native, proxy_http, proxy_metrics) = (free_port(), free_port(), free_port());
        let mut proxy = Command::new(env!("CARGO_BIN_EXE_aurora-proxy"))
            .args([
                "--native-listen",
                &format!("127.0.0.1:{proxy_native}"),
                "--http-listen",
                &format!("127.0.0.1:{proxy_http}"),
                "--metrics-listen",
                &format!("127.0.0.1:{proxy_metrics}"),
                "--upstream-native",
                &format!("127.0.0.1:{ch_tcp}"),
                "--upstream-http",
                &format!("http://127.0.0.1:{ch_http}"),
            ])
            .stderr(std::fs::File::create(dir.join("proxy.log")).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(proxy_http, &mut proxy);
        Some(Stack {
            dir,
            ch_http,
            proxy_http,
            proxy,
        })
    }

    /// A client for ClickHouse 18.16: it does not know RowBinaryWithNamesAndTypes, which schema validation uses.
    fn client(port: u16) -> Client {
        Client::default()
            .with_url(format!("http://127.0.0.1:{port}"))
            .with_validation(false)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
        let _ = Command::new(repo_root().join("scripts/clickhouse.sh"))
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct Event {
    id: u64,
    tenant: String,
    amount: f64,
}

fn event(id: u64) -> Event {
    Event {
        id,
        tenant: format!("tenant-{}", id % 7),
        amount: id as f64 / 4.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserter_and_binds_work_through_the_proxy() {
    let Some(stack) = Stack::start() else { return };
    let proxied = Stack::client(stack.proxy_http);
    let direct = Stack::client(stack.ch_http);

    proxied
        .query("CREATE TABLE crate_events (id UInt64, tenant String, amount Float64) ENGINE = MergeTree ORDER BY id")
        .execute()
        .await
        .expect("CREATE TABLE through the proxy");

    let rows = 100_000u64;
    let mut inserter = proxied.inserter::<Event>("crate_events").with_max_rows(30_000);
    for id in 0..rows {
        inserter.write(&event(id)).await.expect("write a row");
        inserter.commit().await.expect("commit (flushes every 30k rows)");
    }
    let stats = inserter.end().await.expect("end the inserter");
    assert_eq!(stats.rows, rows % 30_000, "rows in the last INSERT");

    let summary = "SELECT count(), sum(id), sum(amount) FROM crate_events WHERE tenant != ?";
    let through: (u64, u64, f64) = proxied.query(summary).bind("tenant-3").fetch_one().await.unwrap();
    let straight: (u64, u64, f64) = direct.query(summary).bind("tenant-3").fetch_one().await.unwrap();
    assert_eq!(through, straight);
    let expected_count = (0..rows).filter(|id| id % 7 != 3).count() as u64;
    assert_eq!(through.0, expected_count);

    let page = "SELECT ?fields FROM crate_events WHERE id >= ? ORDER BY id LIMIT 3";
    let through: Vec<Event> = proxied.query(page).bind(99_998).fetch_all().await.unwrap();
    let straight: Vec<Event> = direct.query(page).bind(99_998).fetch_all().await.unwrap();
    assert_eq!(through, straight);
    assert_eq!(through, vec![event(99_998), event(99_999)]);

    // A server error reaches the crate as ClickHouse's own error, not as a transport failure.
    let error = proxied
        .query("SELECT * FROM no_such_table")
        .fetch_all::<Event>()
        .await
        .unwrap_err();
    assert!(
        matches!(error, clickhouse::error::Error::BadResponse(ref m) if m.contains("60")),
        "{error}"
    );
}
