//! The three projectors behind one interface, for a suite that runs the
//! same tests against each: a [`Backend`] starts its projector as a process
//! and names its store as a [`ReadStore`], which the suite reads, walks and
//! writes through, the same code for every store (the trait `orderctl`'s
//! backfill and reconcile use too).

use elasticsearch::Elasticsearch;
use futures::TryStreamExt as _;
use orderflow_readmodel::OrderSummary;
use orderflow_readstore::ReadStore;
use orderflow_readstore::search::SearchProjection;
use orderflow_readstore::status::StatusProjection;
use orderflow_readstore::summary::SummaryProjection;
use orderflow_testkit::{
    TestDatabase, fresh_read_database, fresh_topics, kafka_brokers, unique_name,
};
use serde_json::Value;

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

    /// How many of `events` this backend's projector has marked processed
    /// in `env`'s inbox (the projectors share the table, so only its own
    /// consumer's rows count).
    pub async fn inbox_count(self, env: &Env, events: &[uuid::Uuid]) -> i64 {
        let consumer = match self {
            Backend::Summary => orderflow_readstore::summary::NAME,
            Backend::Search => orderflow_readstore::search::NAME,
            Backend::Status => orderflow_readstore::status::NAME,
        };
        sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = ANY($2)")
            .bind(consumer)
            .bind(events)
            .fetch_one(&env.db.pool)
            .await
            .expect("reading the inbox")
    }

    /// The backend's store in `env`, as the jobs and the suite see it.
    pub fn store(self, env: &Env) -> Box<dyn ReadStore> {
        match self {
            Backend::Summary => Box::new(SummaryProjection {
                pool: env.db.pool.clone(),
            }),
            Backend::Search => {
                let url = env.search_url.parse().expect("search url");
                let transport = elasticsearch::http::transport::TransportBuilder::new(
                    elasticsearch::http::transport::SingleNodeConnectionPool::new(url),
                )
                .disable_proxy()
                .build()
                .expect("transport");
                Box::new(SearchProjection {
                    client: Elasticsearch::new(transport),
                    alias: env.alias.clone(),
                })
            }
            Backend::Status => {
                let client = redis::Client::open(env.redis_url.as_str()).expect("redis url");
                Box::new(StatusProjection::new(client, env.prefix.clone()))
            }
        }
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
    let store = backend.store(env);
    store
        .backfill(summaries)
        .await
        .unwrap_or_else(|e| panic!("{} backfill: {e:#}", store.model()));
}

/// The summary version 1 (`OrderPlaced`) makes of an order.
pub fn placed_summary(placed: &orderflow_contracts::Envelope) -> OrderSummary {
    let event = orderflow_contracts::decode(placed).expect("decodes");
    match orderflow_readmodel::apply(None, placed.aggregate_version, &event, placed.occurred_at) {
        orderflow_readmodel::Step::Applied(summary) => *summary,
        other => panic!("version 1 did not apply: {other:?}"),
    }
}

/// Reads a backend's read model (without needing a running projector):
/// every order the store holds, walked and read through its [`ReadStore`],
/// as `{order_id: document}` with each document as the store keeps it. A
/// store that cannot be read yet (the index not created, the store down)
/// reads as empty, so callers poll until it has what they wait for.
pub async fn read_state(backend: Backend, env: &Env) -> Value {
    stored_documents(backend.store(env).as_ref())
        .await
        .unwrap_or(Value::Object(Default::default()))
}

async fn stored_documents(store: &dyn ReadStore) -> anyhow::Result<Value> {
    store.refresh().await?;
    let mut out = serde_json::Map::new();
    let mut pages = store.ids(1000);
    while let Some(ids) = pages.try_next().await? {
        for (id, stored) in store.read(&ids).await? {
            out.insert(id.to_string(), stored.document);
        }
    }
    // Sorted by order id whatever the walk's order (the map sorts unless
    // serde_json's preserve_order is on).
    let mut entries: Vec<(String, Value)> = out.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Object(entries.into_iter().collect()))
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed before `stop` leaves no process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
