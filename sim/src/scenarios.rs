//! The scenarios the report runs, each a small script over the world: who arrives where and
//! when, who leaves, which POP dies.

use liveuser_edge::platform::config::Config;

use crate::clock::{HOUR, MIN, SEC};
use crate::params::Params;
use crate::world::{Client, Leave, World};

/// The service's settings the scenarios run: its defaults, the sites they read served as
/// registered ones (an owner registered them). The registry costs the same either way: one
/// lookup a site per POP in five seconds.
pub fn service_config() -> Config {
    Config {
        unregistered_sites: liveuser_edge::platform::config::UnregisteredSites::Serve,
        ..Config::default()
    }
}

/// POP weights for an uneven spread: a few big POPs, many small (POP i gets 1/(i+1)).
pub fn uneven(pops: usize) -> Vec<f64> {
    (0..pops).map(|i| 1.0 / (i as f64 + 1.0)).collect()
}

/// A finished scenario: its world (with its metrics) and what it was.
pub struct Run {
    pub key: &'static str,
    pub title: String,
    pub world: World,
    /// Phases worth reporting separately: (label, start, end) in µs since the start.
    pub phases: Vec<(String, u64, u64)>,
    /// When a POP died, if one did.
    pub pop_death_us: Option<u64>,
    /// What the scenario itself checks beyond the common figures: (label, value).
    pub notes: Vec<(String, String)>,
}

fn scaled(p: &Params, n: f64) -> usize {
    ((n * p.scale).round() as usize).max(1)
}

/// Readers that arrive over `ramp_us` and stay a random time (mean `mean_stay_us`), each
/// replaced by a new reader when it leaves: a steady audience.
fn steady_audience(w: &World, readers: usize, ramp_us: u64, mean_stay_us: u64) {
    for i in 0..readers {
        let stay = w.rng.exp(mean_stay_us as f64) as u64;
        let mut reader = w.reader(Some(stay), true);
        reader.mean_stay_us = mean_stay_us;
        w.add_client(reader, ramp_us * i as u64 / readers as u64);
    }
}

/// The small sites' readers: each stays ten minutes on average and is replaced.
fn small_sites(w: &World) {
    for site in 1..=SMALL_SITES {
        for i in 0..SMALL_SITE_READERS {
            let stay = w.rng.exp(10.0 * MIN as f64) as u64;
            let mut reader = w.reader(Some(stay), true);
            reader.site = site;
            reader.mean_stay_us = 10 * MIN;
            w.add_client(reader, 5 * MIN * i as u64 / SMALL_SITE_READERS as u64);
        }
    }
}

/// Scenario 1 and 2: a steady audience for hours.
pub fn steady(key: &'static str, p: &Params, config: &Config, pops: usize, readers: f64) -> Run {
    let readers = scaled(p, readers);
    let w = World::new(p, config.clone(), &uneven(pops));
    let hours = (p.hours * HOUR as f64) as u64;
    steady_audience(&w, readers, 2 * MIN, p.mean_stay_ms * 1000);
    w.run_for(hours);
    // Then a quiet minute: nobody comes or goes, so every page must settle on the exact count.
    w.freeze();
    w.run_for(MIN);
    let first = HOUR.min(hours);
    let last_start = hours.saturating_sub(HOUR);
    Run {
        key,
        title: format!(
            "{} POP{}, {readers} steady readers, {:.1} simulated hours",
            pops,
            if pops == 1 { "" } else { "s (uneven)" },
            hours as f64 / HOUR as f64
        ),
        world: w,
        phases: vec![
            ("first hour".into(), 2 * MIN, first),
            ("last hour".into(), last_start.max(2 * MIN), hours),
            ("quiet minute after".into(), hours, hours + MIN),
        ],
        pop_death_us: None,
        notes: Vec::new(),
    }
}

/// Scenario 3: a flash crowd arrives within a minute, stays, then all leave within a minute.
pub fn flash_crowd(p: &Params, config: &Config) -> Run {
    let readers = scaled(p, 20_000.0);
    let w = World::new(p, config.clone(), &uneven(50));
    for i in 0..readers {
        let reader = w.reader(None, false);
        w.add_client(reader, 60 * SEC * i as u64 / readers as u64);
    }
    w.run_for(3 * MIN);
    let peak = w.clients_open();
    w.everyone_leaves(60 * SEC);
    w.run_for(2 * MIN);
    Run {
        key: "flash-crowd",
        title: format!("Flash crowd: 0 → {readers} readers in 60 s over 50 POPs, 2 minutes, then all leave within 60 s"),
        world: w,
        phases: vec![
            ("arrivals (0–60 s)".into(), 0, 60 * SEC),
            ("holding (60–180 s)".into(), 60 * SEC, 3 * MIN),
            ("leaving (180–300 s)".into(), 3 * MIN, 5 * MIN),
        ],
        pop_death_us: None,
        notes: vec![("open at the peak".into(), peak.to_string())],
    }
}

