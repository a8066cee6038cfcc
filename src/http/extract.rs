//! Extractor error handlers: a query string or path segment that an
//! extractor (`web::Query`, `web::Path`, `web::Json`) cannot read gets the
//! API's JSON error (`{"error","reason"}`) instead of actix-web's plain-text
//! body. Registered by [`configure`].
//!
//! Not reachable from here: requests the HTTP/1 parser (actix-http) refuses
//! before any application code runs, i.e. more than 96 header fields or a
//! request head over 128 KiB (431) and an unparseable request line or
//! header (400). Those are answered with an empty body and
//! `Connection: close` (docs/protocol.md §1 "Errors").
//!
//! [`only_params`] is the check REST routes without a filter share: an
//! unknown query parameter is a 400 naming it.

use actix_web::error::{InternalError, JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, ResponseError};

use super::ApiError;

/// The JSON error response ([`ApiError`]) for an extractor failure.
fn refuse(err: impl Into<actix_web::Error>, e: ApiError) -> actix_web::Error {
    InternalError::from_response(err.into(), e.error_response()).into()
}

/// `web::Query` failures: 400 `bad_parameter` naming the query.
pub fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let reason = format!("the query string cannot be read: {err}");
    refuse(
        err,
        ApiError::BadInput {
            param: "query".into(),
            reason,
        },
    )
}

/// `web::Path` failures: 400 `bad_parameter` naming the path.
pub fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    let reason = format!("a path segment cannot be read: {err}");
    refuse(
        err,
        ApiError::BadInput {
            param: "path".into(),
            reason,
        },
    )
}

/// `web::Json` failures: 413 `payload_too_large` for an oversized body,
/// 415 `unsupported_media_type` for another content type, else 400
/// `bad_body`. For a `JsonConfig` registered elsewhere (with its limit):
/// `JsonConfig::default().limit(n).error_handler(json_error)`.
pub fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let reason = err.to_string();
    let e = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::http(StatusCode::PAYLOAD_TOO_LARGE, reason)
        }
        JsonPayloadError::ContentType => ApiError::http(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason),
        _ => ApiError::Http {
            status: StatusCode::BAD_REQUEST,
            code: "bad_body",
            reason,
        },
    };
    refuse(err, e)
}

/// Checks that a request body is declared as JSON: a `Content-Type` other
/// than `application/json` (or a `+json` type) is 415
/// `unsupported_media_type`; a body without one is read as JSON.
pub fn json_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(v) = req.headers().get(actix_web::http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = v
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        return Ok(());
    }
    Err(ApiError::http(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "the body is sent as {:?}; send JSON with Content-Type: application/json",
            v.to_str().unwrap_or("(not text)")
        ),
    ))
}

/// Reads a REST route's query string, refusing any parameter not in
/// `allowed` (docs/protocol.md: unknown parameters are a 400 on REST):
/// 400 `bad_parameter` naming the first unknown one and listing what the
/// route takes, or naming `query` when the string cannot be decoded.
/// Returns the `(name, value)` pairs in order (names may repeat).
pub fn only_params(qs: &str, allowed: &[&str]) -> Result<Vec<(String, String)>, super::ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(qs).map_err(|e| crate::registry::FilterError {
            param: "query".into(),
            reason: format!("malformed query string: {e}"),
        })?;
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        let expected = if allowed.is_empty() {
            "this route takes no query parameters".to_owned()
        } else {
            format!("this route takes {}", allowed.join(", "))
        };
        return Err(crate::registry::FilterError {
            param: k.clone(),
            reason: format!("unknown parameter; {expected}"),
        }
        .into());
    }
    Ok(pairs)
}

/// Registers the query and path error handlers (the JSON body limit is
/// configured with the other body limits, in [`super::guard`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error));
}

#[cfg(test)]
mod tests {
    use actix_web::{test, web, App, HttpResponse};

    #[derive(serde::Deserialize)]
    struct Q {
        #[allow(dead_code)]
        n: u32,
    }

    async fn q(_: web::Query<Q>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    async fn p(_: web::Path<u32>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    async fn j(_: web::Json<Q>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    use super::*;

    /// Unknown parameters are refused naming the first one; known ones
    /// pass through in order.
    #[actix_web::test]
    async fn only_params_names_the_unknown_one() {
        let ok = only_params("division=a&division=b", &["division"]).unwrap();
        assert_eq!(ok.len(), 2);
        assert!(only_params("", &[]).unwrap().is_empty());
        let e = only_params("division=a&bogus=1", &["division"]).unwrap_err();
        match e {
            crate::http::ApiError::BadParam(f) => {
                assert_eq!(f.param, "bogus");
                assert!(f.reason.contains("division"), "{}", f.reason);
            }
            other => panic!("{other:?}"),
        }
        let e = only_params("x=1", &[]).unwrap_err();
        assert!(e.to_string().contains("takes no query parameters"), "{e}");
    }

    /// Query, path and JSON extractor failures answer the JSON error.
    #[actix_web::test]
    async fn extractor_errors_are_json() {
        let app = test::init_service(
            App::new()
                .configure(configure)
                .app_data(
                    web::JsonConfig::default()
                        .limit(16)
                        .error_handler(json_error),
                )
                .route("/q", web::get().to(q))
                .route("/p/{n}", web::get().to(p))
                .route("/j", web::post().to(j)),
        )
        .await;
        let cases = [
            (
                test::TestRequest::get().uri("/q?n=-1").to_request(),
                400,
                "bad_parameter",
            ),
            (
                test::TestRequest::get().uri("/p/abc").to_request(),
                400,
                "bad_parameter",
            ),
            (
                test::TestRequest::post()
                    .uri("/j")
                    .insert_header(("content-type", "application/json"))
                    .set_payload("{bad")
                    .to_request(),
                400,
                "bad_body",
            ),
            (
                test::TestRequest::post()
                    .uri("/j")
                    .insert_header(("content-type", "text/plain"))
                    .set_payload("{}")
                    .to_request(),
                415,
                "unsupported_media_type",
            ),
            (
                test::TestRequest::post()
                    .uri("/j")
                    .insert_header(("content-type", "application/json"))
                    .set_payload("{\"n\": 1, \"pad\": \"xxxxxxxxxxxxxxxxxxxx\"}")
                    .to_request(),
                413,
                "payload_too_large",
            ),
        ];
        for (req, status, code) in cases {
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status().as_u16(), status);
            let body: serde_json::Value = test::read_body_json(resp).await;
            assert_eq!(body["error"], code, "{body}");
            assert!(!body["reason"].as_str().unwrap().is_empty(), "{body}");
        }
    }
}
