//! The operator dashboard: `GET /` and its assets under `/dashboard/`.
//!
//! The page, its stylesheet, script and icon are compiled into the binary, so the
//! dashboard works on a machine with no network and nothing to deploy beside the
//! daemon. The script polls the JSON endpoints (`/api/v1/views/{name}` and the
//! gateway's status endpoints) and draws the charts itself; `docs/dashboard.md`
//! says which number comes from where.
//!
//! Every response carries a Content-Security-Policy that allows this origin only
//! (no inline script or style, no other host, no framing), and an `ETag` with
//! `Cache-Control: no-cache`: the asset URLs carry no version, so a browser must
//! revalidate (a cheap 304) rather than keep an old script after an upgrade.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use super::error::ApiError;

/// The policy sent with the page and its assets: same origin only, for scripts,
/// styles, images and `fetch`; nothing else at all.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// `Cache-Control` of the page and its assets.
pub const CACHE_CONTROL: &str = "no-cache";

/// One embedded file.
struct Asset {
    /// The name under `/dashboard/` (the page itself is served at `/`).
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("dashboard/index.html"),
};

const ASSETS: [Asset; 3] = [
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("dashboard/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("dashboard/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("dashboard/favicon.svg"),
    },
];

/// Strong validators, one per asset in `ASSETS` order, then the page's: the
/// first 16 bytes of the body's BLAKE3 hash, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .chain(std::iter::once(&INDEX))
        .map(|asset| {
            let hash = blake3::hash(asset.body.as_bytes());
            let hex: String = hash
                .as_bytes()
                .iter()
                .take(16)
                .map(|byte| format!("{byte:02x}"))
                .collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// `GET /`: the dashboard page.
pub async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, etag(ASSETS.len()), &headers)
}

/// `GET /dashboard/{asset}`: the page's script, stylesheet and icon.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS
        .iter()
        .enumerate()
        .find(|(_, asset)| asset.name == name)
    {
        Some((index, asset)) => serve(asset, etag(index), &headers),
        None => ApiError::not_found(format!(
            "no dashboard asset {name:?}; known: {}",
            ASSETS.map(|asset| asset.name).join(", ")
        ))
        .into_response(),
    }
}

fn etag(index: usize) -> &'static str {
    ETAGS.get(index).map_or("", String::as_str)
}

fn serve(asset: &'static Asset, etag: &'static str, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (header::ETAG, HeaderValue::from_static(etag)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (StatusCode::OK, headers, asset.body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request, routing::get, Router};
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/", get(index))
            .route("/dashboard/{asset}", get(asset))
    }

    async fn fetch(path: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        let response = app()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            headers,
            String::from_utf8(body.to_vec()).expect("utf-8"),
        )
    }

    #[tokio::test]
    async fn the_page_and_its_assets_have_their_types_a_strict_policy_and_validators() {
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/dashboard/app.js", "text/javascript; charset=utf-8"),
            ("/dashboard/app.css", "text/css; charset=utf-8"),
            ("/dashboard/favicon.svg", "image/svg+xml"),
        ] {
            let (status, headers, body) = fetch(path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{path}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert!(!body.is_empty(), "{path}");
            let etag = headers[header::ETAG].to_str().expect("ascii").to_owned();
            assert_eq!(etag.len(), 34, "{etag}");
            let (status, _, body) = fetch(path, Some(&format!("\"x\", {etag}"))).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
            assert!(body.is_empty());
            let (status, _, _) = fetch(path, Some("\"stale\"")).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        let (status, _, body) = fetch("/dashboard/secrets.txt", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("not_found"), "{body}");
    }

    #[test]
    fn the_policy_allows_this_origin_only() {
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none';"));
        for directive in CONTENT_SECURITY_POLICY.split(';').map(str::trim) {
            let mut words = directive.split_whitespace();
            let name = words.next().expect("directive name");
            for source in words {
                assert!(
                    source == "'self'" || source == "'none'",
                    "{name} allows {source}"
                );
            }
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_has_no_inline_code() {
        let page = INDEX.body;
        for forbidden in [
            "http://", "https://", "//cdn", "style=", "onload=", "<script>",
        ] {
            assert!(!page.contains(forbidden), "index.html contains {forbidden}");
        }
        for asset in &ASSETS {
            assert!(
                page.contains(&format!("/dashboard/{}", asset.name)),
                "index.html links {}",
                asset.name
            );
        }
        // The script names no other host: its only absolute URL is SVG's namespace.
        let script = ASSETS[0].body;
        assert!(!script.contains("https://"));
        assert_eq!(
            script.matches("http://").count(),
            script.matches("\"http://www.w3.org/2000/svg\"").count()
        );
    }
}
