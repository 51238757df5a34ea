//! What a projector service does besides its projection: read-database
//! migrations, readiness, the ops endpoints and the consumer task. The three
//! projector binaries differ only in their store, so this is written once.

use std::future::Future;
use std::net::SocketAddr;

use orderflow_service::{CommonArgs, Readiness, Service, ops, shutdown};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{MIGRATOR, Projection, ProjectorArgs, Runtime};

/// The read-database pool, migrated when `args.migrate_on_start`.
pub async fn read_pool(name: &str, args: &ProjectorArgs) -> anyhow::Result<PgPool> {
    let pool = args.pool(name)?;
    if args.migrate_on_start {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying read-database migrations: {e}"))?;
    }
    Ok(pool)
}

/// Runs `projection` until `token` is cancelled. `store_checks` adds the
/// readiness check of the projection's own store; `prepare` runs in the
/// consumer task before consuming starts (e.g. creating an index), and may
/// end early with `Ok` when cancelled.
// Each argument is one thing every projector binary already has in hand; a
// struct gathering them would only be built to be taken apart here.
#[allow(clippy::too_many_arguments)]
pub async fn serve<P, F>(
    projection: P,
    pool: PgPool,
    common: &CommonArgs,
    ops_addr: SocketAddr,
    args: &ProjectorArgs,
    store_checks: impl FnOnce(Readiness) -> Readiness,
    prepare: F,
    token: CancellationToken,
) -> anyhow::Result<()>
where
    P: Projection,
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let name = projection.name();
    let runtime = Runtime::new(projection, pool.clone(), &args.kafka, args.runtime.clone())?;
    let health = runtime.health();
    let stalls = runtime.stalls();
    let readiness = store_checks(args.readiness(name, &pool)?)
        .check("projector", move || {
            let health = health.clone();
            async move { health.check() }
        })
        .check("partitions", move || {
            let stalls = stalls.clone();
            async move { stalls.check() }
        });
    let mut service = Service::new(name, token.clone(), common.shutdown_grace);
    service.serve(
        "ops",
        shutdown::bind(ops_addr).await?,
        ops::router(name, readiness),
    );
    service.spawn("consumer", async move {
        prepare.await?;
        if token.is_cancelled() {
            return Ok(());
        }
        runtime.run(token).await
    });
    service.run().await
}