/// Scenario 4: the POP holding about a tenth of the sockets dies; its readers reconnect.
/// No other reader vanishes here, so every phantom is the dead POP's.
pub fn pop_death(p: &Params, config: &Config) -> Run {
    let mut p = p.clone();
    p.vanish_fraction = 0.0;
    let p = &p;
    let readers = scaled(p, 20_000.0);
    let weights = uneven(50);
    let total: f64 = weights.iter().sum();
    let victim = (0..weights.len())
        .min_by(|&a, &b| {
            let da = (weights[a] / total - 0.10).abs();
            let db = (weights[b] / total - 0.10).abs();
            da.total_cmp(&db)
        })
        .unwrap_or(0);
    let w = World::new(p, config.clone(), &weights);
    steady_audience(&w, readers, 2 * MIN, p.mean_stay_ms * 1000);
    let death = 10 * MIN;
    w.run_for(death - SEC);
    let before = w.clients_open();
    let share = count_at(&w, victim);
    w.kill_pop(victim, SEC);
    w.run_for(6 * MIN);
    Run {
        key: "pop-death",
        title: format!(
            "POP {victim} (holding {:.1}% of {readers} readers' sockets) dies at 10 min; its readers reconnect elsewhere within {} s",
            100.0 * share as f64 / before.max(1) as f64,
            p.reconnect_max_ms / 1000
        ),
        world: w,
        phases: vec![
            ("before (2–10 min)".into(), 2 * MIN, death),
            ("after (10–16 min)".into(), death, 16 * MIN),
        ],
        pop_death_us: Some(death),
        notes: vec![
            ("sockets at the dead POP".into(), share.to_string()),
            ("open before".into(), before.to_string()),
        ],
    }
}

/// Small sites beside a large one, and the readers each has.
const SMALL_SITES: usize = 50;
const SMALL_SITE_READERS: usize = 20;

/// One large site: `readers` over 100 POPs (uneven: the busiest holds about a fifth), arriving
/// over five minutes, then steady with 1% of readers turning over a minute, for `minutes`;
/// beside it, 50 small sites of 20 readers each share the store, the POPs and Fanout (the
/// figures are the large site's). At a million readers, 49 heartbeats in 50 are aggregated
/// (see `world::readers`).
pub fn large(p: &Params, config: &Config, key: &'static str, readers: f64, minutes: u64) -> Run {
    let p = &aggregated_at_scale(p, readers);
    let readers = scaled(p, readers);
    let w = World::with_small_sites(p, config.clone(), &uneven(100), SMALL_SITES);
    // 1% a minute leave (and are replaced): a reader stays 100 minutes on average.
    steady_audience(&w, readers, 5 * MIN, 100 * MIN);
    small_sites(&w);
    let end = 5 * MIN + (minutes * MIN).min((p.hours * HOUR as f64) as u64);
    w.run_for(end);
    w.freeze();
    w.run_for(MIN);
    Run {
        key,
        title: format!(
            "{readers} readers of one site over 100 POPs (uneven), 1% turning over a minute, {} minutes steady, beside {SMALL_SITES} sites of {SMALL_SITE_READERS} readers{}",
            (end - 5 * MIN) / MIN,
            aggregated_note(p)
        ),
        world: w,
        phases: vec![
            ("arrivals (0–5 min)".into(), 0, 5 * MIN),
            ("steady".into(), 5 * MIN, end),
            ("quiet minute after".into(), end, end + MIN),
        ],
        pop_death_us: None,
        notes: Vec::new(),
    }
}

/// The 100,000-reader site of [`large`] with no reader placed in a country, for 15 minutes:
/// what readers by country cost is the difference (see `report::countries`).
pub fn large_without_countries(p: &Params, config: &Config, key: &'static str) -> Run {
    let p = Params {
        countries: false,
        ..p.clone()
    };
    let mut run = large(&p, config, key, 100_000.0, 15);
    run.title = format!("{} (no reader placed in a country)", run.title);
    run
}

/// A flash crowd on one site: 0 → `readers` over 100 POPs in five minutes, five minutes
/// holding (1% a minute turning over), then half of them leave within a minute, and a quiet
/// minute (nobody arriving or leaving) in which every page must settle on what it shows.
pub fn flash_large(p: &Params, config: &Config, key: &'static str, readers: f64) -> Run {
    let p = &aggregated_at_scale(p, readers);
    let readers = scaled(p, readers);
    let w = World::new(p, config.clone(), &uneven(100));
    steady_audience(&w, readers, 5 * MIN, 100 * MIN);
    w.run_for(10 * MIN);
    let peak = w.clients_open();
    w.half_leave(MIN);
    w.run_for(2 * MIN);
    w.freeze();
    w.run_for(MIN);
    Run {
        key,
        title: format!(
            "Flash crowd: 0 → {readers} readers in 5 minutes over 100 POPs, 5 minutes holding, then half leave within a minute{}",
            aggregated_note(p)
        ),
        world: w,
        phases: vec![
            ("arrivals (0–5 min)".into(), 0, 5 * MIN),
            ("holding (5–10 min)".into(), 5 * MIN, 10 * MIN),
            ("half leaving (10–12 min)".into(), 10 * MIN, 12 * MIN),
            ("quiet minute after".into(), 12 * MIN, 13 * MIN),
        ],
        pop_death_us: None,
        notes: vec![("open at the peak".into(), peak.to_string())],
    }
}

