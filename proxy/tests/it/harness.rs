//! The proxy's native listener in-process, a scripted upstream, and golden client packets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aurora_proxy::ask::AskService;
use aurora_proxy::config::{Cli, Config};
use aurora_proxy::metrics::Metrics;
use aurora_proxy::native::budget::Budget;
use aurora_proxy::native::protocol::wire::{put_bytes, put_varuint};
use aurora_proxy::native::session::SessionEnv;
use clap::Parser as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// How long a test waits for bytes that should arrive.
pub const WAIT: Duration = Duration::from_secs(5);

/// A golden client packet's bytes.
pub fn golden(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/native/golden")
        .join(format!("{name}.raw"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The proxy's native listener, running in this process until dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    _shutdown: watch::Sender<bool>,
}

impl Proxy {
    /// A proxy whose native upstream is `upstream`; its HTTP upstream (the ASK catalog) is a port where nothing
    /// listens, and it has no model.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let cli = Cli::try_parse_from([
            "aurora-proxy",
            "--native-listen",
            "127.0.0.1:0",
            "--upstream-native",
            &upstream.to_string(),
            "--upstream-http",
            "http://127.0.0.1:9",
            "--ask-feedback-table",
            "none",
            "--handshake-timeout",
            "5s",
        ])
        .expect("flags");
        let config = Arc::new(Config::load(cli).expect("config"));
        let metrics = Metrics::new();
        let ask = Arc::new(AskService::new(&config, metrics.clone()).expect("ask service"));
        let cluster = aurora_proxy::cluster::Cluster::new(&config.cluster, metrics.clone());
        let router = Arc::new(
            aurora_proxy::http::route::Router::new(cluster.clone(), config.connect_timeout, metrics.clone())
                .expect("router"),
        );
        let audit = aurora_proxy::gateway::audit::Audit::off(metrics.clone());
        let env = Arc::new(SessionEnv {
            audit,
            framing_budget: Budget::new(config.max_framing_memory as usize),
            gateway: Arc::new(aurora_proxy::gateway::Gateway::new(config.users.clone())),
            config,
            metrics,
            ask,
            cluster,
            route: aurora_proxy::cluster::Route::Any,
            router,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (shutdown, receiver) = watch::channel(false);
        tokio::spawn(aurora_proxy::native::server::serve(
            listener,
            env,
            receiver,
            TaskTracker::new(),
        ));
        Proxy {
            addr,
            _shutdown: shutdown,
        }
    }
}

/// The upstream's side of one proxied connection.
pub struct UpstreamConn {
    pub stream: TcpStream,
}

impl UpstreamConn {
    /// Reads exactly `n` bytes.
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        read_exact(&mut self.stream, n).await
    }

    /// Whatever arrives within `wait` (empty when nothing does).
    pub async fn read_for(&mut self, wait: Duration) -> Vec<u8> {
        read_for(&mut self.stream, wait).await
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("upstream write");
    }
}

/// A server Hello as ClickHouse 23.8 writes it for a client at `revision` 54468.
pub fn server_hello(revision: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varuint(&mut out, 0);
    put_bytes(&mut out, b"ClickHouse");
    put_varuint(&mut out, 23);
    put_varuint(&mut out, 8);
    put_varuint(&mut out, revision);
    put_bytes(&mut out, b"UTC"); // timezone (54058+)
    put_bytes(&mut out, b"scripted"); // display name (54372+)
    put_varuint(&mut out, 1); // version patch (54401+)
    put_varuint(&mut out, 0); // password complexity rules (54461+)
    out.extend_from_slice(&7u64.to_le_bytes()); // nonce (54462+)
    out
}

/// Connects a client to `proxy`, accepts the proxied connection on `upstream`, and relays the golden Hello
/// and the server's Hello: returns both ends ready for the first packet after the handshake.
pub async fn connect(proxy: &Proxy, upstream: &TcpListener) -> (TcpStream, UpstreamConn) {
    let mut client = TcpStream::connect(proxy.addr)
        .await
        .expect("connect to the proxy");
    let hello = golden("hello");
    client.write_all(&hello).await.expect("client hello");
    let (stream, _) = tokio::time::timeout(WAIT, upstream.accept())
        .await
        .expect("the proxy connects upstream")
        .expect("accept");
    let mut up = UpstreamConn { stream };
    // The proxy re-encodes the Hello with its own revision cap; clickhouse-driver's 54468 is under it.
    let forwarded = up.read_exact(hello.len()).await;
    assert_eq!(
        forwarded, hello,
        "a Hello under the proxy's revision cap reaches ClickHouse unchanged"
    );
    let server = server_hello(54468);
    up.send(&server).await;
    let answered = read_exact(&mut client, server.len()).await;
    assert_eq!(
        answered, server,
        "the server's Hello at the negotiated revision reaches the client unchanged"
    );
    (client, up)
}

pub async fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{n} bytes did not arrive within {WAIT:?}"))
        .expect("read");
    buf
}

pub async fn read_for(stream: &mut TcpStream, wait: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}
