//! The pages of `static/`, compiled into the binary so that the gateway
//! serves them from anywhere, exactly as they are in the tree (no build
//! step). `/` is the supervisor dashboard.

use actix_web::{http::header, HttpRequest, HttpResponse};

/// `(url path, file, content type)` of every file in `static/`.
pub const ASSETS: [(&str, &[u8], &str); 10] = [
    (
        "/",
        include_bytes!("../../static/index.html"),
        "text/html; charset=utf-8",
    ),
    (
        "/index.html",
        include_bytes!("../../static/index.html"),
        "text/html; charset=utf-8",
    ),
    (
        "/desktop.html",
        include_bytes!("../../static/desktop.html"),
        "text/html; charset=utf-8",
    ),
    (
        "/dashboard.js",
        include_bytes!("../../static/dashboard.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "/desktop.js",
        include_bytes!("../../static/desktop.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "/presence-client.js",
        include_bytes!("../../static/presence-client.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "/auth-gate.js",
        include_bytes!("../../static/auth-gate.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "/theme.css",
        include_bytes!("../../static/theme.css"),
        "text/css; charset=utf-8",
    ),
    (
        "/dashboard.css",
        include_bytes!("../../static/dashboard.css"),
        "text/css; charset=utf-8",
    ),
    (
        "/desktop.css",
        include_bytes!("../../static/desktop.css"),
        "text/css; charset=utf-8",
    ),
];

/// Registers a GET route per asset.
/// Serves the page the route table matched (`GET` and `HEAD`). Pages are
/// public and carry no credentials, so any origin may load them
/// (`Access-Control-Allow-Origin: *`): `presence-client.js` is imported
/// cross-origin by other web apps.
pub(crate) async fn serve(req: HttpRequest) -> HttpResponse {
    let pattern = req.match_pattern();
    let Some((_, body, ctype)) = ASSETS
        .iter()
        .find(|(p, _, _)| Some(*p) == pattern.as_deref())
    else {
        return HttpResponse::NotFound().finish();
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *ctype))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(*body)
}
