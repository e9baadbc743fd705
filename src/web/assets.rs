//! The dashboard's static files (`dashboard/`), embedded in the binary at build time.
//!
//! A daemon on a home server should not depend on a folder of files lying next to it, and a
//! self-updated binary must serve the pages that match its own API: so the files are compiled
//! in with `include_bytes!`, and [`ASSETS`] is the one list of them (a test checks it against
//! the folder and against what the pages load). `/` is `index.html`, `/assets/<file>` the
//! rest; every answer has its Content-Type, an ETag (a hash of the bytes, computed at compile
//! time) and `Cache-Control: no-cache`, so a browser revalidates on every load and gets a
//! `304 Not Modified` until the binary changes. Anything else is rejected as not found, for
//! the routes beside these.
//!
//! **The token.** With `WEB_TOKEN` set, every request needs it, the page's own files
//! included. A page opened as `/?token=<t>` passes it on to the API itself (`net.js`), but the
//! browser fetches the stylesheet and the scripts, and resolves the scripts' `import`s, with
//! no query string. So `/` with a `token` in its query is served with the token written into
//! every address the page loads: the `<link>`/`<script>` attributes, and an import map that
//! sends each module's import to its address with the token. The token is percent-encoded
//! (only unreserved characters stay), so it is inert in HTML, JSON and URLs alike, and the
//! import map is allowed by a CSP nonce; inline scripts stay forbidden.

use std::hash::{BuildHasher, Hasher};

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::http::{Response as HttpResponse, StatusCode};
use warp::path::Tail;
use warp::reply::Response;

/// One embedded file.
struct Asset {
    /// Its name under `/assets/` (and under `dashboard/`).
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// FNV-1a of `body`: the ETag.
    hash: u64,
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {{
        const BODY: &[u8] =
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboard/", $name));
        Asset {
            name: $name,
            content_type: $content_type,
            body: BODY,
            hash: fnv1a(BODY),
        }
    }};
}

const HTML: &str = "text/html; charset=utf-8";
/// Module scripts are refused by browsers under any other type.
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The page itself, served at `/`.
static INDEX: Asset = asset!("index.html", HTML);

/// Every other file of `dashboard/`, served at `/assets/<name>`.
static ASSETS: &[Asset] = &[
    asset!("style.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("app.js", JS),
    asset!("net.js", JS),
    asset!("util.js", JS),
    asset!("tree.js", JS),
    asset!("tasks.js", JS),
    asset!("task.js", JS),
    asset!("queue.js", JS),
    asset!("logs.js", JS),
    asset!("status.js", JS),
];

/// What the page may load and talk to: only this server. Inline `style` attributes are
/// allowed (badge colours); inline scripts are not (the import map gets a nonce). No other
/// site may frame the page's buttons.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// FNV-1a, 64 bits: enough to tell two versions of a file apart, and computable in a const.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// Whether an `If-None-Match` header names this ETag (a list, weak forms, or `*`).
fn matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// The `token` of a raw query string, percent-encoded so that only unreserved characters
/// and `%XX` remain; `None` without one.
fn token_of(query: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|t| !t.is_empty())?;
    let mut out = String::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape = b == b'%'
            && bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else if escape {
            out.push_str(&raw[i..i + 3]);
            i += 2;
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    Some(out)
}

/// A fresh CSP nonce: std's `RandomState` is seeded from the OS, one new key per call.
fn nonce() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let (mut a, mut b) = (state.build_hasher(), state.build_hasher());
    a.write_u8(1);
    b.write_u8(2);
    format!("{:016x}{:016x}", a.finish(), b.finish())
}

/// `index.html` with `token` (already percent-encoded) in every address it loads.
fn index_with_token(token: &str, nonce: &str) -> String {
    let mut html = String::from_utf8_lossy(INDEX.body).into_owned();
    for asset in ASSETS {
        let plain = format!("\"assets/{}\"", asset.name);
        html = html.replace(&plain, &format!("\"assets/{}?token={token}\"", asset.name));
    }
    let imports: Vec<String> = ASSETS
        .iter()
        .filter(|a| a.content_type == JS)
        .map(|a| format!("\"/assets/{0}\": \"/assets/{0}?token={token}\"", a.name))
        .collect();
    let map = format!(
        "<script type=\"importmap\" nonce=\"{nonce}\">{{\"imports\": {{{}}}}}</script>\n  ",
        imports.join(", ")
    );
    // The map must come before the first module script.
    match html.find("<script type=\"module\"") {
        Some(at) => html.insert_str(at, &map),
        None => html.push_str(&map),
    }
    html
}

