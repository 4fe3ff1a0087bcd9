//! `GET /admin/v1/store`: the store's durability as the database itself reports it, so the bench (and an
//! operator) see what a commit waits for rather than the flag that was passed.

mod common;

use reqwest::Method;

#[tokio::test]
async fn store_durability_is_reported_to_staff_only() {
    let app = common::start().await;
    let anonymous = app.http.get(app.url("/admin/v1/store")).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);

    let (status, store) = app.admin(Method::GET, "/admin/v1/store", None).await;
    assert_eq!(status, 200, "{store}");
    if common::test_postgres().is_some() {
        // scripts/postgres.sh starts its cluster with fsync on and PostgreSQL's default synchronous_commit.
        assert_eq!(store["backend"], "postgres", "{store}");
        assert_eq!(store["fsync"], "on", "{store}");
        assert_eq!(store["synchronous_commit"], "on", "{store}");
    } else {
        assert_eq!(store["backend"], "sqlite", "{store}");
        assert_eq!(store["journal_mode"], "wal", "{store}");
    }
}

#[tokio::test]
async fn sqlite_only_synchronous_is_read_back_from_the_writer_connection() {
    // The default is full: every commit waits for the disk.
    let app = common::start().await;
    let (status, store) = app.admin(Method::GET, "/admin/v1/store", None).await;
    assert_eq!((status, store["synchronous"].as_str()), (200, Some("full")), "{store}");
    drop(app);

    let app = common::start_with(|c| c.sqlite_synchronous = issuer::config::Synchronous::Normal).await;
    let (status, store) = app.admin(Method::GET, "/admin/v1/store", None).await;
    assert_eq!((status, store["synchronous"].as_str()), (200, Some("normal")), "{store}");
}
