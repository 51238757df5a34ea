//! `orderctl reconcile`: does every read model equal the projection of the
//! write model, and if not, where and how does it differ?
//!
//! Drift is what silently breaks a CQRS system: a read model that lost a
//! write, kept a stale one, or holds an order that does not exist. Each
//! order of the write model is compared with each read model (the summary
//! row and the search document field by field, the cache by status and
//! version), and then each read model is walked for orders the write model
//! does not have. What looks drifted is read again after `recheck_after`
//! from both sides, so an event still on its way is not reported; what is
//! still different is drift. `--repair` then writes the write model's
//! state, each write guarded so that a projector that moved an order on in
//! the meantime wins.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use orderflow_readmodel::OrderSummary;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backfill::{Targets, next_ids};

/// How a read model differs from the write model for one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Drift {
    /// The read model does not have the order.
    Missing,
    /// It has an older version.
    Behind,
    /// It has a newer version than the write model: never right.
    Ahead,
    /// Same version, different content.
    Differs,
    /// It has an order the write model does not.
    Extra,
}

impl Drift {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Behind => "behind",
            Self::Ahead => "ahead",
            Self::Differs => "differs",
            Self::Extra => "extra",
        }
    }
}

/// One read model's findings.
#[derive(Debug, Clone, Default)]
pub struct StoreReport {
    /// Orders of the write model compared with this read model.
    pub checked: u64,
    /// Confirmed drift by kind.
    pub drift: BTreeMap<Drift, u64>,
    /// The first few drifted orders.
    pub examples: Vec<(Uuid, Drift)>,
    /// Orders repaired (with `repair`).
    pub repaired: u64,
    /// Drifted orders a repair did not fix (see the log for why).
    pub unrepaired: u64,
}

impl StoreReport {
    /// Orders found drifted.
    pub fn drifted(&self) -> u64 {
        self.drift.values().sum()
    }
}

/// What reconcile found, per read model (`None`: not checked).
#[derive(Debug, Clone, Default)]
pub struct ReconcileReport {
    /// Orders in the write model.
    pub orders: u64,
    pub summary: Option<StoreReport>,
    pub search: Option<StoreReport>,
    pub status: Option<StoreReport>,
    /// False when stopped by the token before the end.
    pub complete: bool,
    pub elapsed: Duration,
}

impl ReconcileReport {
    /// Each checked read model with its name.
    pub fn stores(&self) -> impl Iterator<Item = (&'static str, &StoreReport)> {
        [
            ("summary", &self.summary),
            ("search", &self.search),
            ("status", &self.status),
        ]
        .into_iter()
        .filter_map(|(name, report)| report.as_ref().map(|r| (name, r)))
    }

    /// Drift left after repair (all of it without `repair`).
    pub fn unresolved(&self) -> u64 {
        self.stores().map(|(_, r)| r.drifted() - r.repaired).sum()
    }
}

/// How to reconcile.
#[derive(Debug, Clone)]
pub struct Options {
    /// Orders per batch.
    pub batch: i64,
    /// Fix what is found.
    pub repair: bool,
    /// Wait before reading suspected drift again.
    pub recheck_after: Duration,
    /// Drifted orders to name per read model.
    pub examples: usize,
}

/// A read model as reconcile sees it.
#[derive(Debug, Clone, Copy)]
enum Store {
    Summary,
    Search,
    Status,
}

/// What a read model holds for one order.
#[derive(Debug)]
enum Stored {
    Summary(OrderSummary),
    /// The document, and the engine's external version.
    Search(OrderSummary, i64),
    /// Status and version.
    Status(String, i64),
}

impl Stored {
    /// The stored version, and whether the rest equals `want`. For search
    /// the engine's version is the one compared (it decides what the engine
    /// accepts next), and the document must say the same.
    fn judge(&self, want: &OrderSummary) -> (i64, bool) {
        match self {
            Self::Summary(s) => (s.version, s == want),
            Self::Search(s, engine) => (*engine, s == want && s.version == *engine),
            Self::Status(status, version) => (*version, *status == want.status),
        }
    }
}

