//! Shared fixtures.

use std::future::Future;
use std::time::{Duration, Instant};

use pgqrs::{Admin, Config};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A config over the test's own database, with its own pool of `connections`.
pub(crate) async fn config_with_pool_size(pool: &PgPool, connections: u32) -> Config {
    let own = PgPoolOptions::new()
        .max_connections(connections)
        .connect_with((*pool.connect_options()).clone())
        .await
        .expect("connect to the test database");
    Config::from_pool(own)
}

/// A config over the test database and an admin with `queues` created.
pub(crate) async fn setup(pool: PgPool, queues: &[&str]) -> (Config, Admin) {
    let config = Config::from_pool(pool);
    let admin = Admin::new(&config).await.expect("admin");
    for queue in queues {
        admin.create_queue(queue).await.expect("create queue");
    }
    (config, admin)
}

/// Runs `f` with insta writing to the workspace's `snapshots/` directory.
pub(crate) fn in_snapshots<R>(f: impl FnOnce() -> R) -> R {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(f)
}

/// Polls `condition` every 20 ms until it holds; panics after `timeout`.
pub(crate) async fn wait_until<F, Fut>(timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
