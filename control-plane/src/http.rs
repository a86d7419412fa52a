//! The JSON API for browsers (Contract 5), CORS for the engine's public
//! origin, and one error shape: `{"error": {"code", "message"}}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use streamgate_api::ErrorCode;

use crate::auth::SignInKind;
use crate::model::{Asset, AssetStatus, GateRule, RuleKind};
use crate::service::{ApiError, Caller, Service};

#[derive(Clone)]
struct AppState {
    service: Arc<Service>,
    /// `scheme://host[:port]` of the public URL.
    cors_origin: String,
    metrics: Option<PrometheusHandle>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if !self.rules.is_empty() {
            error["rules"] = json!(self.rules);
        }
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The router for the HTTP listener.
pub fn router(service: Arc<Service>, metrics: Option<PrometheusHandle>) -> Router {
    let cors_origin = origin_of(&service.config().public_url);
    let state = AppState {
        service,
        cors_origin,
        metrics,
    };
    Router::new()
        .route("/api/v1/auth/challenge", post(challenge))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/assets", get(assets))
        .route("/api/v1/assets/{id}/playback", post(playback))
        .route("/api/v1/assets/{id}", delete(delete_asset))
        .route("/api/v1/assets/{id}/gate", put(set_gate).delete(clear_gate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(render_metrics))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed here")
        })
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        .with_state(state)
}

/// `scheme://authority` of a URL (the CORS origin browsers send).
fn origin_of(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let end = rest.find('/').unwrap_or(rest.len());
            format!("{}{}", &url[..i + 3], &rest[..end])
        }
        None => url.to_string(),
    }
}

/// CORS for the engine's public origin only; preflights answered here.
async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes() == state.cors_origin.as_bytes());
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if allowed {
        if let Ok(origin) = HeaderValue::from_str(&state.cors_origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
        if preflight {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Authorization, Content-Type"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Parses a JSON body into `T`; anything else is 400 `malformed`.
fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct ChallengeBody {
    address: String,
    #[serde(default)]
    chain_id: u64,
    kind: String,
}

async fn challenge(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let b: ChallengeBody = body(&bytes)?;
    let c = s.service.challenge(&b.address, b.chain_id, &b.kind).await?;
    let mut out = json!({"challenge_id": c.id, "expires_at": rfc3339(c.expires_at)});
    if c.kind == SignInKind::Eip712 {
        let typed: Value = serde_json::from_str(&c.payload).unwrap_or(Value::Null);
        out["typed_data"] = typed;
    } else {
        out["message"] = Value::String(c.payload);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
struct LoginBody {
    challenge_id: String,
    signature: String,
}

async fn login(State(s): State<AppState>, bytes: Bytes) -> Result<Json<Value>, ApiError> {
    let b: LoginBody = body(&bytes)?;
    let session = s.service.login(&b.challenge_id, &b.signature).await?;
    Ok(Json(json!({
        "session": session.token,
        "address": session.address,
        "expires_at": rfc3339(session.expires_at),
    })))
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    s.service.logout(bearer(&headers)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn assets(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list: Vec<Value> = s.service.assets().await?.iter().map(asset_json).collect();
    Ok(Json(Value::Array(list)))
}

/// An asset as the JSON API shows it, in the list and after a change.
fn asset_json(a: &Asset) -> Value {
    let mut entry = json!({"id": a.id, "title": a.title, "status": a.status, "gated": a.gated()});
    // Which NFT opens a gated asset is public (a 403 says it too): pages
    // show it, and ask the wallet for the right network.
    if a.gated() {
        entry["rules"] = json!(a.rules);
    }
    if a.duration_ms > 0 {
        entry["duration_seconds"] = json!(a.duration_ms as f64 / 1000.0);
    }
    // How far a transcode is, while it runs (the studio shows it).
    if a.status != AssetStatus::Ready {
        entry["progress"] = json!(a.progress);
    }
    entry
}

/// The operator's asset calls (the studio page; the CLI has the same over
/// gRPC): a bearer operator token, never a cookie, so no CSRF.
async fn delete_asset(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    s.service.operator(bearer(&headers)).await?;
    s.service.delete_asset(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One rule as JSON: the shape the API answers 403s with.
#[derive(Deserialize)]
struct RuleBody {
    kind: String,
    chain_id: u64,
    contract: String,
    #[serde(default)]
    token_id: String,
    #[serde(default)]
    min_balance: String,
}

#[derive(Deserialize)]
struct GateBody {
    rules: Vec<RuleBody>,
}

async fn set_gate(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    s.service.operator(bearer(&headers)).await?;
    let gate: GateBody = body(&bytes)?;
    let rules = gate
        .rules
        .iter()
        .map(|r| {
            let kind = RuleKind::parse(&r.kind)
                .ok_or_else(|| ApiError::malformed(format!("rule kind {:?}", r.kind)))?;
            GateRule::build(kind, r.chain_id, &r.contract, &r.token_id, &r.min_balance)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(asset_json(&s.service.set_gate(&id, &rules).await?)))
}

async fn clear_gate(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    s.service.operator(bearer(&headers)).await?;
    Ok(Json(asset_json(&s.service.set_gate(&id, &[]).await?)))
}

#[derive(Deserialize, Default)]
struct PlaybackBody {
    #[serde(default)]
    ttl_seconds: u64,
}

async fn playback(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = s.service.caller(bearer(&headers)).await?;
    if matches!(caller, Caller::Operator) {
        // Browsers sign in; the operator token belongs to the CLI (gRPC).
        return Err(ApiError::new(
            ErrorCode::InvalidSession,
            "a wallet session is required",
        ));
    }
    let b: PlaybackBody = if bytes.is_empty() {
        PlaybackBody::default()
    } else {
        body(&bytes)?
    };
    let p = s.service.playback(&caller, &id, b.ttl_seconds).await?;
    Ok(Json(json!({
        "token": p.token,
        "hls": p.hls,
        "dash": p.dash,
        "expires_at": rfc3339(p.expires_at),
    })))
}

async fn render_metrics(State(s): State<AppState>) -> Response {
    match &s.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::not_found("metrics are on the engine's admin listener in this process")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn origin_is_scheme_and_authority() {
        assert_eq!(
            super::origin_of("https://video.example.com/x/y"),
            "https://video.example.com"
        );
        assert_eq!(
            super::origin_of("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
    }
}
