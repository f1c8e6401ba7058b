//! The model's parameters: every one is a command-line flag with a documented default and the
//! reason for its value. `SIMULATION.md` prints this table, so a figure can always be traced
//! back to the assumptions it was measured under.

use crate::rng::Latency;

/// How the simulated network behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub seed: u64,
    /// KV lookup latency (edge read).
    pub kv_lookup: Latency,
    /// KV insert latency (a write goes to the primary store).
    pub kv_write: Latency,
    /// KV delete latency.
    pub kv_delete: Latency,
    /// Latency of one list page.
    pub kv_list_page: Latency,
    /// The longest time a write or delete takes to become visible to another POP's listing.
    pub kv_lag_max_ms: u64,
    /// The longest time a lookup in another POP may still return the value before a change.
    pub kv_lookup_lag_max_ms: u64,
    /// How much longer a list page takes from the POP farthest from the primary store.
    pub kv_list_far_ms: u64,
    /// Store-wide operations a second above which calls are answered 429.
    pub kv_store_ops_per_s: u64,
    /// How long an expired key can still be listed.
    pub kv_expired_listed_ms: u64,
    /// When the model forgets an expired key (see `kv`): sooner than production may.
    pub kv_forget_expired_ms: u64,
    /// The shortest time between two accepted writes to one key (faster writes get 429).
    pub kv_key_write_interval_ms: u64,
    /// Keys per list page when the caller names no limit.
    pub kv_default_page: usize,
    /// The largest page a caller can ask for.
    pub kv_max_page: usize,
    /// A publish request from Compute to the publish API.
    pub publish: Latency,
    /// From an accepted publish to the sockets of one POP.
    pub deliver: Latency,
    /// A request from Compute to the service itself (a census share), each way, plus the new
    /// execution's start.
    pub self_call: Latency,
    /// How long Fanout remembers an item id to drop repeats.
    pub dedupe_window_ms: u64,
    /// Largest clock offset of a POP from true time (either way).
    pub clock_skew_ms: u64,
    /// Share of leaving readers whose connection vanishes with no CLOSE or DISCONNECT.
    pub vanish_fraction: f64,
    /// Share of clean leaves that are DISCONNECTs (socket dropped) rather than CLOSEs.
    pub disconnect_fraction: f64,
    /// Mean time a reader stays, in steady scenarios.
    pub mean_stay_ms: u64,
    /// How long a reader whose socket died waits before it reconnects (uniform up to this).
    pub reconnect_max_ms: u64,
    /// Multiplies every audience size (for quick runs).
    pub scale: f64,
    /// Caps the length of the long scenarios, in simulated hours.
    pub hours: f64,
    /// How much longer the service's code takes as wasm on Compute than natively here.
    pub wasm_cpu_factor: f64,
    /// Share of readers whose heartbeats are aggregated (see `world::readers`); the scenarios
    /// of a million readers set their own.
    pub aggregated_fraction: f64,
    /// Whether the handoff places readers in a country (each POP's readers in its own), as
    /// Fastly's geolocation does.
    pub countries: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: 1,
            kv_lookup: Latency::ms(0.5, 5.0),
            kv_write: Latency::ms(15.0, 150.0),
            kv_delete: Latency::ms(15.0, 150.0),
            kv_list_page: Latency::ms(10.0, 60.0),
            kv_lag_max_ms: 300,
            kv_lookup_lag_max_ms: 3_000,
            kv_list_far_ms: 250,
            kv_store_ops_per_s: 100_000,
            kv_expired_listed_ms: 24 * 3_600_000,
            kv_forget_expired_ms: 120_000,
            kv_key_write_interval_ms: 1000,
            kv_default_page: 100,
            kv_max_page: 1000,
            publish: Latency::ms(20.0, 80.0),
            deliver: Latency::ms(20.0, 130.0),
            self_call: Latency::ms(3.0, 12.0),
            dedupe_window_ms: 60_000,
            clock_skew_ms: 10,
            vanish_fraction: 0.01,
            disconnect_fraction: 0.5,
            mean_stay_ms: 600_000,
            reconnect_max_ms: 5_000,
            scale: 1.0,
            hours: 6.0,
            wasm_cpu_factor: 2.5,
            aggregated_fraction: 0.0,
            countries: true,
        }
    }
}

