//! Connection settings and the shared connection pool.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use tokio::sync::OnceCell;

use crate::wake_gate::WakeGate;
use crate::{Db, Error, Pooler, Result};

/// Default lease length of a dequeued job.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default limit on a serialized payload.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// A pooled connection idle this long is pinged before it is handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// Where to find Postgres and how pgqrs behaves there.
///
/// Cloning is cheap and clones share one connection pool, created on first use by
/// [`Admin::new`](crate::Admin::new), [`Producer::new`](crate::Producer::new) or
/// [`Consumer::new`](crate::Consumer::new). Neither `Debug` nor `Display` shows the password.
///
/// That pool pings a connection before handing it out only if it sat idle for a second or
/// more (as pgx does), not before every statement as sqlx does by default: a busy pool saves
/// a round trip per call, and a connection the server ended in the last second fails one
/// call and is then replaced. A pool given to [`Config::from_pool`] keeps its own settings.
///
/// ```
/// use std::time::Duration;
/// use pgqrs::Config;
///
/// let config = Config::from_dsn("postgresql://app:s3cret@localhost:5432/mydb")?
///     .max_connections(16)
///     .visibility_timeout(Duration::from_secs(60));
/// assert_eq!(config.to_string(), "postgresql://app@localhost:5432/mydb");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), pgqrs::Error>(())
/// ```
#[derive(Clone)]
pub struct Config {
    connect: PgConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
    visibility_timeout: Duration,
    max_payload_bytes: usize,
    notify: bool,
    pooler: Pooler,
    pool: Arc<OnceCell<PgPool>>,
    /// Shared by the producers made from this config and its clones, by queue id.
    wake_gates: Arc<Mutex<HashMap<i32, Arc<WakeGate>>>>,
}

impl Config {
    /// Parses a `postgres://` / `postgresql://` URL.
    ///
    /// ```
    /// let config = pgqrs::Config::from_dsn("postgresql://postgres@127.0.0.1:5432/test")?;
    /// assert_eq!(config.to_string(), "postgresql://postgres@127.0.0.1:5432/test");
    /// assert!(pgqrs::Config::from_dsn("mysql://nope").is_err());
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn from_dsn(dsn: &str) -> Result<Self> {
        if !(dsn.starts_with("postgres://") || dsn.starts_with("postgresql://")) {
            return Err(Error::InvalidDsn {
                reason: "expected a URL starting with postgres:// or postgresql://".into(),
            });
        }
        let connect = PgConnectOptions::from_str(dsn).map_err(|err| Error::InvalidDsn {
            reason: scrub_password(dsn, &err.to_string()),
        })?;
        Ok(Self::from_connect_options(connect))
    }

    /// Uses ready-made sqlx connect options.
    ///
    /// ```
    /// let options = sqlx::postgres::PgConnectOptions::new().host("localhost").database("mydb");
    /// let config = pgqrs::Config::from_connect_options(options);
    /// assert!(config.to_string().ends_with("/mydb"));
    /// ```
    pub fn from_connect_options(connect: PgConnectOptions) -> Self {
        Config {
            // pgbouncer refuses this startup parameter unless told to ignore it.
            connect: connect.extra_float_digits(None),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            notify: true,
            pooler: Pooler::None,
            pool: Arc::new(OnceCell::new()),
            wake_gates: Arc::default(),
        }
    }

    /// Uses an existing pool (for example the one of `#[sqlx::test]`, or the application's own).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::PgPool::connect("postgresql://localhost/mydb").await?;
    /// let config = pgqrs::Config::from_pool(pool);
    /// # Ok(()) }
    /// ```
    pub fn from_pool(pool: PgPool) -> Self {
        let mut config = Self::from_connect_options((*pool.connect_options()).clone());
        config.max_connections = pool.options().get_max_connections();
        config.pool = Arc::new(OnceCell::new_with(Some(pool)));
        config
    }