fn builder(etag: &str, content_type: &'static str) -> warp::http::response::Builder {
    HttpResponse::builder()
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::CONTENT_TYPE, HeaderValue::from_static(content_type))
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        // The token may be in the page's address: no Referer carries it anywhere.
        .header(header::REFERRER_POLICY, "no-referrer")
}

fn respond(asset: &Asset, if_none_match: Option<&str>) -> Response {
    let etag = format!("\"{:016x}\"", asset.hash);
    let built = if if_none_match.is_some_and(|v| matches(v, &etag)) {
        builder(&etag, asset.content_type)
            .status(StatusCode::NOT_MODIFIED)
            .body(Vec::new().into())
    } else {
        builder(&etag, asset.content_type).body(asset.body.into())
    };
    // Every header is a constant or a hex string: building cannot fail.
    built.expect("a static asset response is well-formed")
}

fn respond_index(query: &str, if_none_match: Option<&str>) -> Response {
    let Some(token) = token_of(query) else {
        let mut response = respond(&INDEX, if_none_match);
        let csp = format!("{CSP}; script-src 'self'");
        page_headers(&mut response, &csp);
        return response;
    };
    let nonce = nonce();
    let html = index_with_token(&token, &nonce);
    let etag = format!("\"{:016x}\"", fnv1a(html.as_bytes()) ^ INDEX.hash);
    let mut response = builder(&etag, HTML)
        .body(html.into())
        .expect("the page's response is well-formed");
    page_headers(
        &mut response,
        &format!("{CSP}; script-src 'self' 'nonce-{nonce}'"),
    );
    response
}

