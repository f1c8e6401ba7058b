//! What a reader's socket does: it opens (and counts a visit), joins, sends heartbeats and
//! leaves (a close, a disconnect, or vanishing without an event), or dies with its POP; and
//! how each reply is applied to it (meta, subscriptions) and when it stopped counting.

use liveuser_edge::count::{broadcast, presence};
use liveuser_edge::surfaces::Handled;
use liveuser_edge::wire::websocket_events::{self, Event};

use super::host::canonical_meta;
use super::queue::Ev;
use super::{Leave, Socket, World, JOIN_DELAY_US};
use crate::clock::{MS, SEC};
use crate::kv::RequestOps;

impl World {
    /// Applies a reply to the client's socket: meta, subscriptions. Returns (accepted, closed).
    fn apply(&self, c: usize, handled: &Handled) -> (bool, bool) {
        let mut clients = self.clients.borrow_mut();
        let client = &mut clients[c];
        let pop = client.pop;
        let Some(socket) = client.socket.as_mut() else {
            return (false, true);
        };
        if handled.response.status() != 200 {
            return (false, true);
        }
        for (name, value) in handled.response.headers() {
            let Some(meta) = name.as_str().strip_prefix("set-meta-") else {
                continue;
            };
            let value = value.to_str().unwrap_or("").to_string();
            let key = canonical_meta(meta);
            socket.meta.retain(|(n, _)| *n != key);
            if !value.is_empty() {
                socket.meta.push((key, value));
            }
        }
        let (mut accepted, mut closed) = (false, false);
        let events = websocket_events::parse(handled.response.body()).unwrap_or_default();
        for event in events {
            match event {
                Event::Open => accepted = true,
                Event::Close { .. } => closed = true,
                Event::Text(text) => {
                    if let Some(control) = text.strip_prefix("c:") {
                        let v: serde_json::Value =
                            serde_json::from_str(control).unwrap_or_default();
                        let channel = v["channel"].as_str().unwrap_or("").to_string();
                        match v["type"].as_str() {
                            Some("subscribe") => {
                                self.fanout.borrow_mut().subscribe(pop, &channel);
                                socket.channels.push(channel);
                            }
                            Some("unsubscribe") => {
                                self.fanout.borrow_mut().unsubscribe(pop, &channel);
                                socket.channels.retain(|ch| *ch != channel);
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        (accepted, closed)
    }

    /// Removes the client's socket (and its subscriptions); returns its newest presence expiry
    /// in true time.
    fn drop_socket(&self, c: usize) -> Option<u64> {
        let mut clients = self.clients.borrow_mut();
        let client = &mut clients[c];
        let socket = client.socket.take()?;
        client.generation += 1;
        let mut fanout = self.fanout.borrow_mut();
        for ch in &socket.channels {
            fanout.unsubscribe(client.pop, ch);
        }
        let windows = socket
            .meta
            .iter()
            .find(|(n, _)| n == "Presence-Windows")
            .map(|(_, v)| v.clone());
        self.presence_end_us(client.pop, windows.as_deref()?)
    }

    /// When presence naming `windows` (as connection meta lists them) stops counting, in true
    /// time: when the last of its windows ends by the POP's clock.
    fn presence_end_us(&self, pop: usize, windows: &str) -> Option<u64> {
        let last = windows
            .split(',')
            .filter_map(|w| w.parse::<u64>().ok())
            .max()?;
        Some(self.window_end_us(pop, last))
    }

    /// When `window` ends, in true time, by `pop`'s clock.
    fn window_end_us(&self, pop: usize, window: u64) -> u64 {
        let end_ms = (window + 1) * presence::window_ms(&self.config);
        (end_ms as i64 * 1000 - self.pops[pop].skew_us).max(0) as u64
    }

    pub(super) fn arrive(&self, c: usize, t: u64) {
        let (pop, query) = {
            let mut clients = self.clients.borrow_mut();
            let client = &mut clients[c];
            if !self.pops[client.pop].alive.get() {
                client.pop = self.pick_pop();
            }
            let n = self.next_conn.get();
            self.next_conn.set(n + 1);
            client.socket = Some(Socket {
                conn_id: format!("conn-{n}"),
                meta: Vec::new(),
                channels: Vec::new(),
                busy_until_us: 0,
            });
            let mut query = format!(
                "?siteId={}&clientId=c{c}&enableTotalCount={}&visit={}",
                self.sites[client.site],
                client.totals,
                if client.visit { 1 } else { 0 }
            );
            // A reader whose socket died names the presence it held, as the widget does.
            if let Some((id, _)) = &client.resume {
                query.push_str(&format!("&handover={id}"));
            }
            (client.pop, query)
        };
        let Some((handled, end, ops)) = self.call(c, t, &query, &[Event::Open]) else {
            return;
        };
        self.measure().cost("OPEN", t, &ops.ops);
        let (accepted, closed) = self.apply(c, &handled);
        if !accepted || closed {
            self.drop_socket(c);
            self.measure().refused_opens += 1;
            return;
        }
        let (generation, stay, visit, resumed) = {
            let mut clients = self.clients.borrow_mut();
            let client = &mut clients[c];
            let visit = client.totals && client.visit;
            client.visit = false;
            (
                client.generation,
                client.stay_us,
                visit,
                client.resume.take(),
            )
        };
        let mut m = self.measure();
        let counted_from = ops.watched_commit_us.unwrap_or(end);
        match resumed {
            Some((_, expiry)) => m.resumed(t, counted_from, expiry),
            None => m.opened(t, counted_from),
        }
        if visit {
            m.visits_accepted += 1;
        }
        drop(m);
        let _ = pop;
        self.schedule(end + JOIN_DELAY_US, Ev::Join(c, generation));
        let interval = u64::from(self.config.heartbeat_interval_secs) * SEC;
        self.schedule(end + interval, Ev::Heartbeat(c, generation));
        if let Some(stay) = stay {
            self.schedule(t + stay, Ev::Leave(c, generation));
        }
    }

    /// Client `c`'s presence id and lease windows, from its meta.
    fn lease_of(&self, c: usize) -> Option<presence::Lease> {
        let clients = self.clients.borrow();
        let meta = &clients[c].socket.as_ref()?.meta;
        let get = |name: &str| meta.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let windows = get("Presence-Windows")?
            .split(',')
            .filter_map(|e| e.parse().ok())
            .collect();
        let lease = presence::Lease {
            id: get("Presence-Id")?,
            windows,
            page: None,
            country: None,
        };
        Some(lease.in_country(get("Country")))
    }

    /// When the request that just ran stopped `lease` from counting: each window's key counts
    /// until its delete committed or its window ended, the connection until its last key stops.
    fn uncounted_at(&self, pop: usize, lease: Option<presence::Lease>, fallback: u64) -> u64 {
        let Some(lease) = lease else {
            return fallback;
        };
        let commits = self.commits.borrow();
        lease
            .windows
            .iter()
            .map(|&window| {
                let key = lease.key(&self.site, window);
                let expiry = self.window_end_us(pop, window);
                commits
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, at)| (*at).min(expiry))
                    .max()
                    .unwrap_or(expiry)
            })
            .max()
            .unwrap_or(fallback)
    }

    fn current(&self, c: usize, generation: u32) -> bool {
        let clients = self.clients.borrow();
        clients[c].generation == generation && clients[c].socket.is_some()
    }

    /// A TEXT message from client `c`; false when its socket is gone.
    pub(super) fn text(
        &self,
        c: usize,
        generation: u32,
        t: u64,
        kind: &'static str,
        text: &str,
    ) -> bool {
        if !self.current(c, generation) {
            return false;
        }
        let lease = self.lease_of(c);
        let pop = self.clients.borrow()[c].pop;
        let Some((handled, _, ops)) = self.call(c, t, "", &[Event::Text(text.to_string())]) else {
            return false;
        };
        self.measure().cost(kind, t, &ops.ops);
        let (_, closed) = self.apply(c, &handled);
        if closed {
            // The service closed the socket (or refused the request: Fanout drops it).
            let gone = self.uncounted_at(pop, lease, t);
            let expiry = self.drop_socket(c);
            let mut m = self.measure();
            m.server_closes += 1;
            if handled.response.status() == 200 {
                m.closed(t, gone);
            } else {
                m.vanished(t, expiry.unwrap_or(t));
            }
            return false;
        }
        true
    }

    /// A heartbeat of an aggregated reader: what the WebSocket handler does with one (renew
    /// the socket's presence, and claim the site's sweep if it is due), through the same
    /// service functions on the same simulated host, but without the WebSocket-over-HTTP
    /// request around them, which a million readers' heartbeats cannot afford here. Its
    /// execution is metered as any; its KV operations are the handler's own.
    pub(super) fn aggregated_heartbeat(&self, c: usize, generation: u32, t: u64) -> bool {
        if !self.current(c, generation) {
            return false;
        }
        let Some(lease) = self.lease_of(c) else {
            return true;
        };
        let pop = self.clients.borrow()[c].pop;
        let meter = self.meter(t);
        meter.set_kind("aggregated heartbeat");
        let ((updated, plan), ops, end) = self.with_services(pop, t, &meter, |services| {
            let now = services.clock.now_ms();
            let site = &self.sites[self.clients.borrow()[c].site];
            let updated = presence::refresh(services.kv, services.config, site, &lease, now);
            (updated, broadcast::sweep_due(services, site))
        });
        if let Some(socket) = self.clients.borrow_mut()[c].socket.as_mut() {
            socket.busy_until_us = end;
            if let Ok((updated, _)) = updated {
                socket.meta.retain(|(n, _)| n != "Presence-Windows");
                socket
                    .meta
                    .push(("Presence-Windows".into(), updated.windows_meta()));
            }
        }
        self.measure().cost("heartbeat", t, &ops.ops);
        match plan {
            Some(plan) => self.claim_broadcast(pop, plan, end, meter),
            None => self.executed(&meter, end),
        }
        true
    }

    pub(super) fn leave(&self, c: usize, generation: u32, t: u64) {
        if !self.current(c, generation) {
            return;
        }
        let how = self.clients.borrow()[c].leave;
        match how {
            Leave::Close | Leave::Disconnect => {
                let (kind, event) = if how == Leave::Close {
                    ("CLOSE", Event::close(1000, ""))
                } else {
                    ("DISCONNECT", Event::Disconnect)
                };
                let lease = self.lease_of(c);
                let pop = self.clients.borrow()[c].pop;
                let ops = match self.call(c, t, "", &[event]) {
                    Some((_, _, ops)) => ops,
                    None => RequestOps::default(),
                };
                self.measure().cost(kind, t, &ops.ops);
                let gone = self.uncounted_at(pop, lease, t);
                self.drop_socket(c);
                self.measure().closed(t, gone);
            }
            Leave::Vanish => {
                let expiry = self.drop_socket(c);
                self.measure().vanished(t, expiry.unwrap_or(t));
            }
        }
        let (replaced, mean_stay_us, site) = {
            let client = &self.clients.borrow()[c];
            (client.replaced, client.mean_stay_us, client.site)
        };
        if replaced {
            let stay = self.rng.exp(mean_stay_us as f64) as u64;
            let mut reader = self.reader(Some(stay), true);
            reader.mean_stay_us = mean_stay_us;
            reader.site = site;
            self.add_client(reader, self.rng.below(SEC));
        }
    }

    pub(super) fn kill(&self, pop: usize, t: u64) {
        let pop_ref = &self.pops[pop];
        pop_ref.alive.set(false);
        pop_ref.cache.borrow_mut().clear();
        self.fanout.borrow_mut().drop_pop(pop);
        self.shown.borrow_mut()[pop] = None;
        let victims: Vec<usize> = self
            .clients
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.pop == pop && c.socket.is_some())
            .map(|(i, _)| i)
            .collect();
        for c in victims {
            // The socket dies with the POP: no CLOSE, no DISCONNECT. Fanout's subscriptions
            // there are gone already.
            let (expiry, id) = {
                let mut clients = self.clients.borrow_mut();
                let client = &mut clients[c];
                client.generation += 1;
                let socket = client.socket.take();
                let meta = |name: &str| {
                    socket
                        .as_ref()
                        .and_then(|s| s.meta.iter().find(|(n, _)| n == name))
                        .map(|(_, v)| v.clone())
                };
                (meta("Presence-Windows"), meta("Presence-Id"))
            };
            let expiry = expiry.and_then(|w| self.presence_end_us(pop, &w));
            let expiry = expiry.unwrap_or(t);
            self.measure().vanished(t, expiry);
            if let Some(id) = id {
                self.clients.borrow_mut()[c].resume = Some((id, expiry));
            }
            // The browser notices and reconnects elsewhere, without counting a new visit.
            let at = t + self.rng.below(self.params.reconnect_max_ms * MS);
            self.schedule(at, Ev::Arrive(c));
        }
    }
}
