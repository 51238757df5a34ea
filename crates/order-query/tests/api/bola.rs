//! Object-level authorization on the query API, as a generated matrix:
//! every endpoint (and its consistency variants) × caller {own, other
//! customer's, no token, bad token, staff, service}. Single orders: 200 for
//! the owner, staff and service, 404 for another customer, 401 without a
//! valid token. Lists and search: the other customer's answer holds none
//! of the owner's orders, whatever the parameters say. Reads write nothing;
//! what is checked is that nothing of the owner's leaks.

#![allow(clippy::print_stdout)] // the coverage is the output

use std::time::Duration;

use futures::StreamExt as _;
use orderflow_service::auth::Role;

use crate::world::{Reply, customer_token, get, get_as, shop, staff, token, world};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Own,
    Other,
    NoToken,
    BadToken,
    Staff,
    Service,
}

const CALLERS: [Caller; 6] = [
    Caller::Own,
    Caller::Other,
    Caller::NoToken,
    Caller::BadToken,
    Caller::Staff,
    Caller::Service,
];

async fn stream_status(url: &str, token: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    // The status is known with the headers; dropping the response closes it.
    request.send().await.expect("stream").status().as_u16()
}

#[tokio::test]
async fn bola_matrix_every_endpoint_and_caller() {
    let w = world();
    let a = shop().await;
    let b = shop().await;
    let (order, version) = a.order().await;
    let q = &w.query;
    // Visible everywhere first, so every "absent" below is authorization.
    assert_eq!(
        get(&format!("{q}/orders/{order}?min_version={version}"))
            .await
            .status,
        200
    );
    orderflow_testkit::eventually("the order in the index", Duration::from_secs(60), || {
        let url = format!("{q}/orders/search?q={}", a.tag);
        async move { (get(&url).await.body["items"].as_array().map(Vec::len) == Some(1)).then_some(()) }
    })
    .await;
    let single = [
        format!("/orders/{order}"),
        format!("/orders/{order}?consistency=strong"),
        format!("/orders/{order}?min_version={version}"),
        format!("/orders/{order}/status"),
        format!("/orders/{order}/status?min_version={version}"),
        format!("/orders/{order}/status/stream"),
    ];
    // The unfiltered list, narrowed to the instant the order was placed:
    // the shared world's other tests keep placing orders, which would push
    // it off a first page.
    let placed_at = get(&format!("{q}/orders/{order}")).await.body["placed_at"]
        .as_str()
        .expect("placed_at")
        .to_owned();
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let from = time::OffsetDateTime::parse(&placed_at, rfc3339).expect("placed_at is RFC 3339");
    let to = (from + time::Duration::milliseconds(1))
        .format(rfc3339)
        .expect("format");
    let lists = [
        format!("/orders?placed_from={placed_at}&placed_to={to}&limit=100"),
        format!("/orders?customer_id={}", a.customer),
        format!("/orders/search?q={}", a.tag),
        format!("/orders/search?customer_id={}", a.customer),
        // Query syntax in the text cannot widen the subject's filter.
        format!(
            "/orders/search?q={}",
            crate::lists::urlencode_all(&format!("{} OR customer_id:{} OR *", a.tag, a.customer))
        ),
    ];
    let bad = {
        let claims = orderflow_service::auth::Claims::new(
            &a.customer,
            Role::Customer,
            "orderflow",
            "orderflow",
            Duration::from_secs(600),
        );
        orderflow_service::auth::mint_hs256(b"a-key-that-is-not-the-world-secret!!", &claims)
            .expect("token")
    };
    let token_of = |caller: Caller| match caller {
        Caller::Own => Some(customer_token(&a.customer)),
        Caller::Other => Some(customer_token(&b.customer)),
        Caller::NoToken => None,
        Caller::BadToken => Some(bad.clone()),
        Caller::Staff => Some(staff()),
        Caller::Service => Some(token("orderctl", Role::Service)),
    };
    let mut printed = String::new();
    let mut cells = 0;
    for path in &single {
        let mut row = Vec::new();
        for caller in CALLERS {
            let want = match caller {
                Caller::Own | Caller::Staff | Caller::Service => 200,
                Caller::Other => 404,
                Caller::NoToken | Caller::BadToken => 401,
            };
            let url = format!("{q}{path}");
            let token = token_of(caller);
            let status = if path.ends_with("/stream") {
                stream_status(&url, token.as_deref()).await
            } else {
                let reply: Reply = get_as(&url, token.as_deref()).await;
                if reply.status != 200 {
                    let text = reply.body.to_string();
                    assert!(!text.contains(&a.tag), "{path} as {caller:?} leaks: {text}");
                }
                reply.status.as_u16()
            };
            assert_eq!(status, want, "GET {path} as {caller:?}");
            row.push(status.to_string());
            cells += 1;
        }
        printed.push_str(&format!("GET {path:<60} {row:?}\n"));
    }
    for path in &lists {
        let mut row = Vec::new();
        for caller in CALLERS {
            let url = format!("{q}{path}");
            let reply = get_as(&url, token_of(caller).as_deref()).await;
            let cell = match caller {
                Caller::NoToken | Caller::BadToken => {
                    reply.assert_problem(401, "unauthorized");
                    "401".to_owned()
                }
                _ => {
                    assert_eq!(
                        reply.status, 200,
                        "GET {path} as {caller:?}: {}",
                        reply.body
                    );
                    let holds = reply.body["items"]
                        .as_array()
                        .expect("items")
                        .iter()
                        .any(|i| i["order_id"] == order.as_str());
                    let text = reply.body.to_string();
                    let expected = caller != Caller::Other;
                    // The injection case matches nothing by text for anyone
                    // but must never show the order to the other customer.
                    if caller == Caller::Other || !path.contains("OR") {
                        assert_eq!(holds, expected, "GET {path} as {caller:?}: {text}");
                    }
                    if caller == Caller::Other {
                        assert!(!text.contains(&a.tag), "GET {path} as other leaks: {text}");
                    }
                    format!("200{}", if holds { "+own" } else { "-own" })
                }
            };
            row.push(cell);
            cells += 1;
        }
        printed.push_str(&format!("GET {path:<60} {row:?}\n"));
    }
    println!(
        "query API BOLA matrix: {} endpoints x {} callers = {cells} cells (+own: the owner's order is in the page)\n{:<64} {CALLERS:?}\n{printed}",
        single.len() + lists.len(),
        CALLERS.len(),
        ""
    );
    assert_eq!(cells, (single.len() + lists.len()) * CALLERS.len());
}

