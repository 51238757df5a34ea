use std::sync::OnceLock;
use std::time::Duration;

use clap::Parser as _;
use orderflow_service::auth::{Claims, Role, mint_hs256};
use orderflow_testkit::{
    fresh_read_database, fresh_topics, fresh_write_database, kafka_brokers, redis_url, search_url,
    unique_name,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// The HS256 secret both services of the world verify tokens with.
pub const SECRET: &str = "order-query-tests-hs256-secret-0123456789";

/// A token for `sub` in `role`, valid for an hour.
pub fn token(sub: &str, role: Role) -> String {
    let claims = Claims::new(
        sub,
        role,
        "orderflow",
        "orderflow",
        Duration::from_secs(3600),
    );
    mint_hs256(SECRET.as_bytes(), &claims).expect("token")
}

/// The staff token every helper request carries unless told otherwise.
pub fn staff() -> String {
    token("query-tests-staff", Role::Staff)
}

/// A customer's token.
pub fn customer_token(customer: &str) -> String {
    token(customer, Role::Customer)
}

/// Authentication flags of the world's services: the test secret, and
/// limits high enough for suites that send many requests as one subject.
const AUTH_FLAGS: [&str; 6] = [
    "--auth-hs256-secret",
    SECRET,
    "--rate-per-second",
    "100000",
    "--rate-burst",
    "100000",
];

/// Where the shared world's services listen.
#[derive(Debug, Clone)]
pub struct World {
    pub command: String,
    pub query: String,
    pub redis_prefix: String,
    /// The write database, the events topic and the brokers, for a private
    /// read side ([`Lagging`]).
    pub write_url: String,
    pub topic: String,
    pub brokers: String,
}

/// The world, started once per test binary on a runtime of its own (tests
/// each have theirs and come and go).
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("world runtime");
            runtime.block_on(async move {
                let world = start().await;
                tx.send(world).expect("world handed over");
                std::future::pending::<()>().await;
            });
        });
        rx.recv_timeout(Duration::from_secs(180))
            .expect("the world starts")
    })
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

async fn start() -> World {
    // Schemas and topics come from the topology code `orderctl setup` runs.
    let write = fresh_write_database("query_write").await;
    let read = fresh_read_database("query_read").await;
    let topic = fresh_topics("query", 6).await.events;
    let alias = unique_name("query_orders");
    let prefix = format!("{}:", unique_name("query"));
    let brokers = kafka_brokers();
    let token = tokio_util::sync::CancellationToken::new();

    let command_port = port();
    let command_addr = format!("127.0.0.1:{command_port}");
    spawn_tethered(
        "order-command",
        &[
            &[
                "--http-addr",
                &command_addr,
                "--write-database-url",
                &write.url,
            ][..],
            &AUTH_FLAGS,
        ]
        .concat(),
    );
    spawn_tethered(
        "outbox-relay",
        &[
            "--ops-addr",
            &format!("127.0.0.1:{}", port()),
            "--write-database-url",
            &write.url,
            "--kafka-brokers",
            &brokers,
            "--events-topic",
            &topic,
            "--poll-interval",
            "200ms",
        ],
    );
    let common = |group: &str, ops: u16| {
        projector_args(
            &read.url,
            &brokers,
            &topic,
            &format!("{group}-{topic}"),
            ops,
        )
    };
    spawn_process("summary-projector", &common("summary", port())).tether();
    let mut search_args = common("search", port());
    search_args.extend([
        "--search-url".into(),
        search_url(),
        "--search-alias".into(),
        alias.clone(),
    ]);
    spawn_process("search-projector", &search_args).tether();
    let mut status_args = common("status", port());
    status_args.extend([
        "--redis-url".into(),
        redis_url(),
        "--redis-key-prefix".into(),
        prefix.clone(),
    ]);
    spawn_process("status-projector", &status_args).tether();

    let query_port = port();
    let query = query_settings(QueryTarget {
        port: query_port,
        read_url: &read.url,
        write_url: &write.url,
        prefix: &prefix,
        alias: &alias,
        brokers: &brokers,
        topic: &topic,
        groups: &topic,
        consistency_wait: "5s",
    });
    tokio::spawn(order_query::run(query, token.clone()));

    let world = World {
        command: format!("http://127.0.0.1:{command_port}"),
        query: format!("http://127.0.0.1:{query_port}"),
        redis_prefix: prefix,
        write_url: write.url.clone(),
        topic: topic.clone(),
        brokers: brokers.clone(),
    };
    for base in [&world.command, &world.query] {
        ready(base).await;
    }
    // Ready is not flowing: on a fresh broker the projectors' first group
    // join can take a while. One order visible in all three read models
    // proves the whole pipeline runs before any test starts.
    let warm_up = shop_on(&world).await;
    let (order, version) = warm_up.order_on(&world).await;
    for path in [
        format!("/orders/{order}"),
        format!("/orders/{order}/status"),
    ] {
        orderflow_testkit::eventually(
            "the pipeline to carry a first order",
            Duration::from_secs(180),
            || {
                let url = format!("{}{path}?min_version={version}", world.query);
                async move { (get(&url).await.status == 200).then_some(()) }
            },
        )
        .await;
    }
    orderflow_testkit::eventually(
        "the search index to carry a first order",
        Duration::from_secs(180),
        || {
            let url = format!("{}/orders/search?q={}", world.query, warm_up.tag);
            async move {
                (get(&url).await.body["items"].as_array().map(Vec::len) == Some(1)).then_some(())
            }
        },
    )
    .await;
    std::mem::forget(token);
    world
}

