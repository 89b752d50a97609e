//! 50 concurrent requests on one session, each setting a different field: all 50 survive.
//! This is the lost-update case that whole-record session stores get wrong.

use axum::{
    body::Body,
    extract::Path,
    http::{header, Request, StatusCode},
    routing::{get, post},
    Router,
};
use http_body_util::BodyExt;
use session_runtime::{Key, MemoryStore, SessionData, SessionLayer, TypedSession};
use tower::ServiceExt;

#[derive(SessionData)]
struct Wide {
    f00: Option<u32>,
    f01: Option<u32>,
    f02: Option<u32>,
    f03: Option<u32>,
    f04: Option<u32>,
    f05: Option<u32>,
    f06: Option<u32>,
    f07: Option<u32>,
    f08: Option<u32>,
    f09: Option<u32>,
    f10: Option<u32>,
    f11: Option<u32>,
    f12: Option<u32>,
    f13: Option<u32>,
    f14: Option<u32>,
    f15: Option<u32>,
    f16: Option<u32>,
    f17: Option<u32>,
    f18: Option<u32>,
    f19: Option<u32>,
    f20: Option<u32>,
    f21: Option<u32>,
    f22: Option<u32>,
    f23: Option<u32>,
    f24: Option<u32>,
    f25: Option<u32>,
    f26: Option<u32>,
    f27: Option<u32>,
    f28: Option<u32>,
    f29: Option<u32>,
    f30: Option<u32>,
    f31: Option<u32>,
    f32: Option<u32>,
    f33: Option<u32>,
    f34: Option<u32>,
    f35: Option<u32>,
    f36: Option<u32>,
    f37: Option<u32>,
    f38: Option<u32>,
    f39: Option<u32>,
    f40: Option<u32>,
    f41: Option<u32>,
    f42: Option<u32>,
    f43: Option<u32>,
    f44: Option<u32>,
    f45: Option<u32>,
    f46: Option<u32>,
    f47: Option<u32>,
    f48: Option<u32>,
    f49: Option<u32>,
}

async fn set(Path(n): Path<u32>, mut wide: TypedSession<Wide>) -> StatusCode {
    match n {
        0 => wide.set_f00(Some(0)),
        1 => wide.set_f01(Some(1)),
        2 => wide.set_f02(Some(2)),
        3 => wide.set_f03(Some(3)),
        4 => wide.set_f04(Some(4)),
        5 => wide.set_f05(Some(5)),
        6 => wide.set_f06(Some(6)),
        7 => wide.set_f07(Some(7)),
        8 => wide.set_f08(Some(8)),
        9 => wide.set_f09(Some(9)),
        10 => wide.set_f10(Some(10)),
        11 => wide.set_f11(Some(11)),
        12 => wide.set_f12(Some(12)),
        13 => wide.set_f13(Some(13)),
        14 => wide.set_f14(Some(14)),
        15 => wide.set_f15(Some(15)),
        16 => wide.set_f16(Some(16)),
        17 => wide.set_f17(Some(17)),
        18 => wide.set_f18(Some(18)),
        19 => wide.set_f19(Some(19)),
        20 => wide.set_f20(Some(20)),
        21 => wide.set_f21(Some(21)),
        22 => wide.set_f22(Some(22)),
        23 => wide.set_f23(Some(23)),
        24 => wide.set_f24(Some(24)),
        25 => wide.set_f25(Some(25)),
        26 => wide.set_f26(Some(26)),
        27 => wide.set_f27(Some(27)),
        28 => wide.set_f28(Some(28)),
        29 => wide.set_f29(Some(29)),
        30 => wide.set_f30(Some(30)),
        31 => wide.set_f31(Some(31)),
        32 => wide.set_f32(Some(32)),
        33 => wide.set_f33(Some(33)),
        34 => wide.set_f34(Some(34)),
        35 => wide.set_f35(Some(35)),
        36 => wide.set_f36(Some(36)),
        37 => wide.set_f37(Some(37)),
        38 => wide.set_f38(Some(38)),
        39 => wide.set_f39(Some(39)),
        40 => wide.set_f40(Some(40)),
        41 => wide.set_f41(Some(41)),
        42 => wide.set_f42(Some(42)),
        43 => wide.set_f43(Some(43)),
        44 => wide.set_f44(Some(44)),
        45 => wide.set_f45(Some(45)),
        46 => wide.set_f46(Some(46)),
        47 => wide.set_f47(Some(47)),
        48 => wide.set_f48(Some(48)),
        49 => wide.set_f49(Some(49)),
        _ => return StatusCode::NOT_FOUND,
    }
    // Widen the window between load and save, as a slow handler would.
    tokio::task::yield_now().await;
    StatusCode::OK
}

async fn count(wide: TypedSession<Wide>) -> String {
    let present = [
        wide.f00().is_some(),
        wide.f01().is_some(),
        wide.f02().is_some(),
        wide.f03().is_some(),
        wide.f04().is_some(),
        wide.f05().is_some(),
        wide.f06().is_some(),
        wide.f07().is_some(),
        wide.f08().is_some(),
        wide.f09().is_some(),
        wide.f10().is_some(),
        wide.f11().is_some(),
        wide.f12().is_some(),
        wide.f13().is_some(),
        wide.f14().is_some(),
        wide.f15().is_some(),
        wide.f16().is_some(),
        wide.f17().is_some(),
        wide.f18().is_some(),
        wide.f19().is_some(),
        wide.f20().is_some(),
        wide.f21().is_some(),
        wide.f22().is_some(),
        wide.f23().is_some(),
        wide.f24().is_some(),
        wide.f25().is_some(),
        wide.f26().is_some(),
        wide.f27().is_some(),
        wide.f28().is_some(),
        wide.f29().is_some(),
        wide.f30().is_some(),
        wide.f31().is_some(),
        wide.f32().is_some(),
        wide.f33().is_some(),
        wide.f34().is_some(),
        wide.f35().is_some(),
        wide.f36().is_some(),
        wide.f37().is_some(),
        wide.f38().is_some(),
        wide.f39().is_some(),
        wide.f40().is_some(),
        wide.f41().is_some(),
        wide.f42().is_some(),
        wide.f43().is_some(),
        wide.f44().is_some(),
        wide.f45().is_some(),
        wide.f46().is_some(),
        wide.f47().is_some(),
        wide.f48().is_some(),
        wide.f49().is_some(),
    ];
    present.iter().filter(|p| **p).count().to_string()
}

async fn start(mut wide: TypedSession<Wide>) {
    wide.set_f00(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_writes_to_different_fields_all_survive() {
    let app = Router::new()
        .route("/start", post(start))
        .route("/set/{n}", post(set))
        .route("/count", get(count))
        .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));

    let response = app
        .clone()
        .oneshot(Request::post("/start").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let (app, cookie, barrier) = (app.clone(), cookie.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let request = Request::post(format!("/set/{n}"))
                    .header(header::COOKIE, cookie)
                    .body(Body::empty())
                    .unwrap();
                app.oneshot(request).await.unwrap().status()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }

    let response = app
        .oneshot(
            Request::get("/count")
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"50");
}
