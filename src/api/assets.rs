//! The web client: one page, its script and its style, embedded in the
//! binary (no build step, nothing fetched from elsewhere).

use crate::http::Response;

/// One embedded file.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

/// Every embedded file.
pub const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../web/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../web/style.css"),
    },
];

/// The asset served at `path`.
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The response for `asset`. The headers keep the page from being framed,
/// sniffed as another type, or talking to any other origin.
pub fn response(asset: &Asset) -> Response {
    Response {
        status: 200,
        headers: vec![
            ("Content-Type", asset.content_type.into()),
            // Revalidate each time: a new binary brings a new page.
            ("Cache-Control", "no-cache".into()),
            ("X-Content-Type-Options", "nosniff".into()),
            ("X-Frame-Options", "DENY".into()),
            ("Referrer-Policy", "no-referrer".into()),
            ("Content-Security-Policy", CSP.into()),
        ],
        body: asset.body.as_bytes().to_vec(),
        close: false,
    }
}

/// Same-origin everything; no inline script, so a message that ever
/// slipped into the page as HTML could not run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
