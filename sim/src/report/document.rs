//! The whole report, `SIMULATION.md`: the verdicts, the design the figures are for, the
//! baseline, each scenario's section, the plot, the model's settings and what it leaves out.

use std::fmt::Write;

use super::sections::section;
use super::verdicts::verdicts;
use crate::params::Params;
use crate::scenarios::Run;

/// The whole report.
pub fn document(
    runs: &[Run],
    params: &Params,
    config: &liveuser_edge::platform::config::Config,
    took_s: f64,
    plot_path: &str,
) -> String {
    let mut md = String::new();
    md.push_str("# LiveUser on Fastly's network: a simulation\n\n");
    let _ = writeln!(
        md,
        "Regenerate with `scripts/simulate` (this run: {took_s:.0} s on the project's 2-core machine). \
The simulator (`sim/`) runs **the service's own request handling** — `router::handle` for every \
WebSocket-over-HTTP call a socket causes, `broadcast::run` for every broadcast a request wins, \
exactly as `main` does on Compute — over simulated host services behind the same traits \
(`KvStore`, `SharedCache`, `Publisher`, `Clock`, `IdSource`), on a virtual clock. Every random \
choice comes from one seed ({}), so a run is repeatable to the message.\n",
        params.seed
    );
    md.push_str(MODEL_NOW);
    md.push_str("## Verdict\n\n| requirement | measured | |\n|---|---|---|\n");
    for v in verdicts(runs) {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            v.requirement,
            v.measured,
            if v.holds { "holds" } else { "**fails**" }
        );
    }
    md.push_str(DESIGN);
    md.push('\n');
    md.push_str(include_str!("../../baseline.md"));
    md.push_str("\n## Scenarios\n\nEach table gives the figures of each phase of a run; *settle* is the time from a change (a join's or leave's request) until the last POP holding subscribers has delivered a broadcast counted after it; *count error once settled* compares what every page shows, sampled each second when no change happened in the 2 seconds before, with the designed count (sockets open, plus connections that vanished without an event and have not expired yet: the service cannot know of those before their TTL). KV operations are over all POPs.\n\n");
    for run in runs {
        md.push_str(&section(run, params));
        md.push('\n');
    }
    let _ = writeln!(md, "## Over time\n\n![KV operations, keys listed per count, and phantoms after a POP dies]({plot_path})\n");
    md.push_str("## The model\n\nService settings (the defaults of `Config`): ");
    let _ = writeln!(
        md,
        "heartbeat every {} s, presence TTL {} s, sweeps every {} s, broadcast slots of {} ms, KV settle wait {} ms, Fanout keep-alive after {} s.\n",
        config.heartbeat_interval_secs,
        config.presence_ttl_secs,
        config.sweep_interval_secs,
        config.broadcast_interval_ms,
        config.kv_settle_ms,
        config.keep_alive_secs()
    );
    md.push_str("| flag | value | unit | why this value |\n|---|---|---|---|\n");
    for (name, value, unit, reason) in params.table() {
        let _ = writeln!(md, "| `--{name}` | {value} | {unit} | {reason} |");
    }
    md.push_str(LIMITS);
    md
}

const MODEL_NOW: &str = "
**Today's design under a stricter model.** The model now enforces Compute's limits on every
execution (CPU time, heap, wall time, backend requests: see the last section), lets KV lookups
read copies seconds old, makes list pages slower the farther a POP is from the primary store,
and includes a site of 100,000 readers over 100 POPs. Under it, today's design fails where
the verdicts below say: a count lists and sorts the whole site in one execution, so at 20,000
readers a far POP's count takes seconds and its CPU nears half the limit, and at 100,000 the
counts are stopped by Compute. These figures are the *before* of the redesign that keeps cost
and settle time flat up to a million readers (issue 19, in progress).

";

const DESIGN: &str = "
## The design these figures are for

- **Presence keys are bounded.** A connection writes `site/<site>/p/<id>/<expiry>[/<page id>]`
  at OPEN and on each heartbeat, and each refresh deletes the keys older than the one it
  replaces: at most two keys alive (the newest, and the previous one for one more interval,
  because another POP may see the delete of an old key before the write of its successor). A
  close deletes the lease's keys (waiting out the key's one-write-a-second limit if it closes
  right after a refresh). Keys of connections that vanished without an event are deleted by the
  sweep that finds them expired, so listings never carry a day of expired keys. Visits live
  beside them (`site/<site>/v/…`) and are listed apart: a count lists presence keys only.
- **One broadcast per slot, across every POP.** A change claims its 500 ms slot first in the
  POP's cache (one request per POP goes on), then with an insert-only KV write of the slot's
  key: exactly one POP in the world wins, waits for the slot's end plus the KV settle time,
  counts with full 1,000-key pages, and publishes. Trade-off: a slot with changes in P POPs
  costs up to P insert-only writes (one wins) instead of P listings and P publishes.
- **Counts in order.** Every count message names the slot it was counted for; a page keeps the
  newest it has shown, so a slower broadcast of an earlier slot, from another POP, arriving
  late is dropped. A POP never answers an older snapshot than one it has seen.
- **Sweeps instead of per-heartbeat counts.** Heartbeats (and Fanout's keep-alive calls) claim a
  sweep at most once per sweep interval per site, the same two-step way. The sweep counts,
  deletes the expired keys nobody else will (every key of a connection gone without an event,
  and a live connection's keys expired for longer than a TTL), and publishes only if the count
  or total differs from the site's snapshot (or the last publish is five minutes old). Change
  broadcasts delete nothing they list: each key is deleted once.
- **A snapshot for reads.** Every publish stores `<slot> <count> <total>` in one of two rotating
  KV keys (each written at most once a second); `/api/online`, `/api/total` and sweeps read it
  with a lookup, never a listing.
- **Visits without a hot key.** A visit is one insert-only write of its own key; broadcasts of
  slots that start a new second fold finished seconds into the site's tally with one
  conditional write (at most one a second), and delete the folded keys.
";

const LIMITS: &str = "
## What production could still do differently from this model

- **Compute's limits** are enforced per execution (see `sim/src/compute.rs`): CPU time of the
  service's own code, scaled by a measured wasm factor; heap by a counting allocator; wall time
  on the virtual clock; publishes as backend requests. An execution that passes one is stopped
  at its next host call. Assumed: Compute's CPUs are as fast as this machine's, and stopping
  waits for a host call (a long pure loop is stopped at its end).
- **A request runs to completion at the virtual time it arrives**; its own clock moves by each
  host call's latency, and its writes become visible to other POPs after their lag, but it does
  not see writes made by requests that arrive while it runs (a listing of several pages reads
  them as of its first page, not as a cursor walk past concurrent writes). Concurrent requests
  within one POP therefore never collapse on a cache miss, which the core cache would do anyway.
- **KV**: lookups read a POP's copy up to `kv-lookup-lag-ms` old, listings the primary's state
  up to `kv-lag-ms` old; list pages are slower the farther the POP (`kv-list-far-ms`); the
  store as a whole answers 429 beyond `kv-store-ops-per-s` (an assumed figure: Fastly publishes
  none). Conditional writes are decided exactly at one primary store; production's KV is
  assumed to do the same (insert-only and generation-match writes would be unsafe otherwise).
- **One site per world**: each scenario runs one site; other sites sharing the store and POPs
  are not modelled, nor their share of the store-wide rate.
- **Fanout** delivers every publish to every subscribed socket; its own limits and the browser
  side are not modelled (the widget's rule for counts out of order is: a page keeps the newest
  slot it has shown).
- Latencies and lags are assumptions (see the flags); change them and rerun to see how the
  figures move.
";
