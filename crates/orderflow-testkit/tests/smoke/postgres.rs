use orderflow_testkit::fresh_database;

#[tokio::test]
async fn embedded_migrations_apply_to_a_fresh_database() {
    let db = fresh_database("smoke_pg").await;

    orderflow_writemodel::MIGRATOR
        .run(&db.pool)
        .await
        .expect("migrations apply");
    // Running them again is a no-op, as it is on every service start.
    orderflow_writemodel::MIGRATOR
        .run(&db.pool)
        .await
        .expect("migrations re-apply");

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&db.pool)
        .await
        .expect("migration table readable");
    assert_eq!(
        applied as usize,
        orderflow_writemodel::MIGRATOR.iter().count()
    );

    // The outbox exists with its per-aggregate version constraint.
    let insert = "INSERT INTO outbox (event_id, event_type, schema_version, aggregate_type, \
                  aggregate_id, aggregate_version, envelope) \
                  VALUES (gen_random_uuid(), 'OrderPlaced', 1, 'order', $1, 1, '{}')";
    let order = uuid::Uuid::now_v7();
    sqlx::query(insert)
        .bind(order)
        .execute(&db.pool)
        .await
        .expect("first version inserts");
    let duplicate = sqlx::query(insert).bind(order).execute(&db.pool).await;
    let err = duplicate.expect_err("a second row for the same version must be refused");
    let constraint = err
        .as_database_error()
        .and_then(|e| e.constraint())
        .map(str::to_owned);
    assert_eq!(
        constraint.as_deref(),
        Some("outbox_aggregate_id_aggregate_version_key")
    );
}
