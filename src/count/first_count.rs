//! A reader's first count: what a page is told as soon as it joins (or moves to another page),
//! so it shows a number at once instead of waiting for the next slot's broadcast.

use crate::count::floor::Floor;
use crate::count::presence::Lease;
use crate::count::snapshot;
use crate::platform::Services;
use crate::wire::protocol;
use crate::wire::site::SiteId;

/// A reader whose first count is asked for (a socket's, or an SSE stream's).
pub struct Reader<'a> {
    pub site: &'a SiteId,
    pub lease: &'a Lease,
    /// It shows totals; its opening counted a visit; it took a closing tab's presence over.
    pub totals: bool,
    pub visited: bool,
    pub took_over: bool,
    /// When its presence was written, if not by the request asking (a socket's, at OPEN).
    pub written_ms: Option<u64>,
}

/// A reader's first count (a socket's, or a stream's), so it shows a number at once instead
/// of waiting for the next slot's broadcast: the last broadcast's count (read from the POP's
/// one-second snapshot cache: no listing) plus this page if that broadcast counted before the
/// page's presence was written, and likewise the total plus this visit, and the count of its page. On a
/// settled site that is the exact count; on a changing one, the broadcast this join claims
/// corrects it within a slot. After a move to another page (`moved`) the reader was counted
/// on the site already, only not on its new page.
pub fn first_count(services: &Services, reader: &Reader, moved: bool) -> Option<String> {
    let (lease, site) = (reader.lease, reader.site);
    let now = services.clock.now_ms();
    // When the reader's presence was written: at a socket's OPEN, or by the request asking (a
    // move, a stream's open); None for a connection in no count (an automated one): nothing
    // of it is unseen.
    let written_ms = lease
        .is_present()
        .then_some(reader.written_ms.unwrap_or(now));
    if written_ms.is_some() && !moved {
        snapshot::note_join(services.cache, site, now);
    }
    let snapshot = snapshot::cached(services, site)
        .map(|found| found.filter(|s| !s.outlived(now, services.config)));
    let (count, total, page_count, slot, pages) = match snapshot {
        // Someone left since: the snapshot is too high, and the broadcast is under a second
        // away (a page reloaded would otherwise see itself counted twice, then once).
        Ok(Some(last)) if snapshot::counts_a_leaver(services.cache, site, &last) => return None,
        Ok(Some(last)) => {
            // A presence taken over from a closing tab was counted already.
            let unseen =
                u64::from(written_ms.is_some_and(|w| w > last.slot_end_ms) && !reader.took_over);
            let unseen_on_site = if moved { 0 } else { unseen };
            let total = (reader.totals && !moved)
                .then_some(last.total)
                .flatten()
                .map(|t| t + unseen * u64::from(reader.visited));
            let page_count = lease
                .page
                .as_deref()
                .map(|p| last.page_count(p).map(|n| n + unseen));
            // Tagged with the snapshot's slot: any later broadcast supersedes it, an older
            // one arriving late does not.
            let slot = Some(last.slot_end_ms);
            (
                last.count + unseen_on_site,
                total,
                page_count,
                slot,
                last.pages,
            )
        }
        // No broadcast yet (a new site), or only one from before everyone it counted left
        // without a word: this page is the first.
        Ok(None) => {
            let n = u64::from(written_ms.is_some());
            (
                n,
                None,
                lease.page.as_ref().map(|_| Some(n)),
                None,
                Vec::new(),
            )
        }
        // The broadcast will tell it.
        Err(_) => return None,
    };
    let floor = Floor::of(services, site);
    let total = total.map(|t| floor.total(t));
    Some(match page_count {
        Some(page_count) => protocol::page_update(
            floor.show(count),
            total,
            floor.show_page(count, &pages, page_count),
            slot,
        ),
        None => protocol::update(floor.show(count), total, slot),
    })
}