impl Store {
    /// What this read model holds for `ids`. Read *before* the write model,
    /// so that a read model is never seen ahead of the write model just
    /// because an order moved on between the two reads.
    async fn load(self, targets: &Targets, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Stored>> {
        Ok(match self {
            Self::Summary => {
                let pool = targets.summary.as_ref().expect("summary target");
                orderflow_readstore::summary::maintenance::load(pool, ids)
                    .await?
                    .into_iter()
                    .map(|(id, s)| (id, Stored::Summary(s)))
                    .collect()
            }
            Self::Search => {
                let search = targets.search.as_ref().expect("search target");
                search
                    .load_versioned(ids)
                    .await
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", search.alias))?
                    .into_iter()
                    .map(|(id, (s, engine))| (id, Stored::Search(s, engine)))
                    .collect()
            }
            Self::Status => {
                let status = targets.status.as_ref().expect("status target");
                status
                    .load(ids)
                    .await?
                    .into_iter()
                    .map(|(id, (s, v))| (id, Stored::Status(s, v)))
                    .collect()
            }
        })
    }

    /// Orders stored after `after`; `None` when the walk is done.
    async fn ids_after(
        self,
        targets: &Targets,
        after: &mut Walk,
        batch: i64,
    ) -> anyhow::Result<Option<Vec<Uuid>>> {
        match (self, &mut *after) {
            (_, Walk::Done) => Ok(None),
            (Self::Summary, Walk::After(last)) => {
                let pool = targets.summary.as_ref().expect("summary target");
                let ids = orderflow_readstore::summary::maintenance::ids_after(
                    pool,
                    last.unwrap_or(Uuid::nil()),
                    batch,
                )
                .await?;
                *after = ids.last().map_or(Walk::Done, |id| Walk::After(Some(*id)));
                Ok(Some(ids))
            }
            (Self::Search, Walk::After(last)) => {
                let search = targets.search.as_ref().expect("search target");
                let ids = search.ids_after(*last, batch).await?;
                *after = ids.last().map_or(Walk::Done, |id| Walk::After(Some(*id)));
                Ok(Some(ids))
            }
            (Self::Status, Walk::Cursor(cursor)) => {
                let status = targets.status.as_ref().expect("status target");
                let (next, ids) = status
                    .scan_ids(*cursor, usize::try_from(batch).unwrap_or(1000))
                    .await?;
                *after = if next == 0 {
                    Walk::Done
                } else {
                    Walk::Cursor(next)
                };
                Ok(Some(ids))
            }
            _ => unreachable!("a walk is started for its own store"),
        }
    }

    fn walk(self) -> Walk {
        match self {
            Self::Status => Walk::Cursor(0),
            Self::Summary | Self::Search => Walk::After(None),
        }
    }

    /// Writes the write model's state for `drifted` orders; returns how many
    /// were repaired.
    async fn repair(
        self,
        targets: &Targets,
        drifted: &[(Uuid, Drift, i64)],
        expected: &HashMap<Uuid, OrderSummary>,
    ) -> anyhow::Result<u64> {
        let mut forward = Vec::new();
        let mut replace = Vec::new();
        let mut extra = Vec::new();
        for (id, drift, seen) in drifted {
            match (drift, expected.get(id)) {
                (Drift::Extra, _) => extra.push(*id),
                (Drift::Missing | Drift::Behind, Some(want)) => forward.push(want.clone()),
                (Drift::Ahead | Drift::Differs, Some(want)) => replace.push((*seen, want)),
                (_, None) => {}
            }
        }
        let mut repaired = 0;
        match self {
            Self::Summary => {
                let pool = targets.summary.as_ref().expect("summary target");
                repaired +=
                    orderflow_readstore::summary::maintenance::backfill(pool, &forward).await?;
                repaired +=
                    orderflow_readstore::summary::maintenance::replace(pool, &replace).await?;
                repaired += orderflow_readstore::summary::maintenance::remove(pool, &extra).await?;
            }
            Self::Search => {
                let search = targets.search.as_ref().expect("search target");
                repaired += search.backfill(&forward).await?;
                // A document cannot be moved back below its external version
                // (the engine's guard against stale writes); only a rebuild
                // of the index fixes one that is ahead.
                let same_version: Vec<&OrderSummary> = replace
                    .iter()
                    .filter(|(seen, want)| *seen == want.version)
                    .map(|(_, want)| *want)
                    .collect();
                if same_version.len() < replace.len() {
                    tracing::warn!(
                        documents = replace.len() - same_version.len(),
                        "orderctl.reconcile search documents ahead of the write model cannot be \
                         moved back in place; rebuild the index"
                    );
                }
                repaired += search.overwrite(&same_version).await?;
                repaired += search.remove(&extra).await?;
            }
            Self::Status => {
                let status = targets.status.as_ref().expect("status target");
                repaired += status.backfill(&forward).await?;
                repaired += status.replace(&replace).await?;
                repaired += status.remove(&extra).await?;
            }
        }
        Ok(repaired)
    }
}

/// Where a walk over a read model's orders is.
#[derive(Debug, Clone, Copy)]
enum Walk {
    After(Option<Uuid>),
    Cursor(u64),
    Done,
}

fn classify(want: &OrderSummary, stored: Option<&Stored>) -> Option<(Drift, i64)> {
    match stored.map(|s| s.judge(want)).as_ref() {
        None => Some((Drift::Missing, 0)),
        Some((version, _)) if *version < want.version => Some((Drift::Behind, *version)),
        Some((version, _)) if *version > want.version => Some((Drift::Ahead, *version)),
        Some((version, false)) => Some((Drift::Differs, *version)),
        Some(_) => None,
    }
}

/// Compares the write model behind `write` with every read model in
/// `targets` and, with `options.repair`, fixes what differs.
pub async fn reconcile(
    write: &PgPool,
    targets: &Targets,
    options: &Options,
    token: &CancellationToken,
) -> anyhow::Result<ReconcileReport> {
    anyhow::ensure!(options.batch >= 1, "batch must be at least 1");
    let started = Instant::now();
    let stores: Vec<Store> = [
        (Store::Summary, targets.summary.is_some()),
        (Store::Search, targets.search.is_some()),
        (Store::Status, targets.status.is_some()),
    ]
    .into_iter()
    .filter_map(|(store, on)| on.then_some(store))
    .collect();
    if let Some(search) = &targets.search {
        // Documents indexed a moment ago are searchable for the extras walk.
        search
            .client
            .indices()
            .refresh(elasticsearch::indices::IndicesRefreshParts::Index(&[
                &search.alias,
            ]))
            .send()
            .await?;
    }

    // Pass 1: every order of the write model against every read model.
    let mut report = ReconcileReport::default();
    let mut reports: Vec<StoreReport> = vec![StoreReport::default(); stores.len()];
    let mut suspects: Vec<Vec<Uuid>> = vec![Vec::new(); stores.len()];
    let mut after = None;
    let mut complete = true;
    loop {
        if token.is_cancelled() {
            complete = false;
            break;
        }
        let ids = next_ids(write, after, options.batch).await?;
        let Some(last) = ids.last().copied() else {
            break;
        };
        after = Some(last);
        report.orders += ids.len() as u64;
        let mut stored = Vec::with_capacity(stores.len());
        for store in &stores {
            stored.push(store.load(targets, &ids).await?);
        }
        let expected = orderflow_writemodel::readback::summaries(write, Some(&ids)).await?;
        for (i, stored) in stored.iter().enumerate() {
            reports[i].checked += expected.len() as u64;
            suspects[i].extend(
                expected
                    .iter()
                    .filter(|want| classify(want, stored.get(&want.order_id)).is_some())
                    .map(|want| want.order_id),
            );
        }
    }

    // Pass 2: whatever looked drifted, read again from both sides.
    if suspects.iter().any(|s| !s.is_empty()) {
        tokio::time::sleep(options.recheck_after).await;
    }
    for (i, store) in stores.iter().enumerate() {
        for chunk in suspects[i].chunks(usize::try_from(options.batch)?) {
            let stored = store.load(targets, chunk).await?;
            let expected = orderflow_writemodel::readback::summaries(write, Some(chunk)).await?;
            let drifted: Vec<(Uuid, Drift, i64)> = expected
                .iter()
                .filter_map(|want| {
                    classify(want, stored.get(&want.order_id)).map(|(d, v)| (want.order_id, d, v))
                })
                .collect();
            let expected: HashMap<Uuid, OrderSummary> =
                expected.into_iter().map(|s| (s.order_id, s)).collect();
            record(
                &mut reports[i],
                store,
                targets,
                &drifted,
                &expected,
                options,
            )
            .await?;
        }
    }

    // Pass 3: orders a read model has and the write model does not.
    for (i, store) in stores.iter().enumerate() {
        let mut walk = store.walk();
        // SCAN may name a key twice, even across calls.
        let mut counted: HashSet<Uuid> = HashSet::new();
        while complete {
            if token.is_cancelled() {
                complete = false;
                break;
            }
            let Some(ids) = store.ids_after(targets, &mut walk, options.batch).await? else {
                break;
            };
            if ids.is_empty() {
                continue;
            }
            let known: HashSet<Uuid> =
                sqlx::query_scalar("SELECT id FROM orders WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(write)
                    .await?
                    .into_iter()
                    .collect();
            let extra: Vec<(Uuid, Drift, i64)> = ids
                .iter()
                .filter(|id| !known.contains(id) && counted.insert(**id))
                .map(|id| (*id, Drift::Extra, 0))
                .collect();
            record(
                &mut reports[i],
                store,
                targets,
                &extra,
                &HashMap::new(),
                options,
            )
            .await?;
        }
    }

    for (store, store_report) in stores.iter().zip(reports) {
        match store {
            Store::Summary => report.summary = Some(store_report),
            Store::Search => report.search = Some(store_report),
            Store::Status => report.status = Some(store_report),
        }
    }
    report.complete = complete;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Counts confirmed drift, and repairs it when asked.
async fn record(
    report: &mut StoreReport,
    store: &Store,
    targets: &Targets,
    drifted: &[(Uuid, Drift, i64)],
    expected: &HashMap<Uuid, OrderSummary>,
    options: &Options,
) -> anyhow::Result<()> {
    if drifted.is_empty() {
        return Ok(());
    }
    for (id, drift, _) in drifted {
        *report.drift.entry(*drift).or_default() += 1;
        if report.examples.len() < options.examples {
            report.examples.push((*id, *drift));
        }
    }
    if options.repair {
        let repaired = store.repair(targets, drifted, expected).await?;
        report.repaired += repaired;
        report.unrepaired += drifted.len() as u64 - repaired.min(drifted.len() as u64);
    }
    Ok(())
}
