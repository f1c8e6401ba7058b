//! A won slot, counted and published: the census counts the slot's presence window (split
//! over executions when the site is large; its visits not folded yet are listed apart); the
//! count, total and busiest pages are published (a sweep's only when they changed), and stored
//! as the site's snapshot.

use crate::count::broadcast::plan::{BroadcastError, Counted, Plan, Reason};
use crate::count::broadcast::recovery;
use crate::count::floor::Floor;
use crate::count::snapshot::{self, Snapshot};
use crate::count::{census, dashboard, history, page, peak, presence, totals};
use crate::platform::log::Line;
use crate::platform::publisher::{PublishError, PublishItem};
use crate::platform::Services;
use crate::wire::protocol::{self, Shown};
use crate::wire::site::SiteId;

/// The second half of [`run`](super::run), at or after [`Plan::wake_at_ms`]: counts, tells
/// the pages, stores the snapshot, deletes the visits it folded.
pub fn finish(services: &Services, plan: &Plan) -> Result<Counted, BroadcastError> {
    let site = &plan.site;
    let now = services.clock.now_ms();
    recovery::note_started(services, plan, now);
    let mut last = last_snapshot(services, plan);
    // The slot's window: a reader counted is one whose key for the window holding the slot's
    // end was written. The last count says how finely to split the listing.
    let window = presence::window_of(services.config, plan.slot_end_ms);
    let census = census::count(services, site, window, last.as_ref().map(|l| l.count))
        .map_err(BroadcastError::Count)?;
    let minute = peak::minute_of(plan.slot_end_ms);
    let mut current = Snapshot {
        slot_end_ms: plan.slot_end_ms,
        count: census.live,
        total: None,
        pages: busiest_pages(&census.pages),
        peak: Some(peak::next_peak(
            last.as_ref().map(Snapshot::last),
            minute,
            census.live,
        )),
        countries: census.countries.pairs(),
    };
    let joined = last
        .as_ref()
        .is_some_and(|l| snapshot::joined_since(services.cache, site, l));
    // The count's pages are told first; the total (whose visits not folded yet take a listing
    // of their own) follows in a second publish, so a count never waits for it.
    let count_needed = needs_publish(plan, &current, last.as_ref(), joined, now);
    // A reader that joined here was shown the snapshot's count and itself: where that shows
    // differently from the snapshot's ("1K" and one more is "1.1K"), every channel is told as
    // it is. So is a site whose snapshot is five minutes old (pages may have missed one).
    let floor = Floor::of(services, site);
    let shown_apart = last
        .as_ref()
        .is_some_and(|l| !floor.show(l.count).looks_like(&floor.show(l.count + 1)));
    let stale = last
        .as_ref()
        .is_some_and(|l| now >= l.slot_end_ms + snapshot::REFRESH_MS);
    let told = Told::of(
        services,
        floor,
        site,
        &current,
        last.as_ref(),
        (joined && shown_apart) || stale,
    );
    let mut publish = None;
    if count_needed {
        // The total is not read yet: the dashboard is told the last one until it is.
        let so_far = Snapshot {
            total: last.as_ref().and_then(|l| l.total),
            ..current.clone()
        };
        let mut items = told.count_items(site, &current, last.as_ref());
        let dashboard = told.dashboard_item(site, &so_far, "count");
        if !items.is_empty() {
            items.push(dashboard);
            publish = send(services, items);
        } else if dashboard_news(&current, last.as_ref()) {
            // No page shows the change (a count within its "1.2K", or below the floor): the
            // owner's dashboard, which shows it exactly, is told alone.
            tell_dashboard_alone(services, site, dashboard);
        }
    }
    let settled = totals::settle(services.kv, site, now, plan.folds(services.config)).ok();
    current.total = settled.as_ref().map(|s| s.total);
    let total_changed =
        current.total.is_some() && last.as_ref().map(|l| l.total) != Some(current.total);
    let needed = count_needed || total_changed;
    if needed {
        let mut items = told.totals_items(site, &current, last.as_ref());
        let dashboard = told.dashboard_item(site, &current, "totals");
        if !items.is_empty() {
            items.push(dashboard);
        } else if total_changed {
            // A floored total moving within its step: the dashboard shows it exactly.
            tell_dashboard_alone(services, site, dashboard);
        }
        let totals = send(services, items);
        publish = match (publish, totals) {
            (Some(Err(e)), _) | (_, Some(Err(e))) => Some(Err(e)),
            (first, then) => first.or(then),
        };
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
        // Pages told nothing when nothing they show changed (a large count moved within its
        // "1.2K"): the snapshot still takes the exact count, for the API and the badge.
        if publish.as_ref().is_none_or(Result::is_ok) {
            // Best effort: a snapshot that could not be stored only means the next sweep
            // publishes again (so the POP remembers only what the store holds).
            if snapshot::write(services.kv, services.config, site, &current).is_ok() {
                snapshot::remember(services.cache, site, &current);
            }
        }
    }
    let total = current.total;
    // The slot is counted (its publish, if any, went out or failed and is a sweep's to
    // repeat): it is no longer owed.
    recovery::note_done(services, plan);
    // After the publish, so the pages have their count first: a minute that has ended since
    // the last snapshot goes into the site's history.
    if let Some(last) = &last {
        let quiet = history::Quiet::of(services.config);
        let sweep = matches!(plan.reason, Reason::Sweep { .. });
        let silence = history::Silence::ended_by(sweep, census.live);
        if let Err(e) = history::record(services.kv, site, last, minute, quiet, silence) {
            services.log.emit(&Line::Detail {
                event: "history-write-failed",
                site,
                detail: &e.to_string(),
            });
        }
    }
    // Folded visits go with the fold that took them. (Presence keys are never deleted here:
    // a count lists its own window only, and ended windows' keys lapse by their TTL.)
    let doomed = settled.map(|s| s.to_delete).unwrap_or_default();
    let failed = services.kv.delete_many(&doomed).len();
    Ok(Counted {
        count: census.live,
        total,
        keys_listed: census.keys,
        lists: census.pages_listed,
        deleted: doomed.len() - failed,
        publish,
    })
}

