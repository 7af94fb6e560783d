//! Shared fixtures.

use std::future::Future;
use std::time::{Duration, Instant};

use std::str::FromStr;

use pgqrs::{Admin, Config, Db, Pooler};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The pooler the suite runs through, from `PGQRS_TEST_POOLER="<url> <mode>"` (set by the
/// pooler runs of `.ci/run`, with the URLs `.ci/poolers.sh` prints), or `None` for the
/// direct run.
pub(crate) fn pooler() -> Option<(PgConnectOptions, Pooler)> {
    let spec = std::env::var("PGQRS_TEST_POOLER")
        .ok()
        .filter(|spec| !spec.trim().is_empty())?;
    let (url, mode) = spec
        .trim()
        .split_once(' ')
        .expect("PGQRS_TEST_POOLER is \"<url> <mode>\"");
    let options = PgConnectOptions::from_str(url).expect("PGQRS_TEST_POOLER url");
    Some((options, mode.parse().expect("PGQRS_TEST_POOLER mode")))
}

/// The test's database, as `#[sqlx::test]` gave it or as [`via_pooler`] made it.
pub(crate) trait TestDb {
    fn pg_pool(&self) -> &PgPool;
}

impl TestDb for PgPool {
    fn pg_pool(&self) -> &PgPool {
        self
    }
}

impl TestDb for Db {
    fn pg_pool(&self) -> &PgPool {
        self.pg()
    }
}

/// The test database's connect options, through the pooler when the run has one.
fn connect_options(pool: &impl TestDb) -> (PgConnectOptions, Pooler) {
    let direct = (*pool.pg_pool().connect_options()).clone();
    match pooler() {
        None => (direct, Pooler::None),
        Some((through, mode)) => {
            let database = direct.get_database().expect("test database name");
            (through.database(database), mode)
        }
    }
}

/// A config straight to the test database even in a pooler run: what a worker listens over
/// next to a transaction-mode pooler.
pub(crate) fn direct_config(pool: &impl TestDb) -> Config {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let direct = PgConnectOptions::from_str(&url).expect("DATABASE_URL");
    let database = pool
        .pg_pool()
        .connect_options()
        .get_database()
        .map(str::to_owned);
    Config::from_connect_options(direct.database(&database.expect("test database name")))
        .max_connections(2)
}

/// The config a test uses: the test's pool itself in the direct run, a pool through the
/// pooler (same database) in a pooler run.
pub(crate) fn config(pool: &impl TestDb) -> Config {
    match pooler() {
        None => Config::from_pool(pool.pg_pool().clone()),
        Some(_) => {
            let (options, mode) = connect_options(pool);
            Config::from_connect_options(options).pooler(mode)
        }
    }
}

/// What a test runs its own SQL over: `pool` itself in the direct run, the library's view of
/// the pooler in a pooler run (so that assertions see what the library wrote through it,
/// and run as the pooler requires).
pub(crate) async fn via_pooler(pool: PgPool) -> Db {
    if pooler().is_none() {
        return Db::from(pool);
    }
    config(&pool)
        .db()
        .await
        .expect("connect through the pooler")
}

/// A config over the test's own database, with its own pool of `connections`.
pub(crate) async fn config_with_pool_size(pool: &impl TestDb, connections: u32) -> Config {
    if pooler().is_some() {
        return config(pool).max_connections(connections);
    }
    let own = PgPoolOptions::new()
        .max_connections(connections)
        .connect_with((*pool.pg_pool().connect_options()).clone())
        .await
        .expect("connect to the test database");
    Config::from_pool(own)
}

/// A config over the test database and an admin with `queues` created.
pub(crate) async fn setup(pool: impl TestDb, queues: &[&str]) -> (Config, Admin) {
    let config = config(&pool);
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
    wait_for(timeout, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Polls `poll` every 20 ms until it returns a value, and returns it; panics after
/// `timeout`.
pub(crate) async fn wait_for<T, F, Fut>(timeout: Duration, mut poll: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = poll().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
