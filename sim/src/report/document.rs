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
    md.push_str(include_str!("../../before.md"));
    md.push_str(include_str!("../../baseline.md"));
    md.push_str("\n## Scenarios\n\nEach table gives the figures of each phase of a run; *settle* is the time from a change (a join's or leave's request) until the last POP holding subscribers has delivered a broadcast counted after it; *count error once settled* compares what every page shows, sampled each second when no change happened in the 2 seconds before, with the designed count (sockets open, plus connections that vanished without an event and have not expired yet: the service cannot know of those before their TTL). KV operations are over all POPs.\n\n");
    for run in runs {
        md.push_str(&section(run, params));
        md.push('\n');
    }
    md.push_str(&super::countries::section(runs));
    md.push('\n');
    let _ = writeln!(md, "## Over time\n\n![KV operations, keys listed per count, and phantoms after a POP dies]({plot_path})\n");
    md.push_str("## The model\n\nService settings (the defaults of `Config`): ");
    let _ = writeln!(
        md,
        "heartbeat every {} s (so presence windows of {} s), presence written {} s ahead, census leaves of at most {} readers, sweeps every {} s, broadcast slots of {} ms, KV settle wait {} ms, Fanout keep-alive after {} s.\n",
        config.heartbeat_interval_secs,
        config.heartbeat_interval_secs,
        config.presence_ttl_secs,
        config.census_leaf_keys,
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
**A million readers on one site.** The model enforces Compute's limits on every execution (CPU
time, heap, wall time, backend requests: see the last section), lets KV lookups read copies
seconds old, makes list pages slower the farther a POP is from the primary store, and answers
429 above a store-wide rate. The scenarios add one site of 20,000, 100,000 and 1,000,000
readers over 100 POPs (the busiest holding about a fifth), a flash crowd to a million, and the
busiest POP dying under a million readers. The table *Before* shows the design this replaced
failing under the same model.

**How a million readers fit in the run.** Each large site, a million readers' included,
holds steady for a simulated hour; the million-reader run is the longest of the scenarios, and
the two cores run the others beside it. Every open, join, page move, leave, count, census
share and publish is the service's own code, as on Compute. For the three scenarios of a
million readers only, 49 heartbeats in 50 are *aggregated*: the heartbeat's work — renewing
the socket's presence (`presence::refresh`) and claiming the site's sweep when due
(`broadcast::sweep_due`) — is called directly on the same simulated host, metered as an
execution like any, without the WebSocket-over-HTTP request around it (its parsing, the Grip
signature check, the reply), which the other readers' heartbeats measure (20,000 readers'
at a million, as many as the 20,000-reader scenario has). The model also
forgets an expired key two minutes after it expires rather than keep it listable for a day
(`--kv-forget-expired-s`): no listing ever returns an expired key (a verdict below), so no
listing would differ.

";

const DESIGN: &str = "
## The design these figures are for

- **Presence by window.** Time is cut into windows one heartbeat interval long. A connection
  is counted in a window when it has that window's key:
  `site/<site>/p/<window>/<shard>/<id>[/<page id>][/<country>]`, where `<shard>` is the id's
  first 16 bits in binary (the page and the reader's country ride the key: no key of their
  own). Each heartbeat writes the keys of the windows its presence lifetime now reaches
  that it has not written yet: one key a window, written a window ahead, and no delete. A close
  deletes its current and coming windows' keys. Ended windows are never listed again, so their
  keys lapse by TTL and nothing is swept. A connection that vanished counts until the last
  window it wrote ends; one that reconnects naming its presence writes the very same keys.
- **Counting streams one window.** A count lists the window holding its slot's end, in key
  order: a connection's keys are adjacent, so it counts once, without grouping or sorting, and
  only the page being read is held.
- **A count too large for one execution is split.** From the last count (and a tenth for
  growth), a broadcast picks the fewest id bits that leave each share at most 900 readers,
  under one list page. It sends 8 signed requests to the service itself (the `self` backend);
  each share still too large sends 16 more, and so on. Leaves list one page each and answer
  their tally; inner nodes add them up. A million readers are 2,048 leaves in three levels,
  each execution far inside Compute's limits, and the listing costs one page per thousand
  readers as a single listing would.
- **One broadcast per slot, across every POP.** A change claims its 500 ms slot first in the
  POP's cache, then with an insert-only KV write of the slot's key: exactly one POP in the
  world wins, waits for the slot's end plus the KV settle time, counts and publishes. A won
  slot whose execution dies is counted again by the next heartbeat's sweep in that POP.
