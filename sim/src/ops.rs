//! What KV operations cost: counts of each kind, per request and per minute, and the times a
//! request listed and wrote the watched keys (a site's presence).

/// Operation counts of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ops {
    pub lookups: u64,
    pub inserts: u64,
    /// Inserts refused: precondition failed (lost a conditional write).
    pub insert_conflicts: u64,
    /// Writes refused with 429 (the key's write rate).
    pub rate_limited: u64,
    pub deletes: u64,
    /// Deletes of keys already deleted (or never written): wasted operations.
    pub deletes_of_gone: u64,
    pub list_pages: u64,
    pub keys_listed: u64,
    /// Keys listed whose TTL had passed (production may list them for a day).
    pub expired_listed: u64,
    /// Presence list pages read past a cursor: the later pages of a walk, which writes made
    /// while it walks could skew (a key written behind the cursor missed).
    pub walked_pages: u64,
}

impl Ops {
    pub fn add(&mut self, o: &Ops) {
        self.lookups += o.lookups;
        self.inserts += o.inserts;
        self.insert_conflicts += o.insert_conflicts;
        self.rate_limited += o.rate_limited;
        self.deletes += o.deletes;
        self.deletes_of_gone += o.deletes_of_gone;
        self.list_pages += o.list_pages;
        self.keys_listed += o.keys_listed;
        self.expired_listed += o.expired_listed;
        self.walked_pages += o.walked_pages;
    }

    /// Every operation that reached the store (what is billed).
    pub fn total(&self) -> u64 {
        self.lookups + self.inserts + self.deletes + self.list_pages
    }
}

/// What one request did to the store (read back by the world after the request).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOps {
    pub ops: Ops,
    /// When the request listed its first page of the watched prefix (a count is taken then).
    pub first_list_us: Option<u64>,
    /// When it listed its last page of the watched prefix.
    pub last_list_us: Option<u64>,
    /// When its last successful write of a key under the watched prefix committed (a join
    /// takes effect then).
    pub watched_commit_us: Option<u64>,
    /// List pages under the watched prefix (the site's presence), and the keys they held.
    pub watched_pages: u64,
    pub watched_keys: u64,
}

impl RequestOps {
    /// These operations and those of a share this request asked another execution for (its
    /// listing is part of this request's count).
    pub fn merged(self, other: &RequestOps) -> RequestOps {
        let mut ops = self.ops;
        ops.add(&other.ops);
        let earliest = |a: Option<u64>, b: Option<u64>| a.into_iter().chain(b).min();
        RequestOps {
            ops,
            first_list_us: earliest(self.first_list_us, other.first_list_us),
            last_list_us: self.last_list_us.max(other.last_list_us),
            watched_commit_us: self.watched_commit_us.max(other.watched_commit_us),
            watched_pages: self.watched_pages + other.watched_pages,
            watched_keys: self.watched_keys + other.watched_keys,
        }
    }
}