/// A subject holds at most MAX_STREAMS_PER_SUBJECT (4) status streams: the
/// fifth is 429 with `Retry-After`, another subject is not affected, and a
/// closed stream frees its slot.
#[tokio::test]
async fn status_streams_are_bounded_per_subject() {
    let w = world();
    let a = shop().await;
    let b = shop().await;
    let (order, version) = a.order().await;
    let (b_order, b_version) = b.order().await;
    for (o, v) in [(&order, version), (&b_order, b_version)] {
        assert_eq!(
            get(&format!("{}/orders/{o}/status?min_version={v}", w.query))
                .await
                .status,
            200
        );
    }
    let http = reqwest::Client::new();
    let open = |o: &str, customer: &str| {
        http.get(format!("{}/orders/{o}/status/stream", w.query))
            .bearer_auth(customer_token(customer))
            .send()
    };
    let mut streams = Vec::new();
    for _ in 0..4 {
        let response = open(&order, &a.customer).await.expect("stream");
        assert_eq!(response.status(), 200);
        streams.push(response.bytes_stream());
    }
    let fifth = open(&order, &a.customer).await.expect("stream");
    assert_eq!(fifth.status(), 429);
    assert!(fifth.headers().get("retry-after").is_some());
    let other = open(&b_order, &b.customer).await.expect("stream");
    assert_eq!(other.status(), 200, "another subject has its own streams");
    // Read one event so the first stream is surely established, then close it.
    let mut first = streams.remove(0);
    assert!(first.next().await.is_some());
    drop(first);
    orderflow_testkit::eventually(
        "a closed stream to free its slot",
        Duration::from_secs(30),
        || {
            let again = open(&order, &a.customer);
            async move { (again.await.ok()?.status() == 200).then_some(()) }
        },
    )
    .await;
}