/// A service binary run as a process, as deployed, through `sh` holding a
/// pipe from this test process: when the test binary ends, however it ends,
/// the pipe closes and `sh` stops the service, so no process outlives the
/// shared world (which lives in a static and is never dropped).
pub struct Tethered {
    child: std::process::Child,
}

impl Tethered {
    /// Keeps it running until this test binary exits.
    fn tether(self) {
        std::mem::forget(self);
    }

    /// Stops it with SIGTERM (through `sh`'s trap) and waits for the end.
    async fn stop(mut self) {
        let _ = self.child.stdin.take();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a service did not stop within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn spawn_process(name: &str, args: &[String]) -> Tethered {
    let script = r#"trap 'kill -TERM $child 2>/dev/null; wait $child' EXIT; "$0" "$@" </dev/null & child=$!; read -r _ || true"#;
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(system_tests::binary(name))
        .args(args.iter().skip(1))
        .env("RUST_LOG", "warn")
        .env("SHUTDOWN_GRACE", "5s")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    Tethered { child }
}

fn spawn_tethered(name: &str, args: &[&str]) {
    let args: Vec<String> = std::iter::once(name)
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    spawn_process(name, &args).tether();
}

fn projector_args(
    read_url: &str,
    brokers: &str,
    topic: &str,
    group: &str,
    ops: u16,
) -> Vec<String> {
    [
        "projector",
        "--ops-addr",
        &format!("127.0.0.1:{ops}"),
        "--read-database-url",
        read_url,
        "--kafka-brokers",
        brokers,
        "--events-topic",
        topic,
        "--consumer-group",
        group,
        "--batch-wait",
        "5ms",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Where an order-query instance reads.
pub struct QueryTarget<'a> {
    port: u16,
    read_url: &'a str,
    write_url: &'a str,
    prefix: &'a str,
    alias: &'a str,
    brokers: &'a str,
    topic: &'a str,
    /// Suffix of the projectors' consumer groups (`summary-<groups>`...).
    groups: &'a str,
    consistency_wait: &'a str,
}

fn query_settings(t: QueryTarget<'_>) -> order_query::Settings {
    query_settings_with(t, &[])
}

/// The query service's settings for `t`, plus `extra` flags.
pub fn query_settings_with(t: QueryTarget<'_>, extra: &[&str]) -> order_query::Settings {
    let (topic, groups) = (t.topic, t.groups);
    let args = [
        "order-query",
        "--http-addr",
        &format!("127.0.0.1:{}", t.port),
        "--read-database-url",
        t.read_url,
        "--write-database-url",
        t.write_url,
        "--redis-url",
        &redis_url(),
        "--redis-key-prefix",
        t.prefix,
        "--search-url",
        &search_url(),
        "--search-alias",
        t.alias,
        "--kafka-brokers",
        t.brokers,
        "--events-topic",
        topic,
        "--summary-group",
        &format!("summary-{groups}"),
        "--search-group",
        &format!("search-{groups}"),
        "--status-group",
        &format!("status-{groups}"),
        "--consistency-wait",
        t.consistency_wait,
        "--heartbeat",
        "1s",
        "--level0",
        "true",
    ];
    let args = args
        .iter()
        .copied()
        .chain(AUTH_FLAGS)
        .chain(extra.iter().copied());
    order_query::Settings::try_parse_from(args).expect("query settings")
}

async fn ready(base: &str) {
    let http = reqwest::Client::new();
    orderflow_testkit::eventually("the services to be ready", Duration::from_secs(120), || {
        let url = format!("{base}/readyz");
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        }
    })
    .await;
}

/// A private read side on the world's write database and topic: its own
/// read database, summary and status projectors (consumer groups and key
/// prefix of its own) and its own order-query (consistency bound 1 s). The
/// test owning it can stop its projectors and start them again, so a read
/// with a token meets a read model that really lags; the shared world's
/// projectors, and so every other test, carry on meanwhile.
pub struct Lagging {
    pub query: String,
    read_url: String,
    prefix: String,
    /// Suffix of this pipeline's consumer groups.
    groups: String,
    projectors: Option<Vec<Tethered>>,
    service: tokio_util::sync::CancellationToken,
}

impl Lagging {
    pub async fn start() -> Self {
        let w = world();
        let read = fresh_read_database("query_lagging").await;
        let prefix = format!("{}:", unique_name("lagging"));
        let service = tokio_util::sync::CancellationToken::new();
        let port = port();
        let groups = unique_name("lagging");
        let query = query_settings(QueryTarget {
            port,
            read_url: &read.url,
            write_url: &w.write_url,
            prefix: &prefix,
            alias: &unique_name("lagging_orders"),
            brokers: &w.brokers,
            topic: &w.topic,
            groups: &groups,
            consistency_wait: "1s",
        });
        tokio::spawn(order_query::run(query, service.clone()));
        let mut lagging = Self {
            query: format!("http://127.0.0.1:{port}"),
            read_url: read.url.clone(),
            prefix,
            groups,
            projectors: None,
            service,
        };
        lagging.start_projectors();
        ready(&lagging.query).await;
        lagging
    }

    /// Starts the summary and status projectors (again), from their groups'
    /// committed offsets.
    pub fn start_projectors(&mut self) {
        assert!(self.projectors.is_none(), "projectors already running");
        let w = world();
        let args = |name: &str| {
            projector_args(
                &self.read_url,
                &w.brokers,
                &w.topic,
                &format!("{name}-{}", self.groups),
                port(),
            )
        };
        let summary = args("summary");
        let mut status_args = args("status");
        status_args.extend([
            "--redis-url".into(),
            redis_url(),
            "--redis-key-prefix".into(),
            self.prefix.clone(),
        ]);
        self.projectors = Some(vec![
            spawn_process("summary-projector", &summary),
            spawn_process("status-projector", &status_args),
        ]);
    }

    /// Stops both projectors and waits until they have exited: from here on
    /// nothing moves this pipeline's read models.
    pub async fn stop_projectors(&mut self) {
        let projectors = self.projectors.take().expect("projectors running");
        for projector in projectors {
            projector.stop().await;
        }
    }
}

impl Drop for Lagging {
    fn drop(&mut self) {
        // Dropping the tethers' pipes stops the projectors.
        self.projectors.take();
        self.service.cancel();
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        assert_eq!(
            self.body["type"],
            json!(format!("https://orderflow.dev/problems/{slug}")),
            "{}",
            self.body
        );
    }
}

/// A GET as staff.
pub async fn get(url: &str) -> Reply {
    get_as(url, Some(&staff())).await
}

/// A GET with `token` (none: no Authorization header).
pub async fn get_as(url: &str, token: Option<&str>) -> Reply {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn post(url: &str, body: Value) -> Reply {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(staff())
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// A customer and a product of this test's own.
pub struct Shop {
    pub customer: String,
    pub product: String,
    pub tag: String,
}

pub async fn shop() -> Shop {
    shop_on(world()).await
}

async fn shop_on(w: &World) -> Shop {
    let tag = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let customer = post(
        &format!("{}/customers", w.command),
        json!({"name": format!("Quinn {tag}"), "email": format!("quinn-{tag}@example.com")}),
    )
    .await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    let product = post(
        &format!("{}/products", w.command),
        json!({"sku": format!("Q-{tag}"), "name": format!("Zanzibar teapot {tag}"), "unit_price_minor": 1999, "currency": "EUR", "stock": 100000}),
    )
    .await;
    assert_eq!(product.status, 201, "{}", product.body);
    Shop {
        customer: customer.body["id"].as_str().expect("id").to_owned(),
        product: product.body["id"].as_str().expect("id").to_owned(),
        tag,
    }
}

impl Shop {
    /// Places an order; returns (order id, version).
    pub async fn order(&self) -> (String, i64) {
        self.order_on(world()).await
    }

    async fn order_on(&self, w: &World) -> (String, i64) {
        let reply = post(
            &format!("{}/orders", w.command),
            json!({"customer_id": self.customer, "lines": [{"product_id": self.product, "quantity": 2}],
                   "shipping_address": {"line1": "1 Query Lane", "city": "Bath", "postal_code": "BA1", "country": "GB"}}),
        )
        .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        (
            reply.body["order_id"].as_str().expect("id").to_owned(),
            reply.body["version"].as_i64().expect("version"),
        )
    }

    /// Runs a lifecycle command; returns the new version.
    pub async fn command(&self, order: &str, action: &str, body: Value) -> i64 {
        let reply = post(
            &format!("{}/orders/{order}/{action}", world().command),
            body,
        )
        .await;
        assert_eq!(reply.status, 200, "{action}: {}", reply.body);
        reply.body["version"].as_i64().expect("version")
    }
}
