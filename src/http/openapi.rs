//! The OpenAPI document (`GET /openapi.json`) and the table the router is built
//! from.
//!
//! Every API route is registered with utoipa-axum's `routes!`, which takes the
//! path and method from the handler's `#[utoipa::path]`: the route and its entry
//! in the document come from one place and cannot drift. The few routes the
//! document leaves out on purpose (the dashboard, the explorer, the document
//! itself) are added through [`RouteTable::unlisted`], which records them; the
//! recorded list must equal [`UNLISTED`], and `tests` checks both ways (plus
//! `tests/openapi_e2e.rs`, which calls every route on a running daemon).

use axum::{
    http::{header, HeaderValue},
    response::IntoResponse,
    routing::{get, MethodRouter},
    Router,
};
use utoipa::{
    openapi::{
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        OpenApi as OpenApiDocument,
    },
    Modify, OpenApi,
};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use serde::{Serialize, Serializer};

use super::{
    error::ErrorBody, gateway::CategoryName, learning::AlgoKeyName, views::ViewName, AppState,
};

/// The document's fixed parts; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tutorlog",
        description = "Event-sourced adaptive learning service on an OpenAI-compatible, \
            cost- and reliability-aware LLM gateway. Every error answers \
            `{\"error\": {\"code\", \"message\"}}`. Writes answer the log `position` \
            they reached; reads that take `min_position` wait (bounded) until their \
            view includes it. Any request may also answer 503 `timeout` after \
            `server.request_timeout_secs`, and any body over `server.body_limit_bytes` \
            413 `payload_too_large`. See the README, \"HTTP API\".",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "health", description = "Liveness, readiness and Prometheus metrics"),
        (name = "events", description = "The event log as JSON"),
        (name = "views", description = "Read models rebuilt from the log (docs/views.md)"),
        (name = "learning", description = "Training sessions, challenges, progress and the algorithm registry"),
        (name = "audit", description = "Why-queries, views as of a past moment, and the algorithm-run audit"),
        (name = "gateway", description = "The OpenAI-compatible gateway and routed chat"),
        (name = "providers", description = "Providers: routing, health, budgets, costs and benchmarks"),
        (name = "admin", description = "Operator endpoints: `Authorization: Bearer <admin token>`"),
    ),
    // Schemas only parameters refer to: `routes!` collects the bodies' schemas,
    // not those of tuple-style parameters.
    components(schemas(ErrorBody, ViewName, AlgoKeyName, CategoryName)),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

/// `#[serde(serialize_with)]` for rows of other crates' types nested in an
/// answer: writes them through `serde_json::Value`, whose maps are sorted, as
/// the `json!` maps these answers replaced did (so the bytes stay the same).
pub(crate) fn as_json_map<T: Serialize, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serde_json::to_value(value)
        .map_err(serde::ser::Error::custom)?
        .serialize(serializer)
}

/// Writes the bundled item bank's focus areas as the `enum` of the request
/// fields that name one. The bank is compiled into the binary, so the list is
/// exact for this build; clients learn the valid values, and generated test
/// requests can start real sessions. Matching stays case-insensitive.
fn list_focus_areas(openapi: &mut OpenApiDocument) {
    use utoipa::openapi::{RefOr, Schema};
    let areas: Vec<serde_json::Value> = tutorlog_actors::content::ItemBank::bundled()
        .focus_areas()
        .into_iter()
        .map(serde_json::Value::from)
        .collect();
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    for (schema, field, nullable) in [
        ("StartBody", "focus_area", false),
        ("ChallengeStartBody", "category", true),
    ] {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
            continue;
        };
        let Some(RefOr::T(Schema::Object(property))) = object.properties.get_mut(field) else {
            continue;
        };
        let mut values = areas.clone();
        if nullable {
            values.push(serde_json::Value::Null);
        }
        property.enum_values = Some(values);
    }
}

/// Name of the admin bearer-token security scheme.
pub const ADMIN_TOKEN_SCHEME: &str = "admin_token";
/// Name of the gateway API-key security scheme.
pub const API_KEY_SCHEME: &str = "api_key";

/// Adds the two bearer schemes the handlers refer to.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_TOKEN_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token: the value of the environment variable named by \
                         `server.admin_token_env` (default `TUTORLOG_ADMIN_TOKEN`). Admin \
                         endpoints answer 401 while it is unset.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A gateway key from `gateway.api_keys` (as OpenAI clients send \
                         their key). With no keys configured `/v1/*` is open.",
                    ))
                    .build(),
            ),
        );
    }
}

/// A route the router serves that the OpenAPI document leaves out on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlisted {
    /// The method (`GET`).
    pub method: &'static str,
    /// The axum path.
    pub path: &'static str,
    /// Why it is not in the document.
    pub why: &'static str,
}

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Where the interactive API explorer (Swagger UI) is served.
pub const DOCS_PATH: &str = "/docs";

