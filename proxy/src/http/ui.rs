//! The web console at `/ui/`: static pages embedded in the binary, the console's settings at
//! `/ui/config.json`, and the ingest daemon's API reached through the proxy at `/ui/api/ingest/…`
//! ([`super::ingest_api`], which [`super::service`] hands those paths to).
//!
//! The pages are plain files under `proxy/ui/` compiled in with `include_bytes!`, so the binary serves them
//! without a build step, a file system or the network. Each answer carries an `ETag` (a hash of the file) and
//! `Cache-Control: no-cache`, so a browser revalidates and gets `304 Not Modified` while the binary is the
//! same; text files are compressed once with zstd (already a dependency for native frames) and sent so to
//! browsers that accept it. The pages talk to the proxy only: SQL goes to `/` (the HTTP interface) and
//! questions to `/ask`, with the user's credentials in headers.
//!
//! Every other path is not the console's and goes to [`super::forward::handle`] untouched.

use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, LOCATION, VARY,
};
use hyper::{Method, Request, Response, StatusCode};

use super::HttpEnv;

/// Where the console lives.
pub const PREFIX: &str = "/ui/";
/// The part of the console's paths that reaches the ingest daemon.
pub const INGEST_PREFIX: &str = "/ui/api/ingest";

/// What a path under `/ui` asks for.
#[derive(Debug, PartialEq)]
pub(super) enum Route<'a> {
    /// The ingest daemon's API; the path after [`INGEST_PREFIX`].
    Ingest(&'a str),
    /// `/ui` without its slash.
    Redirect,
    /// `/ui/config.json`.
    Config,
    Asset(&'static Asset),
    NotFound,
    /// A page asked for with another method than GET or HEAD.
    MethodNotAllowed,
}

pub(super) fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    if let Some(rest) = path.strip_prefix(INGEST_PREFIX) {
        if rest.is_empty() || rest.starts_with('/') {
            return Route::Ingest(rest);
        }
    }
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Route::MethodNotAllowed;
    }
    match path {
        "/ui" => Route::Redirect,
        "/ui/config.json" => Route::Config,
        _ => {
            let name = path.strip_prefix(PREFIX).unwrap_or("");
            match asset(if name.is_empty() { "index.html" } else { name }) {
                Some(asset) => Route::Asset(asset),
                None => Route::NotFound,
            }
        }
    }
}

/// One request under `/ui`, routed by [`route`]. The ingest daemon's API is not the console's to answer: its
/// paths go to [`super::ingest_api`] before this (see [`super::service`]).
pub(super) fn console(env: &HttpEnv, request: Request<Incoming>, route: Route<'_>) -> Response<Full<Bytes>> {
    let response = match route {
        Route::Ingest(_) => plain(StatusCode::NOT_FOUND, "no such page in the console\n"),
        Route::MethodNotAllowed => {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "the console's pages are read with GET\n",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        Route::Redirect => redirect_to_console(request.uri().query()),
        Route::Config => json(StatusCode::OK, config_json(env)),
        Route::Asset(asset) => serve_asset(asset, request.headers()),
        Route::NotFound => plain(StatusCode::NOT_FOUND, "no such page in the console\n"),
    };
    if request.method() == Method::HEAD {
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Full::new(Bytes::new()));
    }
    response
}

/// `/ui` → `/ui/`, so that the page's relative links resolve under the console.
fn redirect_to_console(query: Option<&str>) -> Response<Full<Bytes>> {
    let location = match query {
        Some(q) => format!("{PREFIX}?{q}"),
        None => PREFIX.to_string(),
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// What the page needs to know about the proxy's configuration (nothing secret).
fn config_json(env: &HttpEnv) -> String {
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "grafana_url": env.config.grafana_url,
        "ingest_configured": env.config.ingest_api_url.is_some(),
        "ask_configured": env.config.llm_base_url.is_some(),
    })
    .to_string()
}

