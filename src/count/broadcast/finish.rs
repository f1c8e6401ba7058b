//! A won slot, counted and published: one listing reads the site's presence (its visits not
//! folded yet are listed apart); the count, total and busiest pages are published (a sweep's only when they
//! changed), stored as the site's snapshot, and the expired keys the listing found deleted.

use crate::count::broadcast::plan::{BroadcastError, Counted, Plan, Reason, CLOCK_MARGIN_MS};
use crate::count::broadcast::recovery;
use crate::count::floor::Floor;
use crate::count::snapshot::{self, Snapshot};
use crate::count::{history, page, peak, presence, totals};
use crate::platform::kv::list_all;
use crate::platform::log::Line;
use crate::platform::publisher::{PublishError, PublishItem};
use crate::platform::Services;
use crate::wire::hash::fnv1a;
use crate::wire::protocol;
use crate::wire::site::SiteId;

/// The most expired keys one broadcast deletes (the rest wait for the next sweep).
const MAX_SWEEP_DELETES: usize = 1000;

/// The second half of [`run`](super::run), at or after [`Plan::wake_at_ms`]: counts, publishes, stores the
/// snapshot, deletes what the count found expired.
pub fn finish(services: &Services, plan: &Plan) -> Result<Counted, BroadcastError> {
    let site = &plan.site;
    let now = services.clock.now_ms();
    recovery::note_started(services, plan, now);
    // The presence listing reads presence keys only; the visits not folded yet are listed on
    // their own (a popular page's visits of the last seconds, never a day of them).
    let keys =
        list_all(services.kv, &presence::site_prefix(site)).map_err(BroadcastError::Count)?;
    let ttl_ms = u64::from(services.config.presence_ttl_secs) * 1000;
    let census = presence::census_of(&keys, site, now, ttl_ms);
    let settled = totals::settle(services.kv, site, now, plan.folds(services.config)).ok();
    let total = settled.as_ref().map(|s| s.total);
    let mut last = last_snapshot(services, plan);
    let minute = peak::minute_of(plan.slot_end_ms);
    let mut current = Snapshot {
        slot_end_ms: plan.slot_end_ms,
        count: census.live,
        total,
        pages: busiest_pages(&census.pages),
        peak: Some(peak::next_peak(
            last.as_ref().map(Snapshot::last),
            minute,
            census.live,
        )),
    };
    let needed = needs_publish(plan, &current, last.as_ref(), census.newest_join_ms, now);
    let publish = if needed {
        let result = publish(services, site, &current, last.as_ref());
        // A change counted from this POP's second-old copy: the stored snapshot may hold a
        // later broadcast's peaks (from another POP). Read it now, the pages told already.
        if plan.reason == Reason::Change {
            if let Ok(Some(stored)) = snapshot::read(services.kv, services.config, site) {
                let stored_peak = peak::next_peak(Some(stored.last()), minute, census.live);
                current.peak = current.peak.map(|p| peak::merge(p, stored_peak));
                if last
                    .as_ref()
                    .is_none_or(|l| stored.slot_end_ms > l.slot_end_ms)
                {
                    last = Some(stored);
                }
            }
        }
        if result.is_ok() {
            // Best effort: a snapshot that could not be stored only means the next sweep
            // publishes again (so the POP remembers only what the store holds).
            if snapshot::write(services.kv, services.config, site, &current).is_ok() {
                snapshot::remember(services.cache, site, &current);
            }
        }
        Some(result)
    } else {
        None
    };
    // The slot is counted (its publish, if any, went out or failed and is a sweep's to
    // repeat): it is no longer owed.
    recovery::note_done(services, plan);
    // After the publish, so the pages have their count first: a minute that has ended since
    // the last snapshot goes into the site's history, and what the count found expired goes.
    if let Some(last) = &last {
        let quiet = history::Quiet::of(services.config);
        if let Err(e) = history::record(services.kv, site, last, minute, quiet) {
            services.log.emit(&Line::Detail {
                event: "history-write-failed",
                site,
                detail: &e.to_string(),
            });
        }
    }
    // Each expired presence key is deleted once, not by every broadcast of a busy site that
    // listed it meanwhile: a sweep (claimed once per sweep interval per site across every POP)
    // deletes them all, and a change broadcast only its slot's share of them (a key's hash
    // picks one slot of the sweep interval), so a site whose changes take every slot, and
    // leave its sweeps nothing to claim, still loses every expired key within a sweep
    // interval. Folded visits go with the fold that took them.
    let mut doomed = match plan.reason {
        Reason::Sweep { .. } => census.expired,
        Reason::Change => {
            let config = services.config;
            let interval = u64::from(config.broadcast_interval_ms).max(1);
            let shares = (u64::from(config.sweep_interval_secs) * 1000 / interval).max(1);
            let share = (plan.slot_end_ms / interval) % shares;
            census
                .expired
                .into_iter()
                .filter(|k| fnv1a(k.as_bytes()) % shares == share)
                .collect()
        }
    };
    doomed.truncate(MAX_SWEEP_DELETES);
    doomed.extend(settled.map(|s| s.to_delete).unwrap_or_default());
    let failed = services.kv.delete_many(&doomed).len();
    Ok(Counted {
        count: census.live,
        total,
        keys_listed: census.keys,
        deleted: doomed.len() - failed,
        publish,
    })
}

