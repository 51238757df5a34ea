//! The three projectors behind one interface, for a suite that runs the
//! same tests against each.

use std::collections::BTreeMap;

use elasticsearch::indices::IndicesRefreshParts;
use elasticsearch::{Elasticsearch, SearchParts};
use orderflow_readmodel::OrderSummary;
use orderflow_testkit::{
    TestDatabase, fresh_read_database, fresh_topics, kafka_brokers, unique_name,
};
use redis::AsyncCommands as _;
use serde_json::{Value, json};

/// Which projector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Summary,
    Search,
    Status,
}

/// Isolated resources for one test: database, topics, group, index alias,
/// key prefix, and where the stores are.
#[derive(Debug, Clone)]
pub struct Env {
    pub db: TestDatabase,
    pub topic: String,
    pub dlq_topic: String,
    pub group: String,
    pub alias: String,
    pub prefix: String,
    pub brokers: String,
    pub search_url: String,
    pub redis_url: String,
}

impl Env {
    /// Fresh resources on the shared local stack.
    pub async fn new(name: &str) -> Self {
        // Schema and topics come from the topology code `orderctl setup`
        // runs; the projector derives the dead-letter topic's name itself.
        let db = fresh_read_database(name).await;
        let topics = fresh_topics(&format!("{name}-events"), 3).await;
        Self {
            db,
            topic: topics.events,
            dlq_topic: topics.dlq,
            group: unique_name(name),
            alias: unique_name(&format!("{name}_orders")),
            prefix: format!("{}:", unique_name(name)),
            brokers: kafka_brokers(),
            search_url: orderflow_testkit::search_url(),
            redis_url: orderflow_testkit::redis_url(),
        }
    }
}

/// A projector running as a process of its built binary, as deployed.
#[derive(Debug)]
pub struct Running {
    pub backend: Backend,
    pub env: Env,
    pub ops_port: u16,
    child: std::process::Child,
}

impl Backend {
    /// Every backend, for the suite.
    pub fn all() -> [Backend; 3] {
        [Backend::Summary, Backend::Search, Backend::Status]
    }

    /// Starts the projector on `env`.
    pub fn start(self, env: &Env) -> Running {
        self.start_with(env, &[])
    }

    /// Starts the projector on `env` with extra command-line settings.
    pub fn start_with(self, env: &Env, extra: &[&str]) -> Running {
        let ops_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut args: Vec<String> = [
            "projector",
            "--ops-addr",
            &format!("127.0.0.1:{ops_port}"),
            "--read-database-url",
            &env.db.url,
            "--kafka-brokers",
            &env.brokers,
            "--events-topic",
            &env.topic,
            "--consumer-group",
            &env.group,
            "--gap-timeout",
            "3s",
            "--held-retry",
            "200ms",
            "--max-attempts",
            "2",
            "--max-backoff",
            "1s",
        ]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect();
        let binary = match self {
            Backend::Summary => "summary-projector",
            Backend::Search => {
                args.extend([
                    "--search-url".into(),
                    env.search_url.clone(),
                    "--search-alias".into(),
                    env.alias.clone(),
                ]);
                "search-projector"
            }
            Backend::Status => {
                args.extend([
                    "--redis-url".into(),
                    env.redis_url.clone(),
                    "--redis-key-prefix".into(),
                    env.prefix.clone(),
                ]);
                "status-projector"
            }
        };
        let child = std::process::Command::new(system_tests::binary(binary))
            .args(&args[1..])
            .env("RUST_LOG", "warn")
            .env("SHUTDOWN_GRACE", "5s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Running {
            backend: self,
            env: env.clone(),
            ops_port,
            child,
        }
    }
}

impl Running {
    /// Stops the projector with SIGTERM, as an orchestrator does; it
    /// finishes its batch and must exit 0.
    pub async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the projector did not stop within 30 s of SIGTERM"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert!(
            status.success(),
            "projector stops cleanly, but exited with {status}"
        );
    }

    /// `/readyz` status code.
    pub async fn ready(&self) -> Option<u16> {
        reqwest::get(format!("http://127.0.0.1:{}/readyz", self.ops_port))
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// The read model as `{order_id: {...}}`, comparable across runs.
    pub async fn state(&self) -> Value {
        read_state(self.backend, &self.env).await
    }
}

