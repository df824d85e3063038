//! Who may use the dashboard, as the management API decides it: with a token, anyone who
//! presents it; without, loopback clients only. A browser cannot send a bearer header when
//! it opens a page, so `/?token=T` sets an HttpOnly, SameSite=Strict cookie and redirects
//! to `/`. Without a token the `Host` must name the loopback too, so a page on another
//! site cannot reach the dashboard by pointing a name of its own at 127.0.0.1 (DNS
//! rebinding).
//!
//! Actions (every method but GET and HEAD) also need the `x-kestrel-action` header, which a
//! cross-site form cannot send and a cross-site script cannot send without a CORS
//! preflight the dashboard never grants, and an `Origin`, when present, naming this host.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The cookie that carries the token.
pub const COOKIE: &str = "kestrel_token";
/// The header every action must carry.
pub const ACTION_HEADER: &str = "x-kestrel-action";
/// Longest token accepted from a request (the check is done before any other work).
const MAX_TOKEN: usize = 4096;

/// Who may use the dashboard.
#[derive(Clone)]
pub enum Access {
    /// Clients on the loopback interface, addressing it by a loopback name.
    Loopback,
    /// Anyone presenting this token.
    Token(Arc<str>),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Loopback => f.write_str("Loopback"),
            Access::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// Compares without an early exit (timing does not tell how much of a guess was right).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn query_token(req: &Request) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_string())
}

/// The host part of a `Host` header (`[::1]:8080` → `::1`, `localhost:80` → `localhost`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Whether `host` (a `Host` header) names the loopback interface.
pub fn loopback_host(host: &str) -> bool {
    let name = host_name(host);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// Whether a state-changing request comes from the dashboard's own page.
fn same_site(headers: &HeaderMap) -> Result<(), &'static str> {
    if headers.get(ACTION_HEADER).is_none() {
        return Err("actions need the x-kestrel-action header (sent by the dashboard's page)");
    }
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.to_str(), Ok("same-origin" | "none"))
    {
        return Err("cross-site request refused");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = origin.to_str().unwrap_or("");
        let ok = host.is_some_and(|h| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(h)
        });
        if !ok {
            return Err("cross-site request refused: Origin is not this dashboard");
        }
    }
    Ok(())
}

/// The access check, before every route.
pub async fn check(State(access): State<Access>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    match &access {
        Access::Token(token) => {
            if let Some(given) = query_token(&req) {
                if given.len() > MAX_TOKEN || !same(given.as_bytes(), token.as_bytes()) {
                    return refuse(StatusCode::UNAUTHORIZED, "wrong token");
                }
                // Into a cookie, and out of the address bar (and of the history).
                let set = format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::SEE_OTHER;
                r.headers_mut()
                    .insert(header::LOCATION, HeaderValue::from_static("/"));
                if let Ok(v) = HeaderValue::from_str(&set) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                return r;
            }
            let given = bearer(headers).or_else(|| cookie(headers, COOKIE));
            match given {
                Some(g) if g.len() <= MAX_TOKEN && same(g.as_bytes(), token.as_bytes()) => {}
                Some(_) => return refuse(StatusCode::UNAUTHORIZED, "wrong token"),
                None => {
                    return refuse(
                        StatusCode::UNAUTHORIZED,
                        "this dashboard needs the server's token: open it as /?token=TOKEN",
                    );
                }
            }
        }
        Access::Loopback => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            if !peer.is_some_and(|p| p.ip().is_loopback()) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "the dashboard is loopback-only; start it with a token to allow remote browsers",
                );
            }
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            if !host.is_some_and(loopback_host) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "open the dashboard by a loopback address (127.0.0.1 or localhost)",
                );
            }
        }
    }
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && let Err(why) = same_site(req.headers())
    {
        return refuse(StatusCode::FORBIDDEN, why);
    }
    next.run(req).await
}

/// Headers on every response: no framing, no sniffing, only this origin's scripts.
pub async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "127.1.2.3",
        ] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:80",
            "[::2]:1",
            "",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }

    #[test]
    fn cookies_and_tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; kestrel_token=s3cret; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("s3cret"));
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