- **Pages are told what they would show differently.** The count goes out first; the total,
  whose unfolded visits take a listing of their own, follows. A channel gets an item only when
  what its pages display changes: above a thousand the widget shows \"1.2K\", so a count that
  moves within it is not sent, except once every 10 s. Every count message names its slot; a
  page keeps the newest it has shown. The snapshot keeps the exact figure for the API and the
  badge.
- **The owner's dashboard and webhooks ride the broadcast.** Each publish that tells pages
  anything carries the site's dashboard view too, on a channel no reader subscribes to; a
  change no page shows goes to the dashboard alone (no dashboard is open in these runs: such
  items are published and delivered to nobody). After the broadcast, the request that ran it
  checks the site's webhooks (a per-POP cached read of them): not in these runs, which call
  `broadcast::run` themselves and whose sites have none.
- **Sweeps instead of per-heartbeat counts.** Heartbeats claim a sweep at most once per sweep
  interval per site, the same two-step way; the sweep counts and publishes only what changed.
- **Visits without a hot key.** A visit is one insert-only write of its own key beside the
  presence keys (`site/<site>/v/…`, never listed by a count); broadcasts of slots that start a
  new second fold finished seconds into the site's tally with one conditional write.
";

const LIMITS: &str = "
## What production could still do differently from this model

- **Compute's limits** are enforced per execution (see `sim/src/compute/`): CPU time of the
  service's own code (the monotonic time it ran between host calls: at least its CPU time, as
  the thread may also have waited), scaled by a measured wasm factor; heap by a counting
  allocator (what host calls return counts, the model's own growth during them does not);
  wall time on the virtual clock; publishes and census shares as backend requests. An execution that passes one is
  stopped at its next host call. Assumed: Compute's CPUs are as fast as this machine's, and
  stopping waits for a host call (a long pure loop is stopped at its end).
- **CPU time is measured twice when it looks large.** A thread may wait while its code runs
  (the monotonic clock counts that), and this machine is a virtual machine whose thread CPU
  clock now and then charges a thread for milliseconds it did not run: a fixed
  0.4 ms loop read 5 to 13 ms three times in four minutes, and three runs of one scenario with
  the same seed gave slowest executions of 116, 18 and 0.8 ms. So every answer the host gives
  a step is recorded, and a step whose CPU passes a fifth of the limit (or whose execution
  passes the limit, before it is stopped) is run once more on the same answers, with no effect
  on the world (`sim/src/replay/`), timed on the thread's CPU clock; the lesser time is the
  step's. A second run that takes
  another path proves nothing and the first time stands (the verdict counts those, and a test
  runs every step of a short run twice and requires the same path). Compute measures its own
  hosts' time, which this cannot model.
- **A request runs to completion at the virtual time it arrives**; its own clock moves by each
  host call's latency, and its writes become visible to other POPs after their lag, but it does
  not see writes made by requests that arrive while it runs. A listing of several pages would
  therefore read them as of its first page, not as a cursor walk that concurrent writes skew;
  the design never walks (a census leaf reads one page and splits its share when there is
  more), and a verdict checks that no count read a page past a cursor. Concurrent requests
  within one POP never collapse on a cache miss, which the core cache would do anyway.
- **Census shares** run as executions of their own at the POP that asked, a self-call's latency
  later (`--self-call-ms`); production routes a request to the service's own domain through the
  edge, most likely to the same POP, and a share that lands elsewhere lists from there.
- **Key order**: a listing returns keys in lexicographic order, as Fastly's KV does; counting a
  connection once while streaming relies on its keys being adjacent.
- **KV**: lookups read a POP's copy up to `kv-lookup-lag-ms` old, listings the primary's state
  up to `kv-lag-ms` old; list pages are slower the farther the POP (`kv-list-far-ms`); the
  store as a whole answers 429 beyond `kv-store-ops-per-s` (an assumed figure: Fastly publishes
  none). Conditional writes are decided exactly at one primary store; production's KV is
  assumed to do the same (insert-only and generation-match writes would be unsafe otherwise).
- **Other sites**: the large-site scenarios run fifty sites of twenty readers beside the large
  one, sharing the store (and its store-wide rate), the POPs and Fanout; the figures are the
  large site's. The older scenarios run one site alone.
- **Aggregated heartbeats** (a million readers only): 49 in 50 skip the WebSocket-over-HTTP
  request around the heartbeat's presence work; their executions' CPU and heap are the
  presence work's alone.
- **Fanout** delivers every publish to every subscribed socket; its own limits and the browser
  side are not modelled (the widget's rule for counts out of order is: a page keeps the newest
  slot it has shown).
- Latencies and lags are assumptions (see the flags); change them and rerun to see how the
  figures move.
";
