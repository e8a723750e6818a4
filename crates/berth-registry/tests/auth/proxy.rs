//! The client address behind a reverse proxy: believed from the proxies the
//! operator trusts (so that clients behind one proxy are told apart by the
//! failure limits), ignored from anyone else (so that no client picks its
//! own address to dodge them).

use crate::support::{ADMIN_PASSWORD, TestApp};

/// Ten wrong passwords for `admin` sent with `client`, each carrying
/// `X-Forwarded-For: <forwarded(i)>`; the statuses.
async fn ten_failures(
    app: &TestApp,
    client: &reqwest::Client,
    forwarded: impl Fn(usize) -> String,
) -> Vec<u16> {
    let query = app.token_query(&["repository:admin/app:pull"]);
    let mut statuses = Vec::new();
    for i in 0..10 {
        let resp = app
            .send(
                client
                    .get(app.url(&format!("/token?{query}")))
                    .header("x-forwarded-for", forwarded(i))
                    .basic_auth("admin", Some(format!("wrong-{i}"))),
            )
            .await;
        statuses.push(resp.status);
    }
    statuses
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_told_apart_by_their_forwarded_address() {
    let app = TestApp::start_with(|c| {
        c.trusted_proxies =
            berth_registry::server::proxy::TrustedProxies::parse("127.0.0.3").unwrap();
    })
    .await;
    let proxy = app.client_from("127.0.0.3".parse().unwrap());
    let statuses = ten_failures(&app, &proxy, |_| "198.51.100.1".to_owned()).await;
    assert_eq!(statuses, vec![401; 10]);
    let query = app.token_query(&["repository:admin/app:pull"]);
    let blocked = app
        .send(
            proxy
                .get(app.url(&format!("/token?{query}")))
                .header("x-forwarded-for", "198.51.100.1")
                .basic_auth("admin", Some("wrong-again")),
        )
        .await;
    blocked.assert_error(429, "TOOMANYREQUESTS");
    // Another client behind the same proxy is not the one that failed.
    let other = app
        .send(
            proxy
                .get(app.url(&format!("/token?{query}")))
                .header("x-forwarded-for", "198.51.100.2")
                .basic_auth("admin", Some(ADMIN_PASSWORD)),
        )
        .await;
    assert_eq!(other.status, 200, "{}", other.text());
}

#[tokio::test]
async fn a_client_that_is_no_trusted_proxy_cannot_pick_its_own_address() {
    let app = TestApp::start_with(|c| {
        c.trusted_proxies =
            berth_registry::server::proxy::TrustedProxies::parse("127.0.0.3").unwrap();
    })
    .await;
    let direct = app.client_from("127.0.0.4".parse().unwrap());
    // A new forwarded address on every attempt changes nothing.
    let statuses = ten_failures(&app, &direct, |i| format!("203.0.113.{i}")).await;
    assert_eq!(statuses, vec![401; 10]);
    let query = app.token_query(&["repository:admin/app:pull"]);
    let blocked = app
        .send(
            direct
                .get(app.url(&format!("/token?{query}")))
                .header("x-forwarded-for", "203.0.113.99")
                .header("forwarded", "for=203.0.113.98")
                .basic_auth("admin", Some(ADMIN_PASSWORD)),
        )
        .await;
    blocked.assert_error(429, "TOOMANYREQUESTS");
}
