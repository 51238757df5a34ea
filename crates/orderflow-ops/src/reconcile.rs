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
//!
//! The passes are one code path over `&dyn ReadStore`: what a store holds,
//! how its entries are walked, written and compared field by field is the
//! store adapter's (`orderflow-readstore`), not this job's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use orderflow_readmodel::OrderSummary;
use orderflow_readstore::{ReadStore, Stored};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backfill::{Targets, next_ids};
use crate::rebuild::progress::{Progress, Silent};

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

    /// Where the findings of read model `model` go.
    fn slot(&mut self, model: &str) -> anyhow::Result<&mut Option<StoreReport>> {
        Ok(match model {
            "summary" => &mut self.summary,
            "search" => &mut self.search,
            "status" => &mut self.status,
            other => anyhow::bail!("no report for read model {other}"),
        })
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

/// How `stored` compares with `want`: `None` when equal, else the drift
/// and the version the store holds (0 when missing). The version first
/// (for the search index the engine's, which decides what it accepts
/// next), then the store's own field-by-field comparison.
fn classify(
    store: &dyn ReadStore,
    want: &OrderSummary,
    stored: Option<&Stored>,
) -> anyhow::Result<Option<(Drift, i64)>> {
    let Some(stored) = stored else {
        return Ok(Some((Drift::Missing, 0)));
    };
    Ok(if stored.version < want.version {
        Some((Drift::Behind, stored.version))
    } else if stored.version > want.version {
        Some((Drift::Ahead, stored.version))
    } else if !store.differences(stored, want)?.is_empty() {
        Some((Drift::Differs, stored.version))
    } else {
        None
    })
}

/// The drifted orders of `expected` in `store`, with what it holds.
fn drifted(
    store: &dyn ReadStore,
    expected: &[OrderSummary],
    stored: &HashMap<Uuid, Stored>,
) -> anyhow::Result<Vec<(Uuid, Drift, i64)>> {
    let mut out = Vec::new();
    for want in expected {
        if let Some((drift, version)) = classify(store, want, stored.get(&want.order_id))? {
            out.push((want.order_id, drift, version));
        }
    }
    Ok(out)
}

/// Writes the write model's state for `drifted` orders; returns how many
/// were repaired. Missing and behind go forward (the guarded backfill);
/// ahead and differing are replaced where they still hold the version
/// seen; extra ones are deleted.
async fn repair(
    store: &dyn ReadStore,
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
    Ok(store.backfill(&forward).await?
        + store.replace(&replace).await?
        + store.remove(&extra).await?)
}

/// Compares the write model behind `write` with every read model in
/// `targets` and, with `options.repair`, fixes what differs.
pub async fn reconcile(
    write: &PgPool,
    targets: &Targets,
    options: &Options,
    token: &CancellationToken,
) -> anyhow::Result<ReconcileReport> {
    reconcile_with_progress(write, targets, options, token, &Silent).await
}

/// [`reconcile`], reporting how far each pass is to `progress`
/// (`orderctl reconcile` draws a bar on a terminal).
pub async fn reconcile_with_progress(
    write: &PgPool,
    targets: &Targets,
    options: &Options,
    token: &CancellationToken,
    progress: &dyn Progress,
) -> anyhow::Result<ReconcileReport> {
    let stores = targets.stores();
    let stores: Vec<&dyn ReadStore> = stores.iter().map(AsRef::as_ref).collect();
    let (mut report, checked) = reconcile_stores(write, &stores, options, token, progress).await?;
    for (store, checked) in stores.iter().zip(checked) {
        *report.slot(store.model())? = Some(checked);
    }
    Ok(report)
}

/// The one code path over any read stores: each store's findings, in the
/// order of `stores`, and the report without them.
async fn reconcile_stores(
    write: &PgPool,
    stores: &[&dyn ReadStore],
    options: &Options,
    token: &CancellationToken,
    progress: &dyn Progress,
) -> anyhow::Result<(ReconcileReport, Vec<StoreReport>)> {
    anyhow::ensure!(options.batch >= 1, "batch must be at least 1");
    let started = Instant::now();
    let page = usize::try_from(options.batch)?;
    for store in stores {
        // What was written a moment ago is seen by the extras walk.
        store.refresh().await?;
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(write)
        .await?;
    let total = u64::try_from(total).unwrap_or(0);

    // Pass 1: every order of the write model against every read model.
    // Each read model is read *before* the write model, so that it is never
    // seen ahead of the write model just because an order moved on between
    // the two reads.
    progress.phase("compare", total);
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
        for store in stores {
            stored.push(store.read(&ids).await?);
        }
        let expected = orderflow_writemodel::readback::summaries(write, Some(&ids)).await?;
        for (i, stored) in stored.iter().enumerate() {
            reports[i].checked += expected.len() as u64;
            suspects[i].extend(
                drifted(stores[i], &expected, stored)?
                    .into_iter()
                    .map(|(id, _, _)| id),
            );
        }
        progress.position(report.orders);
    }
    progress.finish(&format!("{} orders", report.orders));

    // Pass 2: whatever looked drifted, read again from both sides.
    let suspected: usize = suspects.iter().map(Vec::len).sum();
    if suspected > 0 {
        tokio::time::sleep(options.recheck_after).await;
        progress.phase("recheck", suspected as u64);
    }
    let mut rechecked = 0;
    for (i, store) in stores.iter().enumerate() {
        for chunk in suspects[i].chunks(page) {
            let stored = store.read(chunk).await?;
            let expected = orderflow_writemodel::readback::summaries(write, Some(chunk)).await?;
            let drifted = drifted(*store, &expected, &stored)?;
            let expected: HashMap<Uuid, OrderSummary> =
                expected.into_iter().map(|s| (s.order_id, s)).collect();
            record(&mut reports[i], *store, &drifted, &expected, options).await?;
            rechecked += chunk.len() as u64;
            progress.position(rechecked);
        }
    }
    if suspected > 0 {
        progress.finish(&format!("{rechecked} suspects"));
    }

    // Pass 3: orders a read model has and the write model does not.
    for (i, store) in stores.iter().enumerate() {
        if !complete {
            break;
        }
        // As many as the write model has, unless some are extra.
        progress.phase(&format!("{} extras", store.model()), report.orders);
        let mut walked = 0;
        let mut pages = store.ids(page);
        // SCAN may name a key twice, even across calls.
        let mut counted: HashSet<Uuid> = HashSet::new();
        loop {
            if token.is_cancelled() {
                complete = false;
                break;
            }
            let Some(ids) = pages.try_next().await? else {
                break;
            };
            if ids.is_empty() {
                continue;
            }
            walked += ids.len() as u64;
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
            record(&mut reports[i], *store, &extra, &HashMap::new(), options).await?;
            progress.position(walked);
        }
        progress.finish(&format!("{walked} walked"));
    }

    report.complete = complete;
    report.elapsed = started.elapsed();
    Ok((report, reports))
}

/// Counts confirmed drift, and repairs it when asked.
async fn record(
    report: &mut StoreReport,
    store: &dyn ReadStore,
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
        let repaired = repair(store, drifted, expected).await?;
        report.repaired += repaired;
        report.unrepaired += drifted.len() as u64 - repaired.min(drifted.len() as u64);
    }
    Ok(())
}