/// Every route outside the document, and why. `RouteTable::finish` checks that
/// the routes registered with [`RouteTable::unlisted`] are exactly these.
pub const UNLISTED: [Unlisted; 6] = [
    Unlisted {
        method: "GET",
        path: "/",
        why: "the operator dashboard: an HTML page for people (docs/dashboard.md)",
    },
    Unlisted {
        method: "GET",
        path: "/dashboard/{asset}",
        why: "the dashboard's script, stylesheet and icon",
    },
    Unlisted {
        method: "GET",
        path: OPENAPI_PATH,
        why: "this document itself",
    },
    Unlisted {
        method: "GET",
        path: DOCS_PATH,
        why: "redirects to the explorer at /docs/",
    },
    Unlisted {
        method: "GET",
        path: "/docs/",
        why: "the API explorer (Swagger UI), an HTML page for people",
    },
    Unlisted {
        method: "GET",
        path: "/docs/{*rest}",
        why: "the explorer's bundled scripts and stylesheets",
    },
];

/// The routes of the explorer at [`DOCS_PATH`], as [`utoipa_swagger_ui`] adds
/// them (the redirect, the page, its assets); a test checks the explorer answers
/// each.
const DOCS_ROUTES: [&str; 3] = [DOCS_PATH, "/docs/", "/docs/{*rest}"];

/// Swagger UI reading [`OPENAPI_PATH`]. The assets are compiled in from the
/// `utoipa-swagger-ui-vendored` crate, so the page loads nothing from outside
/// the daemon; the online spec validator (a call to validator.swagger.io) is
/// off for the same reason.
fn docs_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let config = utoipa_swagger_ui::Config::new([OPENAPI_PATH])
        .validator_url("none")
        .try_it_out_enabled(true)
        .persist_authorization(true);
    utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH)
        .config(config)
        .into()
}

/// The routes under construction, with a record of the unlisted ones.
pub struct RouteTable {
    router: OpenApiRouter<AppState>,
    unlisted: Vec<(&'static str, &'static str)>,
}

/// What [`RouteTable::finish`] built.
pub struct Routes {
    /// The router: every documented route, every unlisted one, and
    /// `/openapi.json`; no fallback, layers or state yet.
    pub router: Router<AppState>,
    /// The document `/openapi.json` serves.
    pub openapi: OpenApiDocument,
    /// `(method, path)` of each route added outside the document, in order.
    pub unlisted: Vec<(&'static str, &'static str)>,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable::new()
    }
}

impl RouteTable {
    /// An empty table whose document starts from [`ApiDoc`].
    pub fn new() -> RouteTable {
        RouteTable {
            router: OpenApiRouter::with_openapi(ApiDoc::openapi()),
            unlisted: Vec::new(),
        }
    }

    /// Adds documented handlers (`routes!(module::handler)`): each is routed at
    /// the path and method of its `#[utoipa::path]`, and described there.
    pub fn api(mut self, routes: UtoipaMethodRouter<AppState>) -> RouteTable {
        self.router = self.router.routes(routes);
        self
    }

    /// Adds a route the document leaves out; it must be listed in [`UNLISTED`].
    /// `method` names the one method `method_router` answers (`get(..)`: "GET").
    pub fn unlisted(
        mut self,
        method: &'static str,
        path: &'static str,
        method_router: MethodRouter<AppState>,
    ) -> RouteTable {
        self.router = self.router.route(path, method_router);
        self.unlisted.push((method, path));
        self
    }

    /// Adds `GET /openapi.json` (the document, serialized once) and the explorer
    /// at `/docs`, and returns the parts.
    pub fn finish(self) -> Routes {
        let (router, mut openapi) = self.router.split_for_parts();
        list_focus_areas(&mut openapi);
        let json = openapi.to_pretty_json().unwrap_or_else(|error| {
            // Plain structs into a String cannot fail; if they ever do, serve an
            // empty document and say why (the unit tests would fail first).
            tracing::error!(%error, "the OpenAPI document does not serialize");
            String::from("{}")
        });
        let body = bytes::Bytes::from(json);
        let router = router.route(
            OPENAPI_PATH,
            get(move || {
                let body = body.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        body,
                    )
                        .into_response()
                }
            }),
        );
        // The explorer brings its own routes; record them like any unlisted one.
        let router = router.merge(docs_router());
        let mut unlisted = self.unlisted;
        unlisted.push(("GET", OPENAPI_PATH));
        unlisted.extend(DOCS_ROUTES.iter().map(|path| ("GET", *path)));
        Routes {
            router,
            openapi,
            unlisted,
        }
    }
}

