//! The Postgres half of least privilege: a login role per service and its
//! grants, in one transaction per database, so a service never sees a
//! moment with its rights half revoked while setup re-runs during a release.
//!
//! Every run revokes the roles' table rights and grants them again, so the
//! grants are exactly what this file says, whatever an earlier version
//! granted. `CONNECT` on each database goes only to the roles that use it:
//! a projector's credentials do not open the write database at all.

use orderflow_service::Secret;
use sqlx::{PgPool, Postgres, Transaction};

use super::{AccessSettings, Service};
use crate::{Error, Result, Step};

/// The tables every projector's runtime keeps its state in, one shared
/// table each, keyed by `consumer` (the projector's name).
const RUNTIME_TABLES: [&str; 2] = ["inbox", "held_events"];

/// The write database: command (read-write on the model), relay (the
/// outbox), query (read-only, for `consistency=strong`).
pub(super) async fn grant_write(pool: &PgPool, settings: &AccessSettings) -> Result<Step> {
    let [command, relay, query] =
        [Service::Command, Service::Relay, Service::Query].map(|s| quoted(&settings.role(s)));
    let statements = vec![
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {command}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {command}"),
        format!("REVOKE ALL ON TABLE _sqlx_migrations FROM {command}"),
        format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public \
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {command}"
        ),
        format!(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {command}"
        ),
        // Reads unpublished rows, parks them, and deletes them once Kafka
        // acknowledged them...
        format!("GRANT SELECT, UPDATE, DELETE ON TABLE outbox TO {relay}"),
        // ...recording each in `outbox_published`, which it prunes.
        format!("GRANT SELECT, INSERT, DELETE ON TABLE outbox_published TO {relay}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {query}"),
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {query}"),
    ];
    let services = [Service::Command, Service::Relay, Service::Query];
    apply(pool, settings, "write", &services, &statements).await
}

/// The read database: each projector its own tables and its own rows of the
/// runtime tables; query reads everything, including tables added later.
pub(super) async fn grant_read(pool: &PgPool, settings: &AccessSettings) -> Result<Step> {
    let summary = quoted(&settings.role(Service::SummaryProjector));
    let query = quoted(&settings.role(Service::Query));
    let mut statements = vec![
        // Upsert with its version guard; never deletes.
        format!("GRANT SELECT, INSERT, UPDATE ON TABLE order_summary TO {summary}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {query}"),
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {query}"),
    ];
    for table in RUNTIME_TABLES {
        statements.push(format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"));
        let policy = quoted(&format!("{}_reads_all", settings.role(Service::Query)));
        statements.push(format!("DROP POLICY IF EXISTS {policy} ON {table}"));
        statements.push(format!(
            "CREATE POLICY {policy} ON {table} FOR SELECT TO {query} USING (true)"
        ));
    }
    for service in [
        Service::SummaryProjector,
        Service::SearchProjector,
        Service::StatusProjector,
    ] {
        let role = quoted(&settings.role(service));
        let consumer = literal(service.inbox_consumer().unwrap_or_default());
        // The inbox is only ever appended to (ON CONFLICT DO NOTHING) and
        // read; held events are inserted, read, parked and released.
        statements.push(format!("GRANT SELECT, INSERT ON TABLE inbox TO {role}"));
        statements.push(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE held_events TO {role}"
        ));
        for table in RUNTIME_TABLES {
            statements.push(format!("DROP POLICY IF EXISTS {role} ON {table}"));
            statements.push(format!(
                "CREATE POLICY {role} ON {table} TO {role} \
                 USING (consumer = {consumer}) WITH CHECK (consumer = {consumer})"
            ));
        }
    }
    let services = [
        Service::SummaryProjector,
        Service::SearchProjector,
        Service::StatusProjector,
        Service::Query,
    ];
    apply(pool, settings, "read", &services, &statements).await
}

/// In one transaction: the roles exist (with their passwords when set),
/// reach this database only through `CONNECT` granted here, lose every table
/// right they had, then get `grants`.
async fn apply(
    pool: &PgPool,
    settings: &AccessSettings,
    database: &'static str,
    services: &[Service],
    grants: &[String],
) -> Result<Step> {
    let failed = |source| Error::Database { database, source };
    let mut tx = pool.begin().await.map_err(failed)?;
    let name: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *tx)
        .await
        .map_err(failed)?;
    let db = quoted(&name);
    let roles: Vec<String> = services.iter().map(|s| settings.role(*s)).collect();
    for (service, role) in services.iter().zip(&roles) {
        ensure_role(&mut tx, role, settings.db_password(*service))
            .await
            .map_err(failed)?;
    }
    let all = roles
        .iter()
        .map(|r| quoted(r))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statements = vec![
        format!("REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC"),
        format!("GRANT CONNECT ON DATABASE {db} TO {all}"),
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned(),
        format!("GRANT USAGE ON SCHEMA public TO {all}"),
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {all}"),
        format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {all}"),
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {all}"),
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {all}"),
    ];
    statements.extend(grants.iter().cloned());
    for statement in &statements {
        sqlx::raw_sql(statement)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)?;
    Ok(Step::Roles { database, roles })
}

/// Creates `role` as a plain login role unless it exists (a concurrent
/// setup may create it first), and sets its password when one is given.
///
/// The password travels as a bound parameter into a transaction-local
/// setting and from there into `ALTER ROLE` on the server, so no statement
/// text (which drivers and servers may log) ever contains it.
async fn ensure_role(
    tx: &mut Transaction<'_, Postgres>,
    role: &str,
    password: Option<&Secret>,
) -> sqlx::Result<()> {
    // Only what is missing is changed: two setups altering one role at the
    // same moment would fail with "tuple concurrently updated".
    let create = format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) THEN \
             CREATE ROLE {role} LOGIN; \
           ELSIF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = {name}) THEN \
             ALTER ROLE {role} LOGIN; \
           END IF; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        name = literal(role),
        role = quoted(role)
    );
    sqlx::raw_sql(&create).execute(&mut **tx).await?;
    if let Some(password) = password {
        sqlx::query("SELECT set_config('orderflow.setup_role', $1, true), set_config('orderflow.setup_password', $2, true)")
            .bind(role)
            .bind(password.expose())
            .execute(&mut **tx)
            .await?;
        sqlx::raw_sql(
            "DO $$ BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', \
             current_setting('orderflow.setup_role'), current_setting('orderflow.setup_password')); \
             END $$",
        )
        .execute(&mut **tx)
        .await?;
        sqlx::query("SELECT set_config('orderflow.setup_password', '', true)")
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A double-quoted identifier (role names are checked to be plain already;
/// this keeps database names with odd characters working).
fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A single-quoted SQL string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