/// One embedded file of the console.
#[derive(PartialEq)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// Every file of the console (`proxy/ui/`, apart from its README). A unit test checks that the folder and this
/// list agree.
pub static ASSETS: &[Asset] = &[
    asset_entry(
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../ui/index.html"),
    ),
    asset_entry(
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/style.css"),
    ),
    asset_entry(
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/app.js"),
    ),
    asset_entry(
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/api.js"),
    ),
    asset_entry(
        "query.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/query.js"),
    ),
    asset_entry(
        "table.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/table.js"),
    ),
    asset_entry(
        "chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/chart.js"),
    ),
    asset_entry(
        "pipelines.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/pipelines.js"),
    ),
    asset_entry(
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../ui/favicon.svg"),
    ),
];

const fn asset_entry(name: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
    Asset {
        name,
        content_type,
        bytes,
    }
}

impl std::fmt::Debug for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Asset({}, {} bytes)", self.name, self.bytes.len())
    }
}

/// The embedded file `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// What is computed once per file: its ETag and its zstd-compressed form (when that is smaller).
struct Prepared {
    etag: String,
    zstd: Option<Bytes>,
}

fn prepared(index: usize) -> &'static Prepared {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    &PREPARED.get_or_init(|| ASSETS.iter().map(prepare).collect())[index]
}

/// Files smaller than this are sent as they are: compressing them saves less than a packet.
const COMPRESS_MIN: usize = 1024;

fn prepare(asset: &Asset) -> Prepared {
    let hash = cityhash_rs::cityhash_110_128(asset.bytes);
    let etag = format!("\"{hash:032x}\"");
    let compressible = asset.content_type.starts_with("text/") || asset.content_type.contains("svg");
    let zstd = (compressible && asset.bytes.len() >= COMPRESS_MIN)
        .then(|| zstd::bulk::compress(asset.bytes, 19).ok())
        .flatten()
        .filter(|packed| packed.len() < asset.bytes.len())
        .map(Bytes::from);
    Prepared { etag, zstd }
}

fn serve_asset(asset: &'static Asset, request_headers: &HeaderMap) -> Response<Full<Bytes>> {
    let index = ASSETS
        .iter()
        .position(|a| std::ptr::eq(a, asset))
        .expect("asset comes from ASSETS");
    let prepared = prepared(index);
    let packed = prepared
        .zstd
        .as_ref()
        .filter(|_| accepts(request_headers, "zstd"));
    // The compressed variant is a different representation: it gets its own tag.
    let etag = match packed {
        Some(_) => format!("{}-zstd\"", prepared.etag.trim_end_matches('"')),
        None => prepared.etag.clone(),
    };
    let fresh = request_headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let mut response = if fresh {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let body = packed.cloned().unwrap_or_else(|| Bytes::from_static(asset.bytes));
        Response::new(Full::new(body))
    };
    let headers = response.headers_mut();
    if !fresh {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        if packed.is_some() {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("zstd"));
        }
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    security_headers(headers);
    response
}

/// Whether `Accept-Encoding` lists `coding` without `q=0`.
fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name_matches = parts.next().is_some_and(|name| name.eq_ignore_ascii_case(coding));
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            name_matches && !refused
        })
}

