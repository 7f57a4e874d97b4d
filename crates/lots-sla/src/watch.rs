//! Alert fan-out: one listener per replica follows the alerts table in commit order and
//! broadcasts each committed alert once; every `WatchAlerts` stream filters that broadcast. A
//! stream never holds a Postgres connection: it reads its snapshot, then only the broadcast.
//!
//! Commit order, not `seq` order: concurrent claimers (and replicas) commit alerts out of `seq`
//! order by any amount. Each alert records the id of the transaction that wrote it (`xid`). A
//! Postgres snapshot says which transactions it sees: all below its `xmin`, none from `xmax`
//! on, and between them all but those still running (`xip`). The hub polls with a fresh snapshot
//! and reads only alerts with `xid >= ` the previous poll's `xmin` (everything older was visible
//! then), remembering which of those it has sent; so it broadcasts each alert exactly once. A
//! stream subscribes before it takes its own snapshot, and forwards exactly the broadcast
//! alerts its snapshot did not see: none twice, none missed, whatever the commit order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::Result;
use crate::grpc::AlertRow;
use crate::timer::ALERTS_CHANNEL;

/// Alerts a slow stream may fall behind the hub before it is ended (it reconnects).
const BACKLOG: usize = 16_384;
/// The hub looks even without a notification this often (a lost NOTIFY costs this much delay).
const POLL: Duration = Duration::from_secs(2);

/// Which transactions a snapshot sees.
#[derive(Debug, Clone)]
pub struct Snapshot {
    xmin: i64,
    xmax: i64,
    xip: Vec<i64>,
}

impl Snapshot {
    /// The current transaction's snapshot (REPEATABLE READ: the one its queries see).
    pub async fn current(conn: &mut PgConnection) -> Result<Snapshot> {
        let (xmin, xmax, xip): (i64, i64, Vec<i64>) = sqlx::query_as(
            "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint,
                    ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x)
             FROM pg_current_snapshot() AS s",
        )
        .fetch_one(conn)
        .await?;
        Ok(Snapshot { xmin, xmax, xip })
    }

    /// Whether the snapshot sees what transaction `xid` committed.
    pub fn sees(&self, xid: i64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.xip.contains(&xid))
    }
}

/// Starts a read-only transaction whose queries all see one snapshot.
pub async fn snapshot_tx(pool: &PgPool) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, Snapshot)> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let snapshot = Snapshot::current(&mut tx).await?;
    Ok((tx, snapshot))
}

/// The replica's one follower of the alerts table.
#[derive(Clone)]
pub struct AlertHub {
    tx: broadcast::Sender<Arc<AlertRow>>,
    /// True once the first poll is done: a stream must not take its snapshot before that, or an
    /// alert committed between its snapshot and the hub's first could be missed.
    ready: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for AlertHub {
    fn default() -> Self {
        AlertHub { tx: broadcast::channel(BACKLOG).0, ready: Arc::new(tokio::sync::watch::channel(false).0) }
    }
}

/// Where the hub has read to.
#[derive(Default)]
struct Cursor {
    /// Every alert from a transaction below this has been broadcast.
    xmin: Option<i64>,
    /// Alerts at or above `xmin` broadcast already, with their transaction.
    sent: HashMap<Uuid, i64>,
}

impl AlertHub {
    /// Alerts committed from now on, each once.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<AlertRow>> {
        self.tx.subscribe()
    }

    /// Waits (at most `limit`) until the hub follows the table; false if it does not yet.
    pub async fn ready(&self, limit: Duration) -> bool {
        let mut rx = self.ready.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|r| *r)).await.is_ok_and(|r| r.is_ok())
    }

    /// Follows the alerts table until cancelled: polls on NOTIFY and every [`POLL`] (also while
    /// LISTEN cannot be had); the cursor lives in memory, so nothing is skipped meanwhile.
    pub async fn run(self, pool: PgPool, token: CancellationToken) {
        let mut cursor = Cursor::default();
        let mut pause = Duration::from_millis(100);
        let mut listener: Option<PgListener> = None;
        loop {
            if listener.is_none() {
                match listen(&pool).await {
                    Ok(l) => listener = Some(l),
                    Err(err) => tracing::warn!(error = %err, "alert listener cannot LISTEN; polling meanwhile"),
                }
            }
            match self.poll(&pool, &mut cursor).await {
                Ok(()) => {
                    pause = Duration::from_millis(100);
                    self.ready.send_replace(true);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "reading new alerts failed; retrying");
                    if sleep_or_stop(&token, &mut pause).await {
                        return;
                    }
                    continue;
                }
            }
            let notified = async {
                match listener.as_mut() {
                    Some(l) => l.try_recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = token.cancelled() => return,
                n = notified => if let Err(err) = n {
                    tracing::warn!(error = %err, "alert listener lost its connection");
                    listener = None;
                },
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Broadcasts the alerts committed since the last poll.
    async fn poll(&self, pool: &PgPool, cursor: &mut Cursor) -> Result<()> {
        let (mut tx, snapshot) = snapshot_tx(pool).await?;
        let from = cursor.xmin.unwrap_or(snapshot.xmin);
        let rows: Vec<AlertRow> =
            sqlx::query_as("SELECT *, xid::text::bigint AS txid FROM alerts WHERE xid >= $1::text::xid8 ORDER BY seq")
                .bind(from.to_string())
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        for row in rows {
            if cursor.sent.insert(row.id, row.txid).is_none() {
                // No receiver is not an error: nobody watches right now.
                let _ = self.tx.send(Arc::new(row));
            }
        }
        cursor.sent.retain(|_, xid| *xid >= snapshot.xmin);
        cursor.xmin = Some(snapshot.xmin);
        Ok(())
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(ALERTS_CHANNEL).await?;
    Ok(listener)
}

/// Sleeps `pause` (doubling it up to 30 s); true if cancelled meanwhile.
async fn sleep_or_stop(token: &CancellationToken, pause: &mut Duration) -> bool {
    let wait = *pause;
    *pause = (*pause * 2).min(Duration::from_secs(30));
    tokio::select! {
        _ = token.cancelled() => true,
        _ = tokio::time::sleep(wait) => false,
    }
}