/// One flag: its name, how to read and write it, and why its default is what it is.
pub struct Flag {
    pub name: &'static str,
    pub unit: &'static str,
    pub reason: &'static str,
    get: fn(&Params) -> String,
    set: fn(&mut Params, &str) -> Result<(), String>,
}

fn num<T: std::str::FromStr>(raw: &str) -> Result<T, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not a valid number"))
}

fn latency(raw: &str) -> Result<Latency, String> {
    let (base, spread) = raw
        .split_once(',')
        .ok_or_else(|| format!("{raw:?}: give base,spread in ms"))?;
    let (base, spread): (f64, f64) = (num(base)?, num(spread)?);
    if !(base >= 0.0 && spread >= 0.0 && base.is_finite() && spread.is_finite()) {
        return Err(format!("{raw:?}: latencies are 0 ms or more"));
    }
    Ok(Latency::ms(base, spread))
}

fn show(l: &Latency) -> String {
    format!(
        "{},{}",
        l.base_us as f64 / 1000.0,
        l.spread_us as f64 / 1000.0
    )
}

/// Every flag, in the order the report lists them.
pub const FLAGS: &[Flag] = &[
    Flag {
        name: "seed",
        unit: "",
        reason: "Every random choice (latencies, lags, arrivals) derives from it: the same seed gives the same run.",
        get: |p| p.seed.to_string(),
        set: |p, v| {
            p.seed = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-lookup-ms",
        unit: "base,spread ms",
        reason: "Fastly: KV reads are usually under a millisecond at the edge; a tail of a few ms for misses.",
        get: |p| show(&p.kv_lookup),
        set: |p, v| {
            p.kv_lookup = latency(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-write-ms",
        unit: "base,spread ms",
        reason: "Writes go to the primary store, not the POP; Fastly publishes no figure, so tens of ms with a long tail (assumed, pessimistic).",
        get: |p| show(&p.kv_write),
        set: |p, v| {
            p.kv_write = latency(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-delete-ms",
        unit: "base,spread ms",
        reason: "A delete is a write.",
        get: |p| show(&p.kv_delete),
        set: |p, v| {
            p.kv_delete = latency(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-list-ms",
        unit: "base,spread ms per page",
        reason: "Lists default to strong consistency (read from the primary store, per the SDK docs): slower than lookups; assumed.",
        get: |p| show(&p.kv_list_page),
        set: |p, v| {
            p.kv_list_page = latency(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-lag-ms",
        unit: "ms",
        reason: "Fastly: a changed value may read stale for up to ~300 ms. Applied to lists (pessimistic: lists read the primary store); lookups have their own, longer lag. Each write's lag differs per POP.",
        get: |p| p.kv_lag_max_ms.to_string(),
        set: |p, v| {
            p.kv_lag_max_ms = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-lookup-lag-ms",
        unit: "ms",
        reason: "Lookups read the POP's eventually consistent copy: Fastly's SDK says such a copy can be a few seconds old (its docs: typically under 300 ms). Lists read the primary store and keep kv-lag-ms.",
        get: |p| p.kv_lookup_lag_max_ms.to_string(),
        set: |p, v| {
            p.kv_lookup_lag_max_ms = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-list-far-ms",
        unit: "ms per page",
        reason: "A list page is a round trip to the primary store: tens of ms from a POP near it, a few hundred from the far side of the world. Each POP gets a distance in [0, 1] from the seed; its pages take this much longer at distance 1.",
        get: |p| p.kv_list_far_ms.to_string(),
        set: |p, v| {
            p.kv_list_far_ms = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-store-ops-per-s",
        unit: "operations/s",
        reason: "Fastly publishes no store-wide rate; a store is a shared service and some rate must answer 429. Assumed: 100,000 operations a second for one store, all POPs together.",
        get: |p| p.kv_store_ops_per_s.to_string(),
        set: |p, v| {
            p.kv_store_ops_per_s = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-expired-listed-h",
        unit: "hours",
        reason: "Fastly deletes an expired key \"within 24 hours\" and may list it until then: the worst case.",
        get: |p| (p.kv_expired_listed_ms as f64 / 3_600_000.0).to_string(),
        set: |p, v| {
            p.kv_expired_listed_ms = (num::<f64>(v)? * 3_600_000.0) as u64;
            Ok(())
        },
    },
    Flag {
        name: "kv-forget-expired-s",
        unit: "s",
        reason: "Not production's: the model forgets an expired key this long after it expired, so a million readers' ended windows do not fill memory. Every expired key a listing returns before then is counted; none is, so no listing would have differed with a day.",
        get: |p| (p.kv_forget_expired_ms / 1000).to_string(),
        set: |p, v| {
            p.kv_forget_expired_ms = num::<u64>(v)? * 1000;
            Ok(())
        },
    },
    Flag {
        name: "kv-key-write-interval-ms",
        unit: "ms",
        reason: "Fastly: a key takes about one write a second; faster writes to one key are answered 429.",
        get: |p| p.kv_key_write_interval_ms.to_string(),
        set: |p, v| {
            p.kv_key_write_interval_ms = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-default-page",
        unit: "keys",
        reason: "Production list pages hold 100 keys unless the caller asks for more.",
        get: |p| p.kv_default_page.to_string(),
        set: |p, v| {
            p.kv_default_page = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "kv-max-page",
        unit: "keys",
        reason: "The largest list limit the store grants (Fastly's API caps `limit` at 1000).",
        get: |p| p.kv_max_page.to_string(),
        set: |p, v| {
            p.kv_max_page = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "self-call-ms",
        unit: "base,spread ms",
        reason: "A census share is a backend request to the service's own domain: it leaves the POP's Compute host for the same POP's edge (a few ms each way) and starts a new execution (Compute starts one in well under a millisecond).",
        get: |p| show(&p.self_call),
        set: |p, v| {
            p.self_call = latency(v)?;
            Ok(())
        },
    },
    Flag {
        name: "publish-ms",
        unit: "base,spread ms",
        reason: "A publish is a backend request from the POP to api.fastly.com: one round trip to Fastly's API.",
        get: |p| show(&p.publish),
        set: |p, v| {
            p.publish = latency(v)?;
            Ok(())
        },
    },
    Flag {
        name: "deliver-ms",
        unit: "base,spread ms",
        reason: "Fanout publishes are global: from the API to every POP holding subscribers, across continents (up to ~150 ms).",
        get: |p| show(&p.deliver),
        set: |p, v| {
            p.deliver = latency(v)?;
            Ok(())
        },
    },
    Flag {
        name: "dedupe-window-s",
        unit: "s",
        reason: "Fanout drops an item whose id it has seen recently on the channel; a minute covers any retry.",
        get: |p| (p.dedupe_window_ms / 1000).to_string(),
        set: |p, v| {
            p.dedupe_window_ms = num::<u64>(v)? * 1000;
            Ok(())
        },
    },
    Flag {
        name: "clock-skew-ms",
        unit: "ms",
        reason: "POP clocks are NTP-disciplined; 10 ms either way is generous.",
        get: |p| p.clock_skew_ms.to_string(),
        set: |p, v| {
            p.clock_skew_ms = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "vanish-fraction",
        unit: "share",
        reason: "Fanout sends DISCONNECT when a browser goes away; only a lost origin call leaves no event. 1% is pessimistic, so sweeps are exercised.",
        get: |p| p.vanish_fraction.to_string(),
        set: |p, v| {
            p.vanish_fraction = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "disconnect-fraction",
        unit: "share",
        reason: "Closing a tab sends a WebSocket close; losing the network drops the socket. Half and half.",
        get: |p| p.disconnect_fraction.to_string(),
        set: |p, v| {
            p.disconnect_fraction = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "mean-stay-min",
        unit: "min",
        reason: "Readers of an article or docs page stay minutes, not hours; steady audiences turn over.",
        get: |p| (p.mean_stay_ms as f64 / 60_000.0).to_string(),
        set: |p, v| {
            p.mean_stay_ms = (num::<f64>(v)? * 60_000.0) as u64;
            Ok(())
        },
    },
    Flag {
        name: "reconnect-max-s",
        unit: "s",
        reason: "The client reconnects with a jittered delay after its socket dies.",
        get: |p| (p.reconnect_max_ms as f64 / 1000.0).to_string(),
        set: |p, v| {
            p.reconnect_max_ms = (num::<f64>(v)? * 1000.0) as u64;
            Ok(())
        },
    },
    Flag {
        name: "scale",
        unit: "factor",
        reason: "1 runs the audiences the scenarios name; smaller values make quick runs.",
        get: |p| p.scale.to_string(),
        set: |p, v| {
            p.scale = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "countries",
        unit: "on/off",
        reason: "Fastly's geolocation places nearly every reader: each POP's readers are placed in one country of its own, so presence keys carry one and counts tally countries (off: the comparison run without).",
        get: |p| if p.countries { "on" } else { "off" }.to_string(),
        set: |p, v| {
            p.countries = match v {
                "on" => true,
                "off" => false,
                _ => return Err("must be on or off".into()),
            };
            Ok(())
        },
    },
    Flag {
        name: "hours",
        unit: "h",
        reason: "The long scenarios run 6 simulated hours: long enough for anything that grows with uptime to show.",
        get: |p| p.hours.to_string(),
        set: |p, v| {
            p.hours = num(v)?;
            Ok(())
        },
    },
    Flag {
        name: "wasm-cpu-factor",
        unit: "factor",
        reason: "Measured: counting a listing takes 291 ns a key as wasm in Viceroy's Wasmtime (as on Compute) against 123 ns natively on the same machine and optimization level (`census_cost` in src/count/tally.rs): 2.4, rounded up.",
        get: |p| p.wasm_cpu_factor.to_string(),
        set: |p, v| {
            p.wasm_cpu_factor = num(v)?;
            Ok(())
        },
    },
];

impl Params {
    /// Sets `--name value`; a value out of the flag's range is refused, naming the range.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let flag = FLAGS
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("unknown flag --{name}"))?;
        let mut changed = self.clone();
        (flag.set)(&mut changed, value).map_err(|e| format!("--{name}: {e}"))?;
        changed
            .check()
            .map_err(|e| format!("--{name} {value}: {e}"))?;
        *self = changed;
        Ok(())
    }

    /// Whether every value is one the model can run with.
    fn check(&self) -> Result<(), String> {
        let positive = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{what} must be a number above 0"))
            }
        };
        let share = |v: f64, what: &str| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{what} must be a share from 0 to 1"))
            }
        };
        positive(self.scale, "the scale")?;
        positive(self.hours, "the hours")?;
        positive(self.wasm_cpu_factor, "the wasm CPU factor")?;
        share(self.vanish_fraction, "the vanish fraction")?;
        share(self.disconnect_fraction, "the disconnect fraction")?;
        if self.kv_default_page == 0 || self.kv_max_page == 0 || self.kv_store_ops_per_s == 0 {
            return Err("pages and the store's rate must be above 0".into());
        }
        Ok(())
    }

    /// (flag, value, unit, reason) for every flag.
    pub fn table(&self) -> Vec<(&'static str, String, &'static str, &'static str)> {
        FLAGS
            .iter()
            .map(|f| (f.name, (f.get)(self), f.unit, f.reason))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_round_trips() {
        let defaults = Params::default();
        let mut p = Params::default();
        for (name, value, _, _) in defaults.table() {
            p.set(name, &value).expect(name);
        }
        assert_eq!(p, defaults);
        assert!(p.set("nope", "1").is_err());
        assert!(p.set("kv-write-ms", "x").is_err());
        for (flag, bad) in [
            ("scale", "-1"),
            ("scale", "0"),
            ("hours", "NaN"),
            ("vanish-fraction", "1.5"),
            ("wasm-cpu-factor", "-2"),
            ("kv-store-ops-per-s", "0"),
            ("kv-lag-ms", "-5"),
            ("kv-write-ms", "-5,1"),
        ] {
            let e = p.set(flag, bad).expect_err(flag);
            assert!(e.contains(flag), "{e}");
        }
        assert_eq!(p, defaults, "a refused value changes nothing");
    }
}