/// The page loads only its own files and talks only to the proxy; it is never framed by another site.
fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A JSON answer of the console's own (never cached: it describes the running proxy).
pub fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The total size of the embedded files, as stored in the binary.
pub fn embedded_size() -> usize {
    ASSETS.iter().map(|a| a.bytes.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::BodyExt as _;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    async fn body(response: Response<Full<Bytes>>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[test]
    fn every_file_of_the_folder_is_embedded_and_nothing_else() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/ui");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != "README.md")
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
        for asset in ASSETS {
            let expected = match asset.name.rsplit_once('.').map(|(_, ext)| ext) {
                Some("html") => "text/html",
                Some("css") => "text/css",
                Some("js") => "text/javascript",
                Some("svg") => "image/svg+xml",
                other => panic!("no content type for {other:?}"),
            };
            assert!(asset.content_type.starts_with(expected), "{}", asset.name);
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for asset in ASSETS {
            // The SVG namespace is a name, not a download.
            let text = std::str::from_utf8(asset.bytes)
                .unwrap()
                .replace("\"http://www.w3.org/2000/svg\"", "");
            for needle in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(needle), "{} mentions {needle}", asset.name);
            }
        }
    }

    #[tokio::test]
    async fn assets_have_types_etags_and_revalidate() {
        let app = asset("app.js").unwrap();
        let first = serve_asset(app, &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(first.headers()[CACHE_CONTROL], "no-cache");
        assert!(first.headers().get(CONTENT_ENCODING).is_none());
        let etag = first.headers()[ETAG].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        assert_eq!(body(first).await, app.bytes);

        let mut revalidate = HeaderMap::new();
        revalidate.insert(IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        let second = serve_asset(app, &revalidate);
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert!(body(second).await.is_empty());

        let other = serve_asset(asset("style.css").unwrap(), &revalidate);
        assert_eq!(
            other.status(),
            StatusCode::OK,
            "another file's tag does not match"
        );
    }

    #[tokio::test]
    async fn text_is_sent_compressed_to_browsers_that_take_zstd() {
        let index = asset("index.html").unwrap();
        let packed = serve_asset(index, &headers(&[("accept-encoding", "gzip, deflate, br, zstd")]));
        assert_eq!(packed.headers()[CONTENT_ENCODING], "zstd");
        assert!(packed.headers()[ETAG].to_str().unwrap().ends_with("-zstd\""));
        let bytes = body(packed).await;
        assert!(bytes.len() < index.bytes.len());
        assert_eq!(zstd::decode_all(&bytes[..]).unwrap(), index.bytes);

        let refused = serve_asset(index, &headers(&[("accept-encoding", "zstd;q=0, gzip")]));
        assert!(refused.headers().get(CONTENT_ENCODING).is_none());
        let svg = serve_asset(
            asset("favicon.svg").unwrap(),
            &headers(&[("accept-encoding", "zstd")]),
        );
        assert!(
            svg.headers().get(CONTENT_ENCODING).is_none(),
            "small files go as they are"
        );
    }

    #[test]
    fn accept_encoding_is_read_item_by_item() {
        assert!(accepts(&headers(&[("accept-encoding", "gzip, ZSTD")]), "zstd"));
        assert!(accepts(&headers(&[("accept-encoding", "zstd;q=0.5")]), "zstd"));
        assert!(!accepts(&headers(&[("accept-encoding", "zstd;q=0")]), "zstd"));
        assert!(!accepts(&headers(&[("accept-encoding", "zstdx")]), "zstd"));
        assert!(!accepts(&HeaderMap::new(), "zstd"));
    }

    #[test]
    fn paths_under_ui_are_routed() {
        let get = Method::GET;
        assert_eq!(route(&get, "/ui"), Route::Redirect);
        assert_eq!(route(&get, "/ui/"), Route::Asset(asset("index.html").unwrap()));
        assert_eq!(
            route(&Method::HEAD, "/ui/app.js"),
            Route::Asset(asset("app.js").unwrap())
        );
        assert_eq!(route(&get, "/ui/config.json"), Route::Config);
        assert_eq!(route(&get, "/ui/nope.js"), Route::NotFound);
        assert_eq!(route(&get, "/ui/../etc/passwd"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/ui/"), Route::MethodNotAllowed);
        assert_eq!(
            route(&get, "/ui/api/ingest/pipelines"),
            Route::Ingest("/pipelines")
        );
        assert_eq!(
            route(&Method::DELETE, "/ui/api/ingest/pipelines/a"),
            Route::Ingest("/pipelines/a")
        );
        assert_eq!(route(&get, "/ui/api/ingest"), Route::Ingest(""));
        assert_eq!(route(&get, "/ui/api/ingestx"), Route::NotFound);
    }

    #[test]
    fn the_bare_prefix_redirects_into_the_console() {
        let r = redirect_to_console(None);
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[LOCATION], "/ui/");
        assert_eq!(
            redirect_to_console(Some("page=sql")).headers()[LOCATION],
            "/ui/?page=sql"
        );
    }

    #[test]
    fn the_console_stays_small() {
        // A budget, so that growth is a decision: the whole console in well under 200 KB.
        assert!(embedded_size() < 200_000, "{} bytes", embedded_size());
    }
}
