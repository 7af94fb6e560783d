//! The pool pgqrs runs its statements on, aware of the pooler in front of Postgres.

use std::fmt;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sqlx::postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Describe, Either, Execute, Executor, PgPool, Postgres, SqlStr, Transaction};

use crate::Pooler;

/// What starts every transaction through a pooler without prepared-statement support: the
/// statement names other clients left on the server connection are dropped first, so that
/// ours (named per client connection) can neither collide with nor run theirs.
const LEGACY_BEGIN: &str = "BEGIN; DEALLOCATE ALL";

/// A connection pool plus the pooler it goes through: what pgqrs runs its statements on.
///
/// Executing on `&Db` runs one statement like `&PgPool` does, except behind
/// [`Pooler::TransactionLegacy`]: there each statement runs in its own transaction that
/// begins with `DEALLOCATE ALL` and is committed before the call returns, because such a
/// pooler may hand each message sync of an unpinned client to a different server connection.
///
/// ```no_run
/// # async fn demo(config: pgqrs::Config) -> pgqrs::Result<()> {
/// let db = config.db().await?;
/// let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&db).await?;
/// let mut tx = db.begin().await?;
/// sqlx::query("SELECT 2").execute(&mut *tx).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    legacy: bool,
}

impl Db {
    pub(crate) fn new(pool: PgPool, pooler: Pooler) -> Self {
        Db {
            pool,
            legacy: pooler == Pooler::TransactionLegacy,
        }
    }

    /// Whether each statement needs a transaction of its own (see [`Pooler::TransactionLegacy`]).
    pub(crate) fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// The sqlx pool underneath (statements on it bypass the pooler handling).
    ///
    /// ```no_run
    /// # async fn demo(db: pgqrs::Db) {
    /// println!("{} connections open", db.pg().size());
    /// # }
    /// ```
    pub fn pg(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a transaction (prefixed as the pooler needs).
    ///
    /// ```no_run
    /// # async fn demo(db: pgqrs::Db) -> Result<(), sqlx::Error> {
    /// let mut tx = db.begin().await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn begin(&self) -> sqlx::Result<Transaction<'static, Postgres>> {
        if self.legacy {
            self.pool.begin_with(LEGACY_BEGIN).await
        } else {
            self.pool.begin().await
        }
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("pool", &self.pool)
            .field("legacy", &self.legacy)
            .finish()
    }
}

impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        Db::new(pool, Pooler::None)
    }
}

impl<'c> Executor<'c> for &'c Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, sqlx::Result<Either<PgQueryResult, PgRow>>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.legacy {
            return self.pool.fetch_many(query);
        }
        let pool = self.pool.clone();
        futures::stream::once(async move {
            let mut tx = pool.begin_with(LEGACY_BEGIN).await?;
            let results: Vec<_> = (&mut *tx).fetch_many(query).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(futures::stream::iter(results.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, sqlx::Result<Option<PgRow>>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.legacy {
            return self.pool.fetch_optional(query);
        }
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut tx = pool.begin_with(LEGACY_BEGIN).await?;
            let row = (&mut *tx).fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, sqlx::Result<PgStatement>>
    where
        'c: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, sqlx::Result<Describe<Postgres>>>
    where
        'c: 'e,
    {
        self.pool.describe(sql)
    }
}
