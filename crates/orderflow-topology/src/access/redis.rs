//! The Redis half of least privilege: ACL users for the two services that
//! use the status cache, confined to the deployment's key prefix.
//!
//! Made with `ACL SETUSER` over the connection `REDIS_URL` gives setup (a
//! user allowed to manage ACLs), so nothing in the server's configuration
//! file changes and the default user stays as the operator left it. Each
//! run starts the user from `reset`, so its rights are exactly these. A
//! user whose password is not configured is not touched (and Redis is not
//! contacted when neither is), so a setup run without the secrets never
//! disables users another run created.
//!
//! `ACL SETUSER` changes only the running server: a restart forgets the
//! users (an append-only file does not keep them), and the status projector
//! and query service then cannot log in. So when the server has an ACL file
//! the users are saved to it (`ACL SAVE`); when it has none, setup says so
//! in its output, because only re-running setup brings them back.
//!
//! The projector runs its compare-and-set script (`EVALSHA`, `SCRIPT LOAD`
//! when the cache was lost), and the query service its read script; each
//! command a script calls is checked against the same rules, so the query
//! user, allowed no writing command, cannot write through a script either
//! (its key pattern is the prefix, not `%R~`, because Redis counts a
//! script's declared keys as written). Both read the generation pointer
//! (`GET`) a rebuild swaps.

use std::time::Duration;

use super::{AccessSettings, Service};
use crate::{Error, Result, Step};

/// How long one Redis round trip may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(10);

/// Commands every user needs to hold a connection.
const CONNECTION: [&str; 3] = ["+ping", "+hello", "+client|setname"];
/// What the status projector runs.
const PROJECTOR: [&str; 7] = [
    "+evalsha",
    "+eval",
    "+script|load",
    "+get",
    "+hget",
    "+hset",
    "+publish",
];
/// What the query service runs: reads, its read script, the change channel.
const QUERY: [&str; 9] = [
    "+evalsha",
    "+eval",
    "+script|load",
    "+get",
    "+hgetall",
    "+hget",
    "+hmget",
    "+subscribe",
    "+unsubscribe",
];

pub(super) async fn set_users(settings: &AccessSettings) -> Result<Vec<Step>> {
    let prefix = &settings.redis.key_prefix;
    // The prefix goes into ACL patterns as it is; a glob character in it
    // would widen what the users may touch.
    if prefix.contains(['*', '?', '[', ']', '\\']) {
        return Err(Error::Redis(format!(
            "REDIS_KEY_PREFIX {prefix:?} contains a glob character (* ? [ ] \\); \
             the ACL users' key patterns need a plain prefix"
        )));
    }
    let users = [
        (
            Service::StatusProjector,
            settings.status_redis_password.as_ref(),
            format!("~{prefix}*"),
            &PROJECTOR[..],
        ),
        (
            Service::Query,
            settings.query_redis_password.as_ref(),
            format!("~{prefix}*"),
            &QUERY[..],
        ),
    ];
    let mut steps = Vec::new();
    let mut conn = None;
    for (service, password, keys, commands) in users {
        let user = settings.role(service);
        let Some(password) = password else {
            steps.push(Step::RedisUser { user, set: false });
            continue;
        };
        let conn = match &mut conn {
            Some(conn) => conn,
            None => conn.insert(connect(settings).await?),
        };
        let mut command = redis::cmd("ACL");
        command
            .arg("SETUSER")
            .arg(&user)
            .arg("reset")
            .arg("on")
            .arg(format!(">{}", password.expose()))
            .arg(&keys)
            .arg(format!("&{prefix}*"))
            .arg(&CONNECTION[..])
            .arg(commands);
        tokio::time::timeout(REDIS_TIMEOUT, command.query_async::<()>(conn))
            .await
            .map_err(|_| Error::Redis("ACL SETUSER: no answer within 10s".to_owned()))?
            // Redis names the refused rule, never the password argument.
            .map_err(|e| Error::Redis(format!("ACL SETUSER {user}: {e}")))?;
        steps.push(Step::RedisUser { user, set: true });
    }
    if let Some(conn) = &mut conn {
        steps.push(save(conn).await?);
    }
    Ok(steps)
}

/// Writes the users to the server's ACL file, when it has one.
async fn save(conn: &mut redis::aio::MultiplexedConnection) -> Result<Step> {
    let saved = tokio::time::timeout(
        REDIS_TIMEOUT,
        redis::cmd("ACL").arg("SAVE").query_async::<()>(conn),
    )
    .await
    .map_err(|_| Error::Redis("ACL SAVE: no answer within 10s".to_owned()))?;
    match saved {
        Ok(()) => Ok(Step::RedisUsersSaved { to_file: true }),
        // "This Redis instance is not configured to use an ACL file ..."
        Err(e) if e.to_string().contains("ACL file") => {
            Ok(Step::RedisUsersSaved { to_file: false })
        }
        Err(e) => Err(Error::Redis(format!("ACL SAVE: {e}"))),
    }
}

async fn connect(settings: &AccessSettings) -> Result<redis::aio::MultiplexedConnection> {
    let client = settings
        .redis
        .client()
        .map_err(|e| Error::Redis(e.to_string()))?;
    tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| Error::Redis("no answer within 10s".to_owned()))?
        .map_err(|e| Error::Redis(e.to_string()))
}