    /// Size of the pool this config creates (default 10). Starts a new, unshared pool.
    ///
    /// ```
    /// let config = pgqrs::Config::from_dsn("postgresql://localhost/db")?.max_connections(4);
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self.pool = Arc::new(OnceCell::new());
        self
    }

    /// How long to wait for a free connection before [`Error::PoolTimeout`] (default 30 s).
    /// Starts a new, unshared pool.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = pgqrs::Config::from_dsn("postgresql://localhost/db")?
    ///     .acquire_timeout(Duration::from_secs(5));
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self.pool = Arc::new(OnceCell::new());
        self
    }

    /// Default lease of a dequeued job (default 30 s); consumers and calls may override it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = pgqrs::Config::from_dsn("postgresql://localhost/db")?
    ///     .visibility_timeout(Duration::from_secs(120));
    /// assert_eq!(config.get_visibility_timeout(), Duration::from_secs(120));
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Largest serialized payload a producer accepts (default 1 MiB).
    ///
    /// ```
    /// let config = pgqrs::Config::from_dsn("postgresql://localhost/db")?.max_payload_bytes(64 * 1024);
    /// assert_eq!(config.get_max_payload_bytes(), 65536);
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn max_payload_bytes(mut self, limit: usize) -> Self {
        self.max_payload_bytes = limit;
        self
    }

    /// Whether producers send `NOTIFY pgqrs_jobs` with their enqueues, delivered at commit,
    /// so that listening workers wake at once (default `true`).
    ///
    /// Notifying transactions commit one at a time across the whole server, so concurrent
    /// enqueues of one process into one queue share their wake-ups: one carries it in its
    /// statement, and those that commit meanwhile are covered by one bare `NOTIFY` after
    /// it. Enqueues inside the caller's transaction (`enqueue_tx`) always notify in their
    /// statement.
    ///
    /// ```
    /// let quiet = pgqrs::Config::from_dsn("postgresql://localhost/db")?.notify(false);
    /// assert!(!quiet.get_notify());
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn notify(mut self, notify: bool) -> Self {
        self.notify = notify;
        self
    }

    /// Declares the connection pooler between pgqrs and Postgres (default [`Pooler::None`]):
    /// workers stop listening behind a transaction-mode pooler, and
    /// [`Pooler::TransactionLegacy`] makes old pgbouncers safe. Starts a new, unshared pool.
    ///
    /// ```
    /// use pgqrs::{Config, Pooler};
    /// let config = Config::from_dsn("postgresql://app@127.0.0.1:6432/app")?
    ///     .pooler(Pooler::Transaction);
    /// assert_eq!(config.get_pooler(), Pooler::Transaction);
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn pooler(mut self, pooler: Pooler) -> Self {
        self.pooler = pooler;
        self.pool = Arc::new(OnceCell::new());
        self
    }

    /// The declared connection pooler.
    ///
    /// ```
    /// let config = pgqrs::Config::from_dsn("postgresql://localhost/db")?;
    /// assert_eq!(config.get_pooler(), pgqrs::Pooler::None);
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn get_pooler(&self) -> Pooler {
        self.pooler
    }

    /// Whether producers notify listening workers.
    ///
    /// ```
    /// assert!(pgqrs::Config::from_dsn("postgresql://localhost/db")?.get_notify());
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn get_notify(&self) -> bool {
        self.notify
    }

    /// The wake-up state of queue `queue_id`, shared by this process's producers.
    pub(crate) fn wake_gate(&self, queue_id: i32) -> Arc<WakeGate> {
        let mut gates = self
            .wake_gates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(gates.entry(queue_id).or_default())
    }

    /// The default lease of a dequeued job.
    ///
    /// ```
    /// let config = pgqrs::Config::from_dsn("postgresql://localhost/db")?;
    /// assert_eq!(config.get_visibility_timeout(), pgqrs::DEFAULT_VISIBILITY_TIMEOUT);
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn get_visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    /// The payload size limit in bytes.
    ///
    /// ```
    /// let config = pgqrs::Config::from_dsn("postgresql://localhost/db")?;
    /// assert_eq!(config.get_max_payload_bytes(), pgqrs::DEFAULT_MAX_PAYLOAD_BYTES);
    /// # Ok::<(), pgqrs::Error>(())
    /// ```
    pub fn get_max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    /// The shared pool as pgqrs runs statements on it (with the declared [`Pooler`]'s
    /// handling), connecting on first use.
    ///
    /// ```no_run
    /// # async fn demo() -> pgqrs::Result<()> {
    /// let config = pgqrs::Config::from_dsn("postgresql://localhost/db")?;
    /// let db = config.db().await?;
    /// sqlx::query("SELECT 1").execute(&db).await?;
    /// # Ok(()) }
    /// ```
    pub async fn db(&self) -> Result<Db> {
        Ok(Db::new(self.pool().await?, self.pooler))
    }

    /// The shared sqlx pool, connecting on first use. Behind
    /// [`Pooler::TransactionLegacy`] run statements through [`Config::db`] instead.
    ///
    /// ```no_run
    /// # async fn demo() -> pgqrs::Result<()> {
    /// let config = pgqrs::Config::from_dsn("postgresql://localhost/db")?;
    /// let pool = config.pool().await?;
    /// # Ok(()) }
    /// ```
    pub async fn pool(&self) -> Result<PgPool> {
        let pool = self
            .pool
            .get_or_try_init(|| async {
                PgPoolOptions::new()
                    .max_connections(self.max_connections)
                    .acquire_timeout(self.acquire_timeout)
                    // sqlx pings every connection it hands out: a round trip before each
                    // statement. Like pgx (River's driver), ping only one that sat idle long
                    // enough to have gone stale; a busy connection proves itself by working.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= PING_WHEN_IDLE_FOR {
                                conn.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(self.pooler.connect_options(self.connect.clone()))
                    .await
            })
            .await?;
        Ok(pool.clone())
    }
}

/// Replaces the password of `dsn`, wherever it appears in `text`, with `***`.
fn scrub_password(dsn: &str, text: &str) -> String {
    let userinfo = dsn
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo);
    match userinfo.and_then(|u| u.split_once(':')) {
        Some((_, password)) if !password.is_empty() => text.replace(password, "***"),
        _ => text.to_owned(),
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.connect;
        write!(f, "postgresql://{}@", c.get_username())?;
        if c.get_host().contains(':') {
            write!(f, "[{}]", c.get_host())?;
        } else {
            f.write_str(c.get_host())?;
        }
        write!(
            f,
            ":{}/{}",
            c.get_port(),
            c.get_database().unwrap_or_default()
        )
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("dsn", &self.to_string())
            .field("password", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("notify", &self.notify)
            .field("pooler", &self.pooler)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_shown() {
        let config = Config::from_dsn("postgresql://app:hunter2@db.example:6543/prod").unwrap();
        assert_eq!(config.to_string(), "postgresql://app@db.example:6543/prod");
        let debug = format!("{config:?} {config:#?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn malformed_dsns_are_clear_errors_without_the_password() {
        for dsn in [
            "postgresql://app:hunter2@db.example:notaport/prod",
            "postgresql://app:hunter2@[::1/prod",
            "postgresql://app:hunter2@host/db?sslmode=sometimes",
            "postgresql://app:hunter2@host/db?port=x",
            "mysql://app:hunter2@host/db",
            "",
            "hunter2",
        ] {
            let err = Config::from_dsn(dsn).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(matches!(err, Error::InvalidDsn { .. }), "{dsn}: {text}");
            assert!(!text.contains("hunter2"), "{dsn}: {text}");
        }
    }
}