fn page_headers(response: &mut Response, csp: &str) {
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// `GET /` (the page) and `GET /assets/<file>` (HEAD too); other paths are rejected as not
/// found, for the routes beside these.
pub fn routes() -> BoxedFilter<(Response,)> {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::get()
        .or(warp::head())
        .unify()
        .and(warp::path::tail())
        .and(query)
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(
            |tail: Tail, query: String, if_none_match: Option<String>| async move {
                let if_none_match = if_none_match.as_deref();
                match tail.as_str() {
                    "" | "index.html" => Ok(respond_index(&query, if_none_match)),
                    path => match path.strip_prefix("assets/").and_then(find) {
                        Some(asset) => Ok(respond(asset, if_none_match)),
                        None => Err(warp::reject::not_found()),
                    },
                }
            },
        )
        .boxed()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    fn dashboard() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboard"))
    }

    #[test]
    fn every_file_of_the_dashboard_folder_is_embedded_with_its_type() {
        let on_disk: BTreeSet<String> = std::fs::read_dir(dashboard())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != "README.md")
            .collect();
        let embedded: BTreeSet<String> = std::iter::once(&INDEX)
            .chain(ASSETS)
            .map(|a| a.name.to_owned())
            .collect();
        assert_eq!(embedded, on_disk, "ASSETS and dashboard/ differ");
        for asset in ASSETS {
            let expected = match asset.name.rsplit_once('.').map(|(_, ext)| ext) {
                Some("js") => JS,
                Some("css") => CSS,
                Some("svg") => SVG,
                other => panic!("{}: no content type for {other:?}", asset.name),
            };
            assert_eq!(asset.content_type, expected, "{}", asset.name);
        }
    }

    /// The page's own files that `text` loads: `./x.js` imports, `assets/x` attributes.
    fn references(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for quote in ['\'', '"'] {
            for piece in text.split(quote).skip(1).step_by(2) {
                let name = piece.trim_start_matches("./").trim_start_matches("assets/");
                let local = !name.contains(['/', ' ', '$', '{']);
                let file = [".js", ".css", ".svg"]
                    .iter()
                    .any(|ext| name.ends_with(ext));
                if local && file {
                    out.push(name.to_owned());
                }
            }
        }
        out
    }

    #[test]
    fn everything_the_pages_load_is_embedded() {
        for asset in std::iter::once(&INDEX).chain(ASSETS.iter().filter(|a| a.content_type == JS)) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for name in references(text) {
                assert!(
                    find(&name).is_some(),
                    "{} loads {name}, which is not embedded",
                    asset.name
                );
            }
        }
        let index = std::str::from_utf8(INDEX.body).unwrap();
        assert!(references(index).contains(&"app.js".to_owned()));
    }

    #[tokio::test]
    async fn serves_the_page_and_files_with_type_etag_and_no_cache() {
        let res = warp::test::request().path("/").reply(&routes()).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], HTML);
        assert_eq!(res.headers()["cache-control"], "no-cache");
        let csp = res.headers()["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.ends_with("script-src 'self'"),
            "{csp}"
        );
        let body = std::str::from_utf8(res.body()).unwrap();
        assert!(body.contains("<script type=\"module\" src=\"assets/app.js\">"));
        assert!(!body.contains("importmap"));

        let res = warp::test::request()
            .path("/assets/app.js")
            .reply(&routes())
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], JS);
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.len() == 18, "{etag}");

        let res = warp::test::request()
            .path("/assets/app.js?token=abc")
            .header("if-none-match", format!("W/\"0000000000000000\", {etag}"))
            .reply(&routes())
            .await;
        assert_eq!(res.status(), 304);
        assert!(res.body().is_empty());
        assert_eq!(res.headers()["etag"], etag.as_str());

        let res = warp::test::request()
            .path("/assets/app.js")
            .header("if-none-match", "\"other\"")
            .reply(&routes())
            .await;
        assert_eq!(res.status(), 200);
        let head = warp::test::request()
            .method("HEAD")
            .path("/assets/style.css")
            .reply(&routes())
            .await;
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-type"], CSS);
    }

    #[tokio::test]
    async fn a_page_opened_with_a_token_loads_every_file_with_it() {
        let res = warp::test::request()
            .path("/?token=s3cret%2Bx&x=1")
            .reply(&routes())
            .await;
        assert_eq!(res.status(), 200);
        let body = std::str::from_utf8(res.body()).unwrap();
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let mapped = format!(
                "\"/assets/{0}\": \"/assets/{0}?token=s3cret%2Bx\"",
                asset.name
            );
            assert!(
                body.contains(&mapped),
                "{} is not in the import map:\n{body}",
                asset.name
            );
        }
        assert!(
            body.contains("src=\"assets/app.js?token=s3cret%2Bx\""),
            "{body}"
        );
        assert!(
            body.contains("href=\"assets/style.css?token=s3cret%2Bx\""),
            "{body}"
        );
        assert!(body.find("importmap").unwrap() < body.find("type=\"module\"").unwrap());
        let csp = res.headers()["content-security-policy"].to_str().unwrap();
        let nonce = csp.split("'nonce-").nth(1).unwrap().trim_end_matches('\'');
        assert!(body.contains(&format!("nonce=\"{nonce}\"")), "{csp}");
        assert_eq!(nonce.len(), 32);
    }

    #[test]
    fn a_token_cannot_break_out_of_the_page() {
        let token = token_of("token=%22%3E<script>alert(1)</script>").unwrap();
        assert_eq!(token, "%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E");
        assert_eq!(token_of("a=1&token=ab%2"), Some("ab%252".to_owned()));
        assert_eq!(token_of("a=1"), None);
        assert_eq!(token_of("token="), None);
        assert_ne!(nonce(), nonce());
    }

    #[tokio::test]
    async fn leaves_other_paths_and_methods_to_other_routes() {
        for path in [
            "/api/status",
            "/app.js",
            "/assets/nope.js",
            "/assets/",
            "/dashboard/app.js",
        ] {
            let matched = warp::test::request().path(path).matches(&routes()).await;
            assert!(!matched, "{path}");
        }
        let post = warp::test::request()
            .method("POST")
            .path("/")
            .matches(&routes())
            .await;
        assert!(!post);
    }

    #[test]
    fn etags_differ_by_content_and_if_none_match_reads_lists() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert!(matches("*", "\"x\""));
        assert!(matches("\"y\", W/\"x\"", "\"x\""));
        assert!(!matches("\"y\"", "\"x\""));
    }
}
