use std::time::Duration;

use clap::Parser as _;
use order_command::app::{AppState, api};
use orderflow_service::auth::{Auth, AuthArgs, Claims, Role, mint_hs256};
use orderflow_testkit::{TestDatabase, fresh_database};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// The HS256 secret the test services verify with.
pub const SECRET: &str = "order-command-tests-hs256-secret-0123456789";
/// Issuer and audience the test services expect.
pub const ISSUER: &str = "orderflow";
pub const AUDIENCE: &str = "orderflow";

/// The test keys' directory (see `keys/README.md`).
pub fn keys_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/keys")
}

/// An HS256 token for `sub` in `role`, valid for an hour.
pub fn token(sub: &str, role: Role) -> String {
    let claims = Claims::new(sub, role, ISSUER, AUDIENCE, Duration::from_secs(3600));
    mint_hs256(SECRET.as_bytes(), &claims).expect("token")
}

/// A staff token (what every request carries unless it says otherwise).
pub fn staff() -> String {
    token("ada-staff", Role::Staff)
}

/// A customer token for `customer`.
pub fn customer_token(customer: Uuid) -> String {
    token(&customer.to_string(), Role::Customer)
}

/// A service token.
pub fn service() -> String {
    token("payments-gateway", Role::Service)
}

/// Authentication settings: the test secret, the test JWKS file, plus `extra` flags.
pub fn auth_args(extra: &[&str]) -> AuthArgs {
    #[derive(clap::Parser)]
    struct Args {
        #[command(flatten)]
        auth: AuthArgs,
    }
    let jwks = keys_dir().join("jwks.json");
    let mut argv = vec![
        "test".to_owned(),
        "--auth-hs256-secret".to_owned(),
        SECRET.to_owned(),
        "--auth-jwks-file".to_owned(),
        jwks.display().to_string(),
    ];
    // The suites send many requests as one staff subject; the rate limit
    // has its own test, which sets its own.
    if !extra.contains(&"--rate-per-second") {
        argv.extend(["--rate-per-second", "100000", "--rate-burst", "100000"].map(str::to_owned));
    }
    argv.extend(extra.iter().map(|s| (*s).to_owned()));
    Args::try_parse_from(argv).expect("auth args").auth
}

/// Every table of the write model.
const TABLES: [&str; 9] = [
    "customers",
    "products",
    "stock",
    "orders",
    "order_lines",
    "payments",
    "shipments",
    "outbox",
    "idempotency_keys",
];

/// A running command service on its own database.
pub struct TestApp {
    pub base: String,
    pub db: TestDatabase,
    pub http: reqwest::Client,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem of `status` and `slug`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "content type; body: {}",
            self.body
        );
        assert_eq!(
            self.body["type"],
            json!(format!("https://orderflow.dev/problems/{slug}")),
            "problem type; body: {}",
            self.body
        );
        assert_eq!(self.body["status"], json!(status));
        assert!(self.body["title"].is_string());
    }

    pub fn id(&self, field: &str) -> Uuid {
        self.body[field]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(|| panic!("no uuid {field} in {}", self.body))
    }
}

pub async fn spawn() -> TestApp {
    spawn_with_ttl(Duration::from_secs(24 * 3600)).await
}

pub async fn spawn_with_ttl(idempotency_ttl: Duration) -> TestApp {
    spawn_with(idempotency_ttl, auth_args(&[])).await
}

/// A command service verifying tokens as `auth` says.
pub async fn spawn_with(idempotency_ttl: Duration, auth: AuthArgs) -> TestApp {
    let auth = Auth::from_args(&auth).expect("auth");
    tokio::spawn(
        auth.clone()
            .maintain(tokio_util::sync::CancellationToken::new()),
    );
    let db = fresh_database("cmd").await;
    orderflow_writemodel::MIGRATOR
        .run(&db.pool)
        .await
        .expect("migrations apply");
    let state = AppState {
        pool: db.pool.clone(),
        idempotency_ttl,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, api(state, &auth)).await });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    TestApp { base, db, http }
}

impl TestApp {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        // Staff unless the request says who it is (or `authorization: -`: no token).
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        {
            request = request.bearer_auth(staff());
        }
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("authorization") && *value == "-" {
                continue;
            }
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let raw = response.bytes().await.expect("body").to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            raw,
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_with(path, body, &[]).await
    }

    pub async fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send(
            Method::POST,
            path,
            Some(body.to_string().into_bytes()),
            &all,
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(
            Method::PUT,
            path,
            Some(body.to_string().into_bytes()),
            &[("content-type", "application/json")],
        )
        .await
    }

    pub async fn customer(&self) -> Uuid {
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let reply = self
            .post(
                "/customers",
                &json!({"name": "Ada Lovelace", "email": email}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.id("id")
    }

    pub async fn product(&self, price: i64, stock: i64) -> Uuid {
        self.product_in(price, stock, "EUR").await
    }

    pub async fn product_in(&self, price: i64, stock: i64, currency: &str) -> Uuid {
        let sku = format!("SKU-{}", &Uuid::new_v4().simple().to_string()[..10]);
        let reply = self
            .post(
                "/products",
                &json!({"sku": sku, "name": "Widget", "unit_price_minor": price,
                        "currency": currency, "stock": stock}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.id("id")
    }

    pub async fn place(&self, customer: Uuid, lines: &[(Uuid, i64)]) -> Reply {
        self.post("/orders", &order_body(customer, lines)).await
    }

    /// Places an order that must succeed; returns its id.
    pub async fn placed_order(&self) -> (Uuid, Uuid) {
        let customer = self.customer().await;
        let product = self.product(1250, 100).await;
        let reply = self.place(customer, &[(product, 2)]).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        (reply.id("order_id"), product)
    }

    pub async fn stock(&self, product: Uuid) -> i64 {
        sqlx::query_scalar("SELECT available FROM stock WHERE product_id = $1")
            .bind(product)
            .fetch_one(&self.db.pool)
            .await
            .expect("stock row")
    }

    /// Row counts of every write-model table, to prove nothing was written.
    pub async fn counts(&self) -> Vec<(&'static str, i64)> {
        let mut counts = Vec::new();
        for table in TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&self.db.pool)
                .await
                .expect("count");
            counts.push((table, n));
        }
        counts
    }

    /// A digest of every row of every write-model table: equal before and
    /// after a request exactly when it wrote nothing (updates included).
    pub async fn snapshot(&self) -> Vec<(&'static str, String)> {
        let mut digests = Vec::new();
        for table in TABLES {
            let digest: Option<String> = sqlx::query_scalar(&format!(
                "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"
            ))
            .fetch_one(&self.db.pool)
            .await
            .expect("digest");
            digests.push((table, digest.unwrap_or_default()));
        }
        digests
    }

    /// Envelopes in the outbox for `order`, in id order.
    pub async fn outbox(&self, order: Uuid) -> Vec<Value> {
        sqlx::query_scalar("SELECT envelope FROM outbox WHERE aggregate_id = $1 ORDER BY id")
            .bind(order)
            .fetch_all(&self.db.pool)
            .await
            .expect("outbox rows")
    }
}

pub fn order_body(customer: Uuid, lines: &[(Uuid, i64)]) -> Value {
    json!({
        "customer_id": customer,
        "lines": lines.iter().map(|(p, q)| json!({"product_id": p, "quantity": q})).collect::<Vec<_>>(),
        "shipping_address": {"line1": "1 Analytical Way", "city": "London", "postal_code": "N1 9GU", "country": "GB"}
    })
}