/// The busiest of 100 POPs (about a fifth of `readers`) dies once the audience is steady; its
/// readers reconnect elsewhere, naming their presence. No other reader vanishes.
pub fn pop_death_large(p: &Params, config: &Config, key: &'static str, readers: f64) -> Run {
    let mut p = aggregated_at_scale(p, readers);
    p.vanish_fraction = 0.0;
    let p = &p;
    let readers = scaled(p, readers);
    let weights = uneven(100);
    let w = World::new(p, config.clone(), &weights);
    steady_audience(&w, readers, 5 * MIN, 100 * MIN);
    let death = 8 * MIN;
    w.run_for(death - SEC);
    let before = w.clients_open();
    let share = count_at(&w, 0);
    w.kill_pop(0, SEC);
    w.run_for(3 * MIN);
    Run {
        key,
        title: format!(
            "The busiest POP (holding {:.1}% of {readers} readers' sockets) dies at 8 min; its readers reconnect elsewhere within {} s{}",
            100.0 * share as f64 / before.max(1) as f64,
            p.reconnect_max_ms / 1000,
            aggregated_note(p)
        ),
        world: w,
        phases: vec![
            ("before (5–8 min)".into(), 5 * MIN, death),
            ("after (8–11 min)".into(), death, 11 * MIN),
        ],
        pop_death_us: Some(death),
        notes: vec![
            ("sockets at the dead POP".into(), share.to_string()),
            ("open before".into(), before.to_string()),
        ],
    }
}

/// From half a million readers, 49 heartbeats in 50 are aggregated (unless asked otherwise):
/// the other readers' heartbeats (20,000 at a million readers, as many as the 20,000-reader
/// scenario's) take the whole WebSocket-over-HTTP path, and every other request, every count
/// and every publish is the service's own.
fn aggregated_at_scale(p: &Params, readers: f64) -> Params {
    let mut p = p.clone();
    if readers * p.scale >= 500_000.0 && p.aggregated_fraction == 0.0 {
        p.aggregated_fraction = 0.98;
    }
    p
}

fn aggregated_note(p: &Params) -> String {
    if p.aggregated_fraction > 0.0 {
        format!(
            " ({:.0}% of heartbeats aggregated)",
            p.aggregated_fraction * 100.0
        )
    } else {
        String::new()
    }
}

fn count_at(w: &World, pop: usize) -> usize {
    w.clients
        .borrow()
        .iter()
        .filter(|c| c.pop == pop && w.client_is_open(c))
        .count()
}

/// Scenario 5: 200 joins and 200 leaves a second over 20,000 readers.
pub fn churn(p: &Params, config: &Config) -> Run {
    let readers = scaled(p, 20_000.0);
    let rate = 200.0 * p.scale;
    let w = World::new(p, config.clone(), &uneven(50));
    // A steady population of N turning over `rate` a second stays `N / rate` seconds on average.
    let mean_stay = (readers as f64 / rate * SEC as f64) as u64;
    steady_audience(&w, readers, 2 * MIN, mean_stay);
    let duration = 15 * MIN;
    w.run_for(duration);
    Run {
        key: "churn",
        title: format!(
            "Churn: {rate:.0} joins and {rate:.0} leaves a second over {readers} readers, 50 POPs, 15 minutes"
        ),
        world: w,
        phases: vec![
            ("minutes 3–8".into(), 3 * MIN, 8 * MIN),
            ("minutes 10–15".into(), 10 * MIN, 15 * MIN),
        ],
        pop_death_us: None,
        notes: Vec::new(),
    }
}

/// Total visits: `rate` new page views a second (each counts a visit) for a minute over 50
/// POPs; afterwards the stored total must equal the visits the service accepted.
pub fn visits(p: &Params, config: &Config, rate: f64) -> Run {
    let w = World::new(p, config.clone(), &uneven(50));
    let seconds = 60u64;
    let n = (rate * seconds as f64) as usize;
    for i in 0..n {
        let stay = w.rng.exp(30.0 * SEC as f64) as u64;
        let mut reader: Client = w.reader(Some(stay), false);
        reader.totals = true;
        reader.leave = Leave::Close;
        w.add_client(reader, seconds * SEC * i as u64 / n as u64);
    }
    w.run_for(seconds * SEC + 3 * MIN);
    let accepted = w.metrics.borrow().visits_accepted;
    let stored = w.stored_total();
    Run {
        key: "visits",
        title: format!("{rate:.0} visits a second for a minute over 50 POPs"),
        world: w,
        phases: vec![("visits".into(), 0, seconds * SEC)],
        pop_death_us: None,
        notes: vec![
            ("visits accepted".into(), accepted.to_string()),
            (
                "total stored".into(),
                stored.map_or("unreadable".into(), |t| t.to_string()),
            ),
        ],
    }
}
