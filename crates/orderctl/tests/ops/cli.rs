//! The `orderctl` binary as an operator meets it: exit statuses as `--help`
//! documents them, and a dependency that cannot be reached named with the
//! setting that points at it.

use std::process::Output;

use crate::helpers::{orderctl, text};

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

fn assert_unreachable(out: &Output, dependency: &str, setting: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{}", text(out));
    assert!(
        stderr.contains(dependency) && stderr.contains(setting),
        "stderr names {dependency} and {setting}: {stderr}"
    );
    assert!(out.stdout.is_empty(), "no answer printed: {}", text(out));
}

#[tokio::test]
async fn help_documents_the_exit_statuses_and_a_bad_flag_exits_2() {
    let help = orderctl(&["--help"], &[]).await;
    assert!(help.status.success(), "{}", text(&help));
    let help = String::from_utf8_lossy(&help.stdout);
    for line in [
        "0  done",
        "1  failed",
        "2  usage",
        "3  the answer",
        "4  a dependency",
    ] {
        assert!(help.contains(line), "--help says `{line}`:\n{help}");
    }
    let bad = orderctl(&["reconcile", "--no-such-flag"], &[]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

#[tokio::test]
async fn an_unreachable_dependency_is_named_with_its_setting_and_exits_4() {
    let closed = closed_port();
    let nowhere_pg = format!("postgres://orderflow@127.0.0.1:{closed}/nowhere");

    // The write database, for a command that needs only it.
    let out = orderctl(
        &["outbox", "list"],
        &[("WRITE_DATABASE_URL", nowhere_pg.clone())],
    )
    .await;
    assert_unreachable(&out, "the write database", "WRITE_DATABASE_URL");

    // The read database, where reconcile records its run (and --json changes nothing).
    let write = orderflow_testkit::fresh_write_database("octl_unreach").await;
    let out = orderctl(
        &["reconcile", "--json", "--only", "summary"],
        &[
            ("WRITE_DATABASE_URL", write.url.clone()),
            ("READ_DATABASE_URL", nowhere_pg),
        ],
    )
    .await;
    assert_unreachable(&out, "the read database", "READ_DATABASE_URL");

    // Redis, for a backfill of the status cache.
    let out = orderctl(
        &["backfill", "--only", "status"],
        &[
            ("WRITE_DATABASE_URL", write.url.clone()),
            ("REDIS_URL", format!("redis://127.0.0.1:{closed}")),
        ],
    )
    .await;
    assert_unreachable(&out, "Redis", "REDIS_URL");
}
