//! The router as a browser or an attacker meets it: access, cross-site actions, bounds,
//! documents, and the event stream's first update.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kestrel_store::Store;
use kestrel_store::mem::MemStore;
use serde_json::Value;
use tower::ServiceExt;

use super::*;

/// Actions that record what they were asked.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Actions for Recorder {
    fn stop<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, String>> {
        self.0.lock().unwrap().push(format!("stop {name}"));
        Box::pin(async move { Ok(format!("stopped {name}")) })
    }
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, String>> {
        self.0.lock().unwrap().push(format!("delete {name}"));
        Box::pin(async { Err("it is running".to_string()) })
    }
}

fn dashboard(access: Access) -> (Dashboard, Arc<Recorder>) {
    let store = Arc::new(MemStore::default());
    store
        .create_experiment(&kestrel_store::conformance::experiment("exp"))
        .unwrap();
    let rec = Arc::new(Recorder::default());
    (Dashboard::new(store, rec.clone(), access, None), rec)
}

fn request(method: &str, uri: &str, peer: [u8; 4], host: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, host)
        .extension(ConnectInfo(SocketAddr::from((peer, 40000))))
}

async fn send(d: &Dashboard, req: Request<Body>) -> (StatusCode, String) {
    let r = router(d.clone()).oneshot(req).await.unwrap();
    let status = r.status();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The status of `req` sent with an empty body.
async fn status(d: &Dashboard, req: axum::http::request::Builder) -> StatusCode {
    send(d, req.body(Body::empty()).unwrap()).await.0
}

const LOOP: [u8; 4] = [127, 0, 0, 1];

#[tokio::test]
async fn loopback_only_without_a_token() {
    let (d, _) = dashboard(Access::Loopback);
    let ok = request("GET", "/api/experiments", LOOP, "127.0.0.1:8686");
    let (s, body) = send(&d, ok.body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["name"], "exp");
    // Another machine; and this machine addressed by a foreign name (DNS rebinding).
    let far = request("GET", "/", [10, 0, 0, 2], "10.0.0.1:8686");
    assert_eq!(status(&d, far).await, StatusCode::FORBIDDEN);
    let rebound = request("GET", "/api/experiments", LOOP, "evil.example:8686");
    assert_eq!(status(&d, rebound).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_token_opens_it_by_cookie_bearer_or_once_by_query() {
    let (d, _) = dashboard(Access::Token(Arc::from("s3cret")));
    let far = [10, 0, 0, 2];
    let none = request("GET", "/api/experiments", far, "kestrel.example");
    assert_eq!(status(&d, none).await, StatusCode::UNAUTHORIZED);
    let wrong = request("GET", "/api/experiments", far, "kestrel.example")
        .header(header::COOKIE, "kestrel_token=guess");
    assert_eq!(status(&d, wrong).await, StatusCode::UNAUTHORIZED);
    let long = format!("/?token={}", "a".repeat(10_000));
    let r = request("GET", &long, far, "kestrel.example");
    assert_eq!(status(&d, r).await, StatusCode::UNAUTHORIZED);
    // The query sets an HttpOnly, SameSite=Strict cookie and leaves the address bar.
    let q = request("GET", "/?token=s3cret", far, "kestrel.example");
    let r = router(d.clone())
        .oneshot(q.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let c = request("GET", "/api/experiments", far, "kestrel.example")
        .header(header::COOKIE, "kestrel_token=s3cret");
    assert_eq!(status(&d, c).await, StatusCode::OK);
    let b = request("GET", "/api/experiments", far, "kestrel.example")
        .header(header::AUTHORIZATION, "Bearer s3cret");
    assert_eq!(status(&d, b).await, StatusCode::OK);
}

#[tokio::test]
async fn actions_refuse_cross_site_requests() {
    let (d, rec) = dashboard(Access::Loopback);
    let host = "127.0.0.1:8686";
    // A form posted from another site carries no custom header.
    let form = request("POST", "/api/experiments/exp/stop", LOOP, host);
    assert_eq!(status(&d, form).await, StatusCode::FORBIDDEN);
    // The header with a foreign Origin, or a browser saying it is cross-site.
    let foreign = request("POST", "/api/experiments/exp/stop", LOOP, host)
        .header("x-kestrel-action", "1")
        .header(header::ORIGIN, "http://evil.example");
    assert_eq!(status(&d, foreign).await, StatusCode::FORBIDDEN);
    let cross = request("DELETE", "/api/experiments/exp", LOOP, host)
        .header("x-kestrel-action", "1")
        .header("sec-fetch-site", "cross-site");
    assert_eq!(status(&d, cross).await, StatusCode::FORBIDDEN);
    assert!(rec.0.lock().unwrap().is_empty());
    // The page's own request.
    let own = request("POST", "/api/experiments/exp/stop", LOOP, host)
        .header("x-kestrel-action", "1")
        .header(header::ORIGIN, format!("http://{host}"))
        .header("sec-fetch-site", "same-origin");
    let (s, body) = send(&d, own.body(Body::empty()).unwrap()).await;
    assert_eq!((s, body.contains("stopped exp")), (StatusCode::OK, true));
    // A refused action is a conflict with the reason; an unknown experiment is not asked.
    let del = request("DELETE", "/api/experiments/exp", LOOP, host).header("x-kestrel-action", "1");
    let (s, body) = send(&d, del.body(Body::empty()).unwrap()).await;
    assert_eq!(
        (s, body.contains("it is running")),
        (StatusCode::CONFLICT, true)
    );
    let gone =
        request("POST", "/api/experiments/nope/stop", LOOP, host).header("x-kestrel-action", "1");
    assert_eq!(status(&d, gone).await, StatusCode::NOT_FOUND);
    assert_eq!(*rec.0.lock().unwrap(), ["stop exp", "delete exp"]);
}

#[tokio::test]
async fn names_and_counts_are_bounded_and_pages_carry_strict_headers() {
    let (d, _) = dashboard(Access::Loopback);
    let host = "localhost:8686";
    let long = format!("/api/experiments/{}", "a".repeat(300));
    let (s, body) = send(
        &d,
        request("GET", &long, LOOP, host)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let tail = "/api/experiments/exp/trials/exp-0/log?tail=100000000";
    assert_eq!(
        send(
            &d,
            request("GET", tail, LOOP, host)
                .body(Body::empty())
                .unwrap()
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let r = router(d.clone())
        .oneshot(request("GET", "/", LOOP, host).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
}

#[tokio::test]
async fn documents_and_exports_are_the_clis() {
    let (d, _) = dashboard(Access::Loopback);
    let host = "localhost:1";
    let (s, body) = send(
        &d,
        request("GET", "/api/experiments/exp", LOOP, host)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["name"], "exp");
    assert!(v["yaml"].as_str().unwrap().contains("kind: Experiment"));
    assert!(v["parameters"][0]["domain"]["type"].is_string());
    let r = router(d.clone())
        .oneshot(
            request("GET", "/api/experiments/exp/export.csv", LOOP, host)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(
        r.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("exp.csv")
    );
    let (s, _) = send(
        &d,
        request("GET", "/api/experiments/nope", LOOP, host)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[test]
fn a_log_is_read_from_an_offset_or_by_its_last_lines() {
    let dir = tempfile_dir();
    let path = dir.join("trial.log");
    std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
    assert_eq!(
        api::read_log(&path, None, Some(2)).unwrap(),
        ("two\nthree\n".into(), 14)
    );
    assert_eq!(
        api::read_log(&path, Some(4), None).unwrap(),
        ("two\nthree\n".into(), 14)
    );
    assert_eq!(
        api::read_log(&path, Some(99), None).unwrap(),
        (String::new(), 14)
    );
    assert_eq!(
        api::read_log(&dir.join("none"), None, None).unwrap(),
        (String::new(), 0)
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kestrel-dashboard-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn live_views_are_bounded() {
    let (d, _) = dashboard(Access::Loopback);
    let mut open = Vec::new();
    for _ in 0..events::MAX_STREAMS {
        let r = router(d.clone())
            .oneshot(
                request("GET", "/api/events", LOOP, "localhost")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r);
    }
    let more = request("GET", "/api/experiments/exp/events", LOOP, "localhost");
    let (s, body) = send(&d, more.body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // One closes (its stream task sees the client gone): there is room again.
    open.pop();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = router(d.clone())
            .oneshot(
                request("GET", "/api/events", LOOP, "localhost")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed stream's place never came back"
        );
        tokio::task::yield_now().await;
    }
}

#[test]
fn thinning_keeps_the_ends_and_at_most_the_bound() {
    assert_eq!(api::thin(3, 10), vec![0, 1, 2]);
    assert_eq!(api::thin(10, 4), vec![0, 3, 6, 9]);
    let t = api::thin(1_000_000, api::MAX_CURVE_POINTS);
    assert_eq!(t.len(), api::MAX_CURVE_POINTS);
    assert_eq!((t[0], *t.last().unwrap()), (0, 999_999));
    assert!(t.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn a_trial_with_very_many_reports_is_sent_bounded() {
    let (d, _) = dashboard(Access::Loopback);
    let t = kestrel_core::TrialRecord::created(
        "exp",
        "exp-0".into(),
        0,
        Default::default(),
        kestrel_core::Timestamp::UNIX_EPOCH,
    );
    d.store.insert_trial(&t).unwrap();
    let logs: Vec<kestrel_core::MetricLog> = (0..(api::MAX_CURVE_POINTS * 3))
        .map(|i| kestrel_core::MetricLog {
            time: kestrel_core::Timestamp::UNIX_EPOCH,
            name: "loss".into(),
            value: i.to_string(),
        })
        .collect();
    d.store.append_metrics("exp-0", &logs).unwrap();
    let (s, body) = send(
        &d,
        request("GET", "/api/experiments/exp/reports", LOOP, "localhost")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let pts = v["trials"]["exp-0"].as_array().unwrap();
    assert_eq!(pts.len(), api::MAX_CURVE_POINTS);
    // The last report is kept with its number.
    let last = pts.last().unwrap();
    assert_eq!(last[2], Value::from(api::MAX_CURVE_POINTS * 3));
}
