"""Each soak service logs in as its own Postgres role and Redis user.

As `scripts/run`, compose and Kubernetes run them: `orderctl setup` makes the
roles and users from the topology's access rules with the passwords given
here (fresh per run), and every service gets only its own store URLs. So a
grant the pipeline needs under faults (a retry path, a repair, a held-event
timer) and the topology forgot fails the soak, not a deployment.
"""

import secrets

# binary: (role suffix, password variable prefix, its database URLs, its Redis user's variable prefix)
SERVICES = {
    "order-command": ("command", "COMMAND_DB", ("WRITE_DATABASE_URL",), None),
    "outbox-relay": ("relay", "RELAY_DB", ("WRITE_DATABASE_URL",), None),
    "summary-projector": ("summary_projector", "SUMMARY_PROJECTOR_DB", ("READ_DATABASE_URL",), None),
    "search-projector": ("search_projector", "SEARCH_PROJECTOR_DB", ("READ_DATABASE_URL",), None),
    "status-projector": ("status_projector", "STATUS_PROJECTOR_DB", ("READ_DATABASE_URL",), "STATUS_PROJECTOR_REDIS"),
    "order-query": ("query", "QUERY_DB", ("WRITE_DATABASE_URL", "READ_DATABASE_URL"), "QUERY_REDIS"),
}
STORE_URLS = ("WRITE_DATABASE_URL", "READ_DATABASE_URL", "REDIS_URL")


def passwords():
    """The `*_PASSWORD` settings `orderctl setup` grants with, one per role and Redis user."""
    names = {s[1] for s in SERVICES.values()} | {s[3] for s in SERVICES.values() if s[3]}
    return {f"{n}_PASSWORD": secrets.token_hex(24) for n in sorted(names)}


def service_env(binary, env, pw, role_prefix="orderflow_"):
    """env with the store URLs of `binary` only, each logging in as the service's own role."""
    role, db_var, dbs, redis_var = SERVICES[binary]
    out = {k: v for k, v in env.items() if k not in STORE_URLS and not k.endswith("_PASSWORD")}
    user = f"{role_prefix}{role}"
    for var in dbs:
        scheme, rest = env[var].split("://", 1)
        out[var] = f"{scheme}://{user}:{pw[f'{db_var}_PASSWORD']}@{rest.split('@', 1)[1]}"
    if redis_var:
        scheme, rest = env["REDIS_URL"].split("://", 1)
        out["REDIS_URL"] = f"{scheme}://{user}:{pw[f'{redis_var}_PASSWORD']}@{rest.split('@', 1)[-1]}"
    return out
