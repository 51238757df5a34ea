//! A store stopped for a while in mid-stream: the projector reports not
//! ready, retries with backoff, records nothing in its inbox that the store
//! has not taken (so a crash meanwhile loses nothing), and catches up once
//! the store is back; the summary projector, on the same topic, is not held
//! up meanwhile.
//!
//! Each test runs a private instance of the store (its own port and data) so
//! stopping it cannot disturb other tests. `OUTAGE_SECS` sets how long it
//! stays down (default 30).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::FutureExt as _;
use projector_suite::backends::{Env, read_state};
use projector_suite::events::{final_versions, messages, sequence};
use projector_suite::{Backend, produce, wait_for_versions};
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(180);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn outage() -> Duration {
    Duration::from_secs(
        std::env::var("OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    )
}

/// A private Redis, persisting every write so a restart keeps its data.
struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("orderflow-redis-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut redis = Self {
            port: free_port(),
            dir,
            child: None,
        };
        redis.up();
        redis
    }

    fn up(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (install it with scripts/stack up redis)");
        self.child = Some(child);
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private OpenSearch node started through the project's stack script.
struct PrivateSearch {
    dir: PathBuf,
    port: u16,
    transport: u16,
}

impl PrivateSearch {
    fn stack(&self, action: &str) {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let jars = std::env::var("ORDERFLOW_JARS_DIR")
            .unwrap_or_else(|_| repo.join(".stack/jars").display().to_string());
        let status = Command::new("bash")
            .arg(repo.join("scripts/stack"))
            .args([action, "opensearch"])
            .env("ORDERFLOW_STACK_DIR", &self.dir)
            .env("ORDERFLOW_JARS_DIR", jars)
            .env("OPENSEARCH_PORT", self.port.to_string())
            .env("OPENSEARCH_TRANSPORT_PORT", self.transport.to_string())
            .status()
            .expect("running scripts/stack");
        assert!(
            status.success(),
            "scripts/stack {action} opensearch failed for the private node"
        );
    }

    fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("orderflow-search-{}", Uuid::new_v4().simple()));
        let node = Self {
            dir,
            port: free_port(),
            transport: free_port(),
        };
        node.stack("up");
        node
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateSearch {
    fn drop(&mut self) {
        self.stack("down");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn settle(backend: Backend, env: &Env, expected: &[(Uuid, i64)]) {
    let env = env.clone();
    wait_for_versions("the projector to catch up", DEADLINE, expected, move || {
        let env = env.clone();
        async move { read_state(backend, &env).await }.boxed()
    })
    .await;
}

/// The scenario, with `stop` and `restart` acting on the private store.
async fn outage_scenario(
    backend: Backend,
    env: Env,
    stop: impl FnOnce() + Send + 'static,
    restart: impl FnOnce() + Send + 'static,
) {
    let events = sequence(60);
    let (first, second) = events.split_at(events.len() / 2);
    let running = backend.start(&env);
    // The summary projector on the same events, in a group of its own.
    let mut summary_env = env.clone();
    summary_env.group = orderflow_testkit::unique_name("outage-summary");
    let summary = Backend::Summary.start(&summary_env);

    produce(&env.brokers, &env.topic, &messages(first)).await;
    settle(backend, &env, &final_versions(first)).await;

    tokio::task::spawn_blocking(stop).await.expect("stop");
    let down_since = tokio::time::Instant::now();
    produce(&env.brokers, &env.topic, &messages(second)).await;
    orderflow_testkit::eventually("the projector to report not ready", DEADLINE, || async {
        (running.ready().await == Some(503)).then_some(())
    })
    .await;
    // Nothing the store has not taken is marked processed: the inbox
    // holds none of the events produced since it stopped, although the
    // projector has tried to write them.
    let unwritten: Vec<Uuid> = second.iter().map(|e| e.event_id).collect();
    let recorded = backend.inbox_count(&env, &unwritten).await;
    assert_eq!(
        recorded, 0,
        "events the store never took are in the inbox, so a redelivery would skip them"
    );
    // A crash while the store is down: the new process reads the same
    // events again and must not find them processed.
    drop(running);
    let running = backend.start(&env);
    // The other projector is not held up by this store.
    settle(Backend::Summary, &summary_env, &final_versions(&events)).await;

    let remaining = outage().saturating_sub(down_since.elapsed());
    tokio::time::sleep(remaining).await;
    tokio::task::spawn_blocking(restart).await.expect("restart");

    settle(backend, &env, &final_versions(&events)).await;
    orderflow_testkit::eventually("the projector to report ready", DEADLINE, || async {
        (running.ready().await == Some(200)).then_some(())
    })
    .await;
    let state = read_state(backend, &env).await;
    assert_eq!(state.as_object().map(|o| o.len()), Some(60));
    running.stop().await;
    summary.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_projector_rides_out_a_redis_outage() {
    let redis = std::sync::Arc::new(std::sync::Mutex::new(PrivateRedis::start()));
    let mut env = Env::new("status-outage").await;
    env.redis_url = redis.lock().expect("lock").url();
    let (a, b) = (redis.clone(), redis.clone());
    outage_scenario(
        Backend::Status,
        env,
        move || a.lock().expect("lock").down(),
        move || b.lock().expect("lock").up(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_projector_rides_out_an_opensearch_outage() {
    let node = tokio::task::spawn_blocking(PrivateSearch::start)
        .await
        .expect("node");
    let node = std::sync::Arc::new(node);
    let mut env = Env::new("search-outage").await;
    env.search_url = node.url();
    let (a, b) = (node.clone(), node.clone());
    outage_scenario(
        Backend::Search,
        env,
        move || a.stack("down"),
        move || b.stack("up"),
    )
    .await;
}
