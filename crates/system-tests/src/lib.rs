//! Running the built service binaries as real processes for system tests.
//!
//! The binaries are the ones `cargo build --workspace --bins` puts next to
//! the test executable's folder (`scripts/test` builds them first); a
//! missing one fails the test with the command that builds it.
//!
//! A [`Pipeline`] starts every service with its own Postgres role and Redis
//! user ([`access`]), as a deployment does, so every system test also
//! proves the grants `orderctl setup` gives are enough.

pub mod access;

pub mod traffic;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A service binary running as a child process; killed when dropped.
#[derive(Debug)]
pub struct ServiceProcess {
    pub name: &'static str,
    pub child: Child,
    /// Where its `/readyz` is.
    pub base: String,
}

/// Path of a workspace binary next to the running test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .expect("target dir");
    assert!(
        path.exists(),
        "{} is missing: build the services first with `cargo build --workspace --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

impl ServiceProcess {
    /// Starts `name` with `env`, its ops/HTTP address on `port`.
    pub fn start(name: &'static str, port: u16, env: &[(&str, String)]) -> Self {
        Self::start_logging(name, port, env, None)
    }

    /// [`ServiceProcess::start`], its stdout and stderr written to `log`
    /// when given (for tests that read what a service logs).
    pub fn start_logging(
        name: &'static str,
        port: u16,
        env: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> Self {
        let mut command = Command::new(binary(name));
        for (key, value) in env {
            command.env(key, value);
        }
        if !env.iter().any(|(key, _)| *key == "RUST_LOG") {
            command.env("RUST_LOG", "warn");
        }
        let (stdout, stderr) = match log {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
                let copy = file.try_clone().expect("log file handle");
                (Stdio::from(file), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::inherit()),
        };
        let child = command
            .env("SHUTDOWN_GRACE", "5s")
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            name,
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to end.
    pub async fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM {} failed", self.name);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} still running {timeout:?} after SIGTERM",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&mut self, timeout: Duration) {
        self.answers("/readyz", timeout).await;
    }

    /// Waits until `/healthz` answers 200 (a service whose dependencies are
    /// down is live but never ready).
    pub async fn live(&mut self, timeout: Duration) {
        self.answers("/healthz", timeout).await;
    }

    /// Waits until `path` answers 200, failing at once if the process ends.
    async fn answers(&mut self, path: &str, timeout: Duration) {
        let url = format!("{}{path}", self.base);
        let name = self.name;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{name} exited during start-up: {status}");
            }
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: no 200 within {timeout:?} at {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One pipeline's isolated stores (databases, topic, index alias, Redis key
/// prefix) and the environment its processes share.
#[derive(Debug)]
pub struct Pipeline {
    pub write: orderflow_testkit::TestDatabase,
    pub read: orderflow_testkit::TestDatabase,
    pub topic: String,
    pub alias: String,
    pub prefix: String,
    /// The services' roles and users, made by `orderctl setup`.
    pub access: access::Access,
}

impl Pipeline {
    /// Fresh, empty stores named after `name`, with the topology applied
    /// the way `scripts/run` and the deployments apply it: by running
    /// `orderctl setup` (the binary), which migrates both databases and
    /// creates the events topic and, under its default derived name, the
    /// dead-letter topic, and gives each service its role and Redis user.
    /// The services then start with `MIGRATE_ON_START=false` and their own
    /// credentials, as they do when a setup job owns the schema.
    pub async fn fresh(name: &str) -> Self {
        let pipeline = Self {
            write: orderflow_testkit::fresh_database(&format!("{name}_write")).await,
            read: orderflow_testkit::fresh_database(&format!("{name}_read")).await,
            topic: orderflow_testkit::unique_name(name).replace('_', "-"),
            alias: orderflow_testkit::unique_name(&format!("{name}_orders")),
            prefix: format!("{}:", orderflow_testkit::unique_name(name)),
            access: access::Access::fresh(name),
        };
        let setup = pipeline.orderctl(&["setup"]).await;
        assert!(
            setup.status.success(),
            "orderctl setup failed: {}{}",
            text(&setup.stdout),
            text(&setup.stderr)
        );
        pipeline
    }

    /// The dead-letter topic, as the projectors derive it.
    pub fn dlq_topic(&self) -> String {
        format!("{}.dlq", self.topic)
    }

    /// What every process of this pipeline is told, `group` naming its
    /// consumer group.
    pub fn env(&self, group: &str) -> Vec<(&'static str, String)> {
        vec![
            ("READ_DATABASE_URL", self.read.url.clone()),
            ("WRITE_DATABASE_URL", self.write.url.clone()),
            ("KAFKA_BROKERS", orderflow_testkit::kafka_brokers()),
            ("EVENTS_TOPIC", self.topic.clone()),
            ("MIGRATE_ON_START", "false".into()),
            ("CONSUMER_GROUP", format!("{group}-{}", self.topic)),
            // Where orderctl and order-query look for the projectors' groups.
            ("SUMMARY_GROUP", format!("summary-projector-{}", self.topic)),
            ("SEARCH_GROUP", format!("search-projector-{}", self.topic)),
            ("STATUS_GROUP", format!("status-projector-{}", self.topic)),
            ("SEARCH_URL", orderflow_testkit::search_url()),
            ("SEARCH_ALIAS", self.alias.clone()),
            ("REDIS_URL", orderflow_testkit::redis_url()),
            ("REDIS_KEY_PREFIX", self.prefix.clone()),
            // The APIs accept every caller as anonymous staff (no tokens).
            ("AUTH_DISABLED", "true".into()),
        ]
    }

    /// Starts service `name` on a free port with this pipeline's
    /// environment plus `extra`, and waits until it is ready.
    pub async fn start(
        &self,
        name: &'static str,
        extra: &[(&'static str, String)],
    ) -> ServiceProcess {
        self.start_logging(name, extra, None).await
    }

    /// [`Pipeline::start`], the service's output written to `log` when given.
    pub async fn start_logging(
        &self,
        name: &'static str,
        extra: &[(&'static str, String)],
        log: Option<&std::path::Path>,
    ) -> ServiceProcess {
        let port = free_port();
        let mut env = self.env(name);
        let addr = match name {
            "order-command" => "COMMAND_HTTP_ADDR",
            "order-query" => "QUERY_HTTP_ADDR",
            _ => "OPS_ADDR",
        };
        env.push((addr, format!("127.0.0.1:{port}")));
        env.extend(self.access.service_env(
            name,
            &self.write.url,
            &self.read.url,
            &orderflow_testkit::redis_url(),
        ));
        env.extend(extra.iter().cloned());
        let mut process = ServiceProcess::start_logging(name, port, &env, log);
        process.ready(Duration::from_secs(60)).await;
        process
    }
}

impl Pipeline {
    /// Runs the `orderctl` binary with `args` on this pipeline's stores
    /// (a reconcile rechecks after 1 s).
    pub async fn orderctl(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(binary("orderctl"));
        command.args(args);
        if args.first() == Some(&"reconcile") {
            command.args(["--recheck-after", "1s"]);
        }
        command
            .envs(self.env("orderctl"))
            .envs(self.access.setup_env())
            .env("RUST_LOG", "warn")
            .env("RUST_BACKTRACE", "0");
        tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("orderctl task")
            .expect("running orderctl")
    }
}

impl Pipeline {
    /// Writes `value` under `key` straight to the events topic, as another
    /// producer (not the relay) would.
    pub async fn produce_raw(&self, key: &str, value: &[u8]) {
        let producer: rdkafka::producer::FutureProducer = orderflow_testkit::kafka_config()
            .create()
            .expect("producer");
        producer
            .send(
                rdkafka::producer::FutureRecord::to(&self.topic)
                    .key(key)
                    .payload(value),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produced to the events topic");
    }
}

/// An envelope written by hand (for events the command service would never
/// emit): a fresh event id, version `version` of `order`, and `payload`.
pub fn raw_envelope(
    order: uuid::Uuid,
    version: i64,
    event_type: &str,
    schema_version: u32,
    payload: serde_json::Value,
) -> (uuid::Uuid, serde_json::Value) {
    let id = uuid::Uuid::now_v7();
    let envelope = serde_json::json!({
        "event_id": id, "event_type": event_type, "schema_version": schema_version,
        "aggregate_type": "order", "aggregate_id": order, "aggregate_version": version,
        "occurred_at": "2026-12-01T00:00:00Z", "correlation_id": uuid::Uuid::now_v7(),
        "causation_id": uuid::Uuid::now_v7(), "payload": payload,
    });
    (id, envelope)
}

/// Process output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// POSTs `body` as JSON; the status and the JSON answer (null if none).
pub async fn post(
    http: &reqwest::Client,
    url: String,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = http.post(url).json(&body).send().await.expect("request");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// A customer and a product with `stock` units, made through order-command
/// at `base` (`label` names both): the customer's and the product's JSON.
pub async fn customer_and_product(
    http: &reqwest::Client,
    base: &str,
    label: &str,
    stock: u32,
) -> (serde_json::Value, serde_json::Value) {
    let (status, customer) = post(
        http,
        format!("{base}/customers"),
        serde_json::json!({"name": label, "email": format!("{}@example.com", orderflow_testkit::unique_name(label))}),
    )
    .await;
    assert_eq!(status, 201, "customer: {customer}");
    let (status, product) = post(
        http,
        format!("{base}/products"),
        serde_json::json!({"sku": orderflow_testkit::unique_name(label).to_uppercase(), "name": label,
               "unit_price_minor": 900, "currency": "EUR", "stock": stock}),
    )
    .await;
    assert_eq!(status, 201, "product: {product}");
    (customer, product)
}