/// A change always counts as news; a sweep does when the count differs from the stored
/// snapshot (a changed total is seen apart, once it is read), when a reader joined in this
/// POP after it (a join and a leave in one slot leave the count as it was, but the new page
/// needs it), or when the last publish is old.
fn needs_publish(
    plan: &Plan,
    current: &Snapshot,
    last: Option<&Snapshot>,
    joined: bool,
    now: u64,
) -> bool {
    if plan.reason == Reason::Change {
        return true;
    }
    match last {
        Some(last) => {
            last.count != current.count
                || last.pages != current.pages
                || joined
                || now >= last.slot_end_ms + snapshot::REFRESH_MS
        }
        None => true,
    }
}

/// Publishes the dashboard's item on its own. Its publish is not the pages': a failure is
/// logged, and the next change tells the dashboard again.
fn tell_dashboard_alone(services: &Services, site: &SiteId, item: PublishItem) {
    if let Some(Err(e)) = send(services, vec![item]) {
        services.log.emit(&Line::Detail {
            event: "dashboard-publish-failed",
            site,
            detail: &e.to_string(),
        });
    }
}

/// Whether the owner's dashboard shows `current` differently from `last`: its count, pages or
/// countries, exactly.
fn dashboard_news(current: &Snapshot, last: Option<&Snapshot>) -> bool {
    last.is_none_or(|l| {
        l.count != current.count || l.pages != current.pages || l.countries != current.countries
    })
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

/// How often every channel is told its count even when pages would show it as they do (in
/// the first slot after each such boundary): a page told nothing because this POP's last
/// snapshot was older than what another POP published catches up within this.
pub const RESTATE_MS: u64 = 10_000;

/// What the pages are told, and what they are not: each channel gets an item only if what
/// its pages show changes (a count of a thousand or more shows as "1.2K", and a change within
/// it is not sent; the snapshot keeps the exact figure), except once every [`RESTATE_MS`].
/// The site's channel, its totals', one per page with a count, and one per page that had a
/// count in `last` and has none now (its readers, if any, learn it is 0 or fell out of the
/// busiest pages). Item ids are unique per site and slot, and only one POP broadcasts a slot,
/// so Fanout never drops a fresher count as a repeat.
struct Told {
    floor: Floor,
    id: String,
    restate: bool,
}

impl Told {
    /// What `s` tells pages after `last`: everything when `force`d, when there is no `last`,
    /// or in the first slot after each [`RESTATE_MS`] boundary.
    fn of(
        services: &Services,
        floor: Floor,
        site: &SiteId,
        s: &Snapshot,
        last: Option<&Snapshot>,
        force: bool,
    ) -> Told {
        // The first slot of each RESTATE_MS, whatever the slot length: the same slot in every
        // POP (a POP's own last snapshot may be seconds old, and must not decide it).
        let interval = u64::from(services.config.broadcast_interval_ms).max(1);
        let restate = last.is_none() || force || s.slot_end_ms % RESTATE_MS < interval;
        Told {
            floor,
            id: format!("{site}-{}", s.slot_end_ms),
            restate,
        }
    }

    /// The owner's dashboard's item: it hears of every count a broadcast tells (and of a new
    /// total), on its own channel, which readers' pages never subscribe to, and in the publish
    /// the broadcast makes anyway: no request of its own.
    fn dashboard_item(&self, site: &SiteId, s: &Snapshot, what: &str) -> PublishItem {
        PublishItem {
            channel: dashboard::channel(site),
            id: Some(format!("dashboard-{what}-{}", self.id)),
            content: dashboard::message(s, self.floor),
            close_streams: false,
        }
    }

    /// Whether pages show `now` as they show `before`.
    fn alike(&self, now: Option<Shown>, before: Option<Shown>) -> bool {
        !self.restate
            && match (now, before) {
                (Some(a), Some(b)) => a.looks_like(&b),
                (None, None) => true,
                _ => false,
            }
    }

    fn count_alike(&self, s: &Snapshot, last: Option<&Snapshot>) -> bool {
        let floor = &self.floor;
        self.alike(Some(floor.show(s.count)), last.map(|l| floor.show(l.count)))
    }

    /// The site's channel and the pages' channels.
    fn count_items(
        &self,
        site: &SiteId,
        s: &Snapshot,
        last: Option<&Snapshot>,
    ) -> Vec<PublishItem> {
        let floor = &self.floor;
        let count = floor.show(s.count);
        let count_alike = self.count_alike(s, last);
        let mut items = Vec::new();
        if !count_alike {
            items.push(PublishItem {
                channel: site.channel(),
                id: Some(format!("count-{}", self.id)),
                content: protocol::update(count, None, Some(s.slot_end_ms)),
                close_streams: false,
            });
        }
        let dropped = last
            .into_iter()
            .flat_map(|l| l.pages.iter())
            .filter(|(p, _)| !s.has_page(p));
        for (page_id, _) in s.pages.iter().chain(dropped) {
            let shown = floor.show_page(s.count, &s.pages, s.page_count(page_id));
            let before =
                last.and_then(|l| floor.show_page(l.count, &l.pages, l.page_count(page_id)));
            if count_alike && self.alike(shown, before) {
                continue;
            }
            items.push(PublishItem {
                channel: page::channel(site, page_id),
                id: Some(format!("page-{page_id}-{}", self.id)),
                content: protocol::page_update(count, None, shown, Some(s.slot_end_ms)),
                close_streams: false,
            });
        }
        items
    }

    /// The totals' channel (its pages show the count too), once the total is read.
    fn totals_items(
        &self,
        site: &SiteId,
        s: &Snapshot,
        last: Option<&Snapshot>,
    ) -> Vec<PublishItem> {
        // A floored site's total moves in steps of its floor: no message says an arrival happened.
        let Some(total) = s.total.map(|t| self.floor.total(t)) else {
            return Vec::new();
        };
        let before = last.and_then(|l| l.total).map(|t| self.floor.total(t));
        let total_alike = !self.restate
            && (before == Some(total)
                || self.alike(Some(Shown::exact(total)), before.map(Shown::exact)));
        if self.count_alike(s, last) && total_alike {
            return Vec::new();
        }
        vec![PublishItem {
            channel: site.totals_channel(),
            id: Some(format!("totals-{}", self.id)),
            content: protocol::update(self.floor.show(s.count), Some(total), Some(s.slot_end_ms)),
            close_streams: false,
        }]
    }
}

/// Publishes `items` in one request; `None` when there are none.
fn send(services: &Services, items: Vec<PublishItem>) -> Option<Result<(), PublishError>> {
    (!items.is_empty()).then(|| services.publisher.publish(&items))
}