/// Writes `summaries` into a backend's store the way `orderctl backfill`
/// does, behind the projector's back (version-guarded, no inbox, no event):
/// for tests of what the projector does when its store moved without it.
pub async fn write_bypassing(backend: Backend, env: &Env, summaries: &[OrderSummary]) {
    match backend {
        Backend::Summary => {
            orderflow_readstore::summary::maintenance::backfill(&env.db.pool, summaries)
                .await
                .expect("summary backfill");
        }
        Backend::Search => {
            let url = env.search_url.parse().expect("search url");
            let transport = elasticsearch::http::transport::TransportBuilder::new(
                elasticsearch::http::transport::SingleNodeConnectionPool::new(url),
            )
            .disable_proxy()
            .build()
            .expect("transport");
            let projection = orderflow_readstore::search::SearchProjection {
                client: Elasticsearch::new(transport),
                alias: env.alias.clone(),
            };
            projection
                .backfill(summaries)
                .await
                .expect("search backfill");
        }
        Backend::Status => {
            let client = redis::Client::open(env.redis_url.as_str()).expect("redis url");
            orderflow_readstore::status::StatusProjection::new(client, env.prefix.clone())
                .backfill(summaries)
                .await
                .expect("status backfill");
        }
    }
}

/// The summary version 1 (`OrderPlaced`) makes of an order.
pub fn placed_summary(placed: &orderflow_contracts::Envelope) -> OrderSummary {
    let event = orderflow_contracts::decode(placed).expect("decodes");
    match orderflow_readmodel::apply(None, placed.aggregate_version, &event, placed.occurred_at) {
        orderflow_readmodel::Step::Applied(summary) => *summary,
        other => panic!("version 1 did not apply: {other:?}"),
    }
}

/// Reads a backend's read model (without needing a running projector).
pub async fn read_state(backend: Backend, env: &Env) -> Value {
    match backend {
        Backend::Summary => {
            let rows: Vec<(uuid::Uuid, Value)> = sqlx::query_as(
                "SELECT order_id, to_jsonb(s) FROM order_summary s ORDER BY order_id",
            )
            .fetch_all(&env.db.pool)
            .await
            .expect("summary rows");
            Value::Object(
                rows.into_iter()
                    .map(|(id, row)| (id.to_string(), row))
                    .collect(),
            )
        }
        Backend::Search => search_state(env)
            .await
            .unwrap_or(Value::Object(Default::default())),
        Backend::Status => {
            let client = redis::Client::open(env.redis_url.as_str()).expect("redis url");
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                return Value::Object(Default::default());
            };
            let keys: Vec<String> = conn
                .keys(format!("{}order:*", env.prefix))
                .await
                .unwrap_or_default();
            let mut out = BTreeMap::new();
            for key in keys {
                let hash: BTreeMap<String, String> = conn.hgetall(&key).await.unwrap_or_default();
                let id = key.rsplit(':').next().unwrap_or_default().to_owned();
                let version = hash.get("version").and_then(|v| v.parse::<i64>().ok());
                out.insert(id, json!({"status": hash.get("status"), "version": version, "updated_at": hash.get("updated_at")}));
            }
            json!(out)
        }
    }
}

async fn search_state(env: &Env) -> Option<Value> {
    let url = env.search_url.parse().ok()?;
    let transport = elasticsearch::http::transport::TransportBuilder::new(
        elasticsearch::http::transport::SingleNodeConnectionPool::new(url),
    )
    .disable_proxy()
    .build()
    .ok()?;
    let client = Elasticsearch::new(transport);
    client
        .indices()
        .refresh(IndicesRefreshParts::Index(&[&env.alias]))
        .send()
        .await
        .ok()?;
    let body: Value = client
        .search(SearchParts::Index(&[&env.alias]))
        .body(json!({"query": {"match_all": {}}, "size": 10000, "sort": [{"order_id": "asc"}]}))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let hits = body["hits"]["hits"].as_array()?;
    Some(Value::Object(
        hits.iter()
            .map(|h| {
                (
                    h["_id"].as_str().unwrap_or_default().to_owned(),
                    h["_source"].clone(),
                )
            })
            .collect(),
    ))
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed before `stop` leaves no process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