/// A change always publishes; a sweep publishes when the count or total differs from the
/// stored snapshot, when a connection joined after it (a join and a leave in one slot leave
/// the count as it was, but the new page needs it), or when the last publish is old.
fn needs_publish(
    plan: &Plan,
    current: &Snapshot,
    last: Option<&Snapshot>,
    newest_join_ms: Option<u64>,
    now: u64,
) -> bool {
    if plan.reason == Reason::Change {
        return true;
    }
    match last {
        Some(last) => {
            last.count != current.count
                || (current.total.is_some() && last.total != current.total)
                || last.pages != current.pages
                || newest_join_ms.is_some_and(|j| j + CLOCK_MARGIN_MS > last.slot_end_ms)
                || now >= last.slot_end_ms + snapshot::REFRESH_MS
        }
        None => true,
    }
}

/// The last snapshot: a sweep reads the stored one (it decides whether anything changed); a
/// change takes this POP's one-second copy, which the joins that claimed it have mostly read
/// already (it carries the running peaks, and the pages that may have lost their count).
fn last_snapshot(services: &Services, plan: &Plan) -> Option<Snapshot> {
    let found = match plan.reason {
        Reason::Change => snapshot::cached(services, &plan.site),
        // A lookup may return a copy seconds old: the POP's newest wins over an older one.
        Reason::Sweep { .. } => snapshot::read(services.kv, services.config, &plan.site)
            .map(|read| snapshot::newer_of_seen(services.cache, &plan.site, read)),
    };
    found.ok().flatten()
}

/// The pages with counts: the busiest `page::MAX_PAGES` (ties by page id, so every broadcast
/// picks the same), by page id.
pub(super) fn busiest_pages(pages: &std::collections::BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut busiest: Vec<(String, u64)> = pages.iter().map(|(p, n)| (p.clone(), *n)).collect();
    busiest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    busiest.truncate(page::MAX_PAGES);
    busiest.sort();
    busiest
}

/// Every channel in one publish request: the site's, its totals', one per page with a count,
/// and one per page that had a count in `last` and has none now (its readers, if any, learn
/// it is 0 or fell out of the busiest pages). Item ids are unique per site and slot, and only
/// one POP broadcasts a slot, so Fanout never drops a fresher count as a repeat.
fn publish(
    services: &Services,
    site: &SiteId,
    s: &Snapshot,
    last: Option<&Snapshot>,
) -> Result<(), PublishError> {
    let id = format!("{site}-{}", s.slot_end_ms);
    let floor = Floor::of(services.settings, site);
    let count = floor.show(s.count);
    let mut items = vec![PublishItem {
        channel: site.channel(),
        id: Some(format!("count-{id}")),
        content: protocol::update(count, None, Some(s.slot_end_ms)),
    }];
    if let Some(total) = s.total {
        items.push(PublishItem {
            channel: site.totals_channel(),
            id: Some(format!("totals-{id}")),
            content: protocol::update(count, Some(total), Some(s.slot_end_ms)),
        });
    }
    let dropped = last
        .into_iter()
        .flat_map(|l| l.pages.iter())
        .filter(|(p, _)| !s.has_page(p));
    for (page_id, _) in s.pages.iter().chain(dropped) {
        items.push(PublishItem {
            channel: page::channel(site, page_id),
            id: Some(format!("page-{page_id}-{id}")),
            content: protocol::page_update(
                count,
                None,
                s.page_count(page_id).map(|n| floor.show(n)),
                Some(s.slot_end_ms),
            ),
        });
    }
    services.publisher.publish(&items)
}