/// Test helpers shared by the handler modules' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use serde::Serialize;

    /// Asserts that `value` serializes to the same bytes as the `json!` map it
    /// replaced would: serde_json's map (no `preserve_order`) sorts keys, so the
    /// struct's fields must come in alphabetical order, at every level.
    pub(crate) fn assert_same_bytes_as_a_json_map<T: Serialize>(value: &T) {
        let direct = serde_json::to_string(value).expect("serializes");
        let map = serde_json::to_value(value).expect("to a value");
        let via_map = serde_json::to_string(&map).expect("serializes");
        assert_eq!(direct, via_map, "fields out of alphabetical order");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use axum::{body::Body, http::Request, http::StatusCode};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    /// `GET path` on the explorer alone: status, content type, body.
    async fn fetch_docs(path: &str) -> (StatusCode, String, String) {
        let response = docs_router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("body");
        (
            status,
            content_type,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn the_explorer_is_served_from_the_binary_and_reads_this_document() {
        let (status, _, _) = fetch_docs(DOCS_PATH).await;
        assert!(status.is_redirection(), "{DOCS_PATH} redirects to the page");
        let (status, content_type, page) = fetch_docs("/docs/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/html"), "{content_type}");
        // Offline: every script, stylesheet and icon the page names is relative,
        // and each one is answered by the daemon itself.
        let mut linked = Vec::new();
        for attribute in ["src=\"", "href=\""] {
            for rest in page.split(attribute).skip(1) {
                let target = rest.split('"').next().unwrap_or_default();
                assert!(
                    !target.contains("//"),
                    "the explorer page loads {target} from elsewhere"
                );
                linked.push(target.trim_start_matches("./").to_owned());
            }
        }
        assert!(linked
            .iter()
            .any(|target| target.ends_with("swagger-ui-bundle.js")));
        for target in linked {
            let (status, _, body) = fetch_docs(&format!("/docs/{target}")).await;
            assert_eq!(status, StatusCode::OK, "/docs/{target}");
            assert!(!body.is_empty(), "/docs/{target}");
        }
        let (status, _, initializer) = fetch_docs("/docs/swagger-initializer.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(initializer.contains(OPENAPI_PATH), "{initializer}");
        assert!(
            initializer.contains("\"validatorUrl\": \"none\""),
            "the online validator stays off: {initializer}"
        );
    }

    /// The daemon's router is built in one place, [`RouteTable`], and only from
    /// it: this fails when a route is added beside it (in `router()` or a
    /// handler module), where neither the document nor [`UNLISTED`] would see
    /// it. Other servers (the mock provider, test fixtures) live outside
    /// `src/http/` and are not the daemon's API.
    #[test]
    fn routes_are_added_only_through_the_route_table() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).expect("src/http") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !name.ends_with(".rs") || name == "openapi.rs" {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("source");
            // Test modules build their own small routers.
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            for call in [
                ".route(",
                ".route_service(",
                ".nest(",
                ".nest_service(",
                ".merge(",
                ".fallback_service(",
                "Router::new(",
                "Router::<",
            ] {
                assert!(
                    !code.contains(call),
                    "{name} calls {call}: add routes in http::routes() with .api(routes!(..)) \
                     (documented) or .unlisted(..) (listed in openapi::UNLISTED with a reason)"
                );
            }
            checked += 1;
        }
        assert!(checked >= 8, "read the handler modules ({checked})");
    }

    fn document() -> Value {
        serde_json::to_value(&crate::http::routes().openapi).expect("the document serializes")
    }

    /// `(METHOD, path)` of every operation in the document.
    fn operations(document: &Value) -> BTreeMap<(String, String), Value> {
        let mut found = BTreeMap::new();
        let paths = document["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                if [
                    "get", "post", "put", "delete", "patch", "head", "options", "trace",
                ]
                .contains(&method.as_str())
                {
                    found.insert((method.to_uppercase(), path.clone()), operation.clone());
                }
            }
        }
        found
    }

    #[test]
    fn every_route_is_in_the_document_or_listed_with_a_reason() {
        let routes = crate::http::routes();
        let registered: BTreeSet<(&str, &str)> = routes.unlisted.iter().copied().collect();
        assert_eq!(
            registered.len(),
            routes.unlisted.len(),
            "a route added twice"
        );
        let listed: BTreeSet<(&str, &str)> = UNLISTED
            .iter()
            .map(|route| (route.method, route.path))
            .collect();
        assert_eq!(
            registered, listed,
            "routes added outside the document must be exactly UNLISTED (add a reason there)"
        );
        for route in UNLISTED {
            assert!(!route.why.is_empty(), "{} has no reason", route.path);
        }
        let document = document();
        let operations = operations(&document);
        for route in UNLISTED {
            assert!(
                !operations.contains_key(&(route.method.to_owned(), route.path.to_owned())),
                "{} {} is both documented and listed",
                route.method,
                route.path
            );
        }
        // The API this document describes: 37 operations, one per path (the
        // provider-health alias has its own). A change here is a route added or
        // removed: update the number and the README's endpoint table together.
        assert_eq!(operations.len(), 37, "{:#?}", operations.keys());
    }

    #[test]
    fn every_operation_is_described_and_its_errors_have_the_error_shape() {
        let document = document();
        let tags: BTreeSet<&str> = document["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(|tag| tag["name"].as_str())
            .collect();
        let schemes: BTreeSet<&str> = document["components"]["securitySchemes"]
            .as_object()
            .expect("security schemes")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            schemes,
            BTreeSet::from([ADMIN_TOKEN_SCHEME, API_KEY_SCHEME])
        );
        let mut operation_ids = BTreeSet::new();
        for ((method, path), operation) in operations(&document) {
            let name = format!("{method} {path}");
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(operation_ids.insert(id.to_owned()), "{name}: {id} twice");
            let tag = operation["tags"][0].as_str().expect("a tag");
            assert!(tags.contains(tag), "{name}: undeclared tag {tag}");
            assert!(
                operation["summary"].is_string() || operation["description"].is_string(),
                "{name}: undescribed"
            );
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{name}: no success response"
            );
            for (status, response) in responses {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{name} {status}: no description"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{name} {status}: not the error shape"
                    );
                }
            }
            // Every `{param}` of the path is declared.
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|parameters| {
                    parameters
                        .iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let in_path: BTreeSet<&str> = path
                .split('{')
                .skip(1)
                .filter_map(|rest| rest.split('}').next())
                .collect();
            assert_eq!(declared, in_path, "{name}: path parameters");
            if operation.get("requestBody").is_some() {
                for status in ["400", "413"] {
                    assert!(responses.contains_key(status), "{name}: no {status}");
                }
            }
            match operation["security"].as_array() {
                Some(requirements) => {
                    assert!(responses.contains_key("401"), "{name}: no 401");
                    for requirement in requirements {
                        for scheme in requirement.as_object().expect("requirement").keys() {
                            assert!(schemes.contains(scheme.as_str()), "{name}: {scheme}");
                        }
                    }
                }
                None => assert!(
                    !path.starts_with("/api/v1/admin/") && !path.starts_with("/v1/"),
                    "{name}: no security requirement"
                ),
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        refs.push(target);
                    }
                    map.values().for_each(|v| walk(v, refs));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
                _ => {}
            }
        }
        let document = document();
        let mut refs = Vec::new();
        walk(&document, &mut refs);
        assert!(!refs.is_empty());
        for target in refs {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(
                document.pointer(pointer).is_some(),
                "{target} does not resolve"
            );
        }
    }

    #[test]
    fn the_documented_enums_match_the_code() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        let names = |schema: &str| -> Vec<String> {
            schemas[schema]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{schema} is an enum"))
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(names("ViewName"), crate::views::VIEW_NAMES.to_vec());
        let keys: Vec<String> = tutorlog_actors::algorithms::AlgoKey::ALL
            .iter()
            .map(|key| key.as_str().to_owned())
            .collect();
        assert_eq!(names("AlgoKeyName"), keys);
        assert_eq!(
            names("CategoryName"),
            tutorlog_actors::providers::category::CATEGORIES.to_vec()
        );
        let areas: Vec<&str> = tutorlog_actors::content::ItemBank::bundled().focus_areas();
        let listed = &schemas["StartBody"]["properties"]["focus_area"]["enum"];
        assert_eq!(listed, &serde_json::json!(areas), "the bundled focus areas");
        assert!(
            schemas["ChallengeStartBody"]["properties"]["category"]["enum"]
                .as_array()
                .is_some_and(|values| values.len() == areas.len() + 1)
        );
    }

    #[test]
    fn answers_keep_their_bytes() {
        use crate::http::{admin, error, events, health};
        use test_support::assert_same_bytes_as_a_json_map as same_bytes;
        same_bytes(&health::Health { status: "ok" });
        same_bytes(&health::Ready {
            last_position: Some(1),
            status: "ready",
        });
        same_bytes(&events::EventsPage {
            events: vec![serde_json::json!({"position": 0})],
            last_position: None,
            next_from: 1,
        });
        same_bytes(&admin::ConfigReloaded {
            applied: true,
            changes: vec!["gateway.rate_limit_per_sec".into()],
        });
        same_bytes(&error::ErrorBody {
            error: error::ErrorDetail {
                code: "bad_request",
                message: "m".into(),
            },
        });
    }

    #[test]
    fn the_document_is_openapi_3_1_with_this_version() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["title"], "tutorlog");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    }
}
