//! One thread per process that hears the database's signals ([`super::signals`]) and keeps the
//! process on the roll of live processes (table `processes`).
//!
//! What it hears: a revocation (the `revoked` hook, then an acknowledgement on the roll, which
//! is what a revoking command waits for: see [`await_revocation`]), a contracts reload (the
//! `contracts` hook, then the digest now enforced on the roll: see [`await_contracts`]) and,
//! on PostgreSQL, the outbox nudge (the `outbox` hook). What it sends: the outbox nudge, at most once per poll,
//! when [`Listener::nudge_outbox`] was called since (a write fanned out here, and another
//! process delivers). PostgreSQL: `LISTEN` on a connection of its own, read every poll without
//! a round trip; SQLite: the signal counters, read every poll. When the database cannot be
//! reached, the `listening(false)` hook runs and the thread reconnects.

use super::signals::{ContractsHeard, Member, SignalRepo, CONTRACTS, OUTBOX, REVOKED};
use super::{Backend, StoreError};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the listener calls (on its own thread).
pub struct Hooks {
    /// A credential was revoked somewhere: forget what was remembered.
    pub revoked: Box<dyn Fn() + Send>,
    /// Revocations are heard (`true`) or may be missed (`false`).
    pub listening: Box<dyn Fn(bool) + Send>,
    /// Another process committed writes that fanned out.
    pub outbox: Box<dyn Fn() + Send>,
    /// A reload was asked for (`true`: load the contracts folder anew) or the process joins the
    /// roll (`false`); either way the digest of the contracts now enforced.
    pub contracts: Box<dyn Fn(bool) -> String + Send>,
}

/// How the listener runs.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub url: String,
    /// `serve` or `worker`: on the roll.
    pub kind: &'static str,
    /// The process runs an outbox processor.
    pub delivers: bool,
    pub poll: Duration,
    /// How often the roll is told this process is alive.
    pub heartbeat: Duration,
}

/// The running listener; stops (and leaves the roll) when dropped.
pub struct Listener {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    nudge: AtomicBool,
    /// This process reloaded its contracts on its own (`SIGHUP`): put the digest on the roll.
    report_contracts: AtomicBool,
    /// Live `serve` processes on the roll, this one included (at least 1).
    gateways: AtomicUsize,
    /// Live processes besides this one that deliver (nudging them is pointless when none).
    deliverers_elsewhere: AtomicUsize,
}

impl Listener {
    pub fn start(settings: ListenerSettings, hooks: Hooks) -> Result<Listener, StoreError> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            nudge: AtomicBool::new(false),
            report_contracts: AtomicBool::new(false),
            gateways: AtomicUsize::new(1),
            // Until the roll is read: assume someone listens.
            deliverers_elsewhere: AtomicUsize::new(1),
        });
        let id = format!(
            "{}-{}-{}",
            settings.kind,
            std::process::id(),
            crate::util::random_token(6).map_err(|e| StoreError::Connect(e.to_string()))?
        );
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ebond-listener".into())
            .spawn(move || run(&settings, &id, &hooks, &s2))
            .map_err(|e| StoreError::Connect(format!("cannot start the listener thread: {e}")))?;
        Ok(Listener { shared, thread: Some(thread) })
    }

    /// Asks every outbox processor of the database to look for due rows now (coalesced: one
    /// `NOTIFY` per poll at most; nothing on SQLite).
    pub fn nudge_outbox(&self) {
        if self.shared.deliverers_elsewhere.load(Ordering::Acquire) > 0 {
            self.shared.nudge.store(true, Ordering::Release);
        }
    }

    /// This process reloaded its contracts by itself: the roll is told at the next poll.
    pub fn report_contracts(&self) {
        self.shared.report_contracts.store(true, Ordering::Release);
    }

    /// Live `ebond serve` processes on this database, this one included.
    pub fn gateways(&self) -> usize {
        self.shared.gateways.load(Ordering::Acquire).max(1)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(settings: &ListenerSettings, id: &str, hooks: &Hooks, shared: &Shared) {
    let mut warned = false;
    // The contracts reload last acted on, kept across sessions: one raised while the database
    // was away is acted on when it is back.
    let mut contracts_seen: Option<i64> = None;
    while !shared.stop.load(Ordering::Acquire) {
        let result = match Backend::of_url(&settings.url) {
            Ok(Backend::Postgres) => PgConnection::establish(&settings.url)
                .map_err(|e| StoreError::Connect(e.to_string()))
                .and_then(|mut c| session(&mut c, settings, id, hooks, shared, &mut contracts_seen)),
            Ok(Backend::Sqlite) => {
                let path = settings.url.strip_prefix("sqlite://").unwrap_or(&settings.url);
                SqliteConnection::establish(path).map_err(|e| StoreError::Connect(e.to_string())).and_then(|mut c| {
                    c.batch_execute("PRAGMA busy_timeout = 5000;")?;
                    session(&mut c, settings, id, hooks, shared, &mut contracts_seen)
                })
            }
            Err(e) => Err(e),
        };
        (hooks.listening)(false);
        match result {
            Err(e) if !warned => {
                tracing::warn!(error = %e, "the signal listener lost the database: tokens are checked against it on every request until it is back");
                warned = true;
            }
            _ => {}
        }
        // Reconnect in a second, or stop.
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until && !shared.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What one poll heard.
#[derive(Default)]
struct Heard {
    revoked: bool,
    outbox: bool,
    contracts: bool,
}

/// The signal counters last acted on.
#[derive(Clone, Copy)]
struct Seen {
    revoked: i64,
    contracts: i64,
}

/// The per-backend half of a session.
trait Hear: SignalRepo {
    fn listen(&mut self) -> Result<(), StoreError>;
    /// What arrived since the last poll, given the counters last acted on.
    fn heard(&mut self, seen: Seen) -> Result<Heard, StoreError>;
    fn send_nudge(&mut self) -> Result<(), StoreError>;
}

impl Hear for PgConnection {
    fn listen(&mut self) -> Result<(), StoreError> {
        Ok(self.batch_execute(&format!("LISTEN {REVOKED}; LISTEN {OUTBOX}; LISTEN {CONTRACTS};"))?)
    }

    /// No round trip: libpq reads what the server already sent.
    fn heard(&mut self, _seen: Seen) -> Result<Heard, StoreError> {
        let mut heard = Heard::default();
        for n in self.notifications_iter() {
            match n?.channel.as_str() {
                REVOKED => heard.revoked = true,
                OUTBOX => heard.outbox = true,
                CONTRACTS => heard.contracts = true,
                _ => {}
            }
        }
        Ok(heard)
    }

    fn send_nudge(&mut self) -> Result<(), StoreError> {
        Ok(self.batch_execute(&format!("NOTIFY {OUTBOX}"))?)
    }
}

impl Hear for SqliteConnection {
    fn listen(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn heard(&mut self, seen: Seen) -> Result<Heard, StoreError> {
        #[derive(QueryableByName)]
        struct Signal {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            generation: i64,
        }
        let mut heard = Heard::default();
        // Both counters in one read.
        for s in diesel::sql_query("SELECT name, generation FROM signals").load::<Signal>(self)? {
            match s.name.as_str() {
                "revoked" => heard.revoked = s.generation != seen.revoked,
                "contracts" => heard.contracts = s.generation != seen.contracts,
                _ => {}
            }
        }
        Ok(heard)
    }

    fn send_nudge(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One connected session: on the roll and listening until the connection fails or the process
/// stops (then off the roll).
fn session<C: Hear>(
    c: &mut C,
    settings: &ListenerSettings,
    id: &str,
    hooks: &Hooks,
    shared: &Shared,
    contracts_seen: &mut Option<i64>,
) -> Result<(), StoreError> {
    c.listen()?;
    // Listening first, then the counters: a signal after this read is heard.
    let mut seen = Seen { revoked: c.revoked_generation()?, contracts: c.contracts_generation()? };
    let missed = contracts_seen.is_some_and(|before| before != seen.contracts);
    let now = crate::util::now_ms();
    let member = Member { id: id.to_string(), kind: settings.kind, delivers: settings.delivers };
    // Rows of processes silent for twenty liveness windows are gone for good.
    c.join_roll(&member, now, seen.revoked, now.saturating_sub(live_window(settings.heartbeat).saturating_mul(20)))?;
    c.ack_contracts(id, seen.contracts, &(hooks.contracts)(missed))?;
    *contracts_seen = Some(seen.contracts);
    // Anything remembered before now may have been revoked unheard.
    (hooks.listening)(true);
    let mut last_beat: Option<Instant> = None;
    let result = loop {
        if shared.stop.load(Ordering::Acquire) {
            break Ok(());
        }
        let polled = poll(c, settings, id, hooks, shared, &mut seen, &mut last_beat);
        *contracts_seen = Some(seen.contracts);
        if let Err(e) = polled {
            break Err(e);
        }
        std::thread::sleep(settings.poll);
    };
    let _ = c.leave_roll(id);
    result
}

fn poll<C: Hear>(
    c: &mut C,
    settings: &ListenerSettings,
    id: &str,
    hooks: &Hooks,
    shared: &Shared,
    seen: &mut Seen,
    last_beat: &mut Option<Instant>,
) -> Result<(), StoreError> {
    if shared.nudge.swap(false, Ordering::AcqRel) {
        c.send_nudge()?;
    }
    let heard = c.heard(*seen)?;
    if heard.revoked {
        // Read the counter before forgetting: the acknowledgement then never claims more than
        // was forgotten.
        let now_at = c.revoked_generation()?;
        (hooks.revoked)();
        c.ack_revoked(id, now_at)?;
        seen.revoked = now_at;
    }
    if heard.contracts {
        // As above: the counter first, so the acknowledgement never covers a later reload.
        let now_at = c.contracts_generation()?;
        let sha256 = (hooks.contracts)(true);
        c.ack_contracts(id, now_at, &sha256)?;
        seen.contracts = now_at;
    }
    if shared.report_contracts.swap(false, Ordering::AcqRel) {
        c.ack_contracts(id, seen.contracts, &(hooks.contracts)(false))?;
    }
    if heard.outbox {
        (hooks.outbox)();
    }
    if last_beat.is_none_or(|at| at.elapsed() >= settings.heartbeat) {
        let now = crate::util::now_ms();
        if !c.heartbeat(id, now)? {
            let member = Member { id: id.to_string(), kind: settings.kind, delivers: settings.delivers };
            c.join_roll(&member, now, seen.revoked, 0)?;
            c.ack_contracts(id, seen.contracts, &(hooks.contracts)(false))?;
        }
        let since = now.saturating_sub(live_window(settings.heartbeat));
        let live = c.live_gateways(since)?;
        shared.gateways.store(usize::try_from(live).unwrap_or(1).max(1), Ordering::Release);
        let others = c.live_deliverers_besides(id, since)?;
        shared.deliverers_elsewhere.store(usize::try_from(others).unwrap_or(1), Ordering::Release);
        *last_beat = Some(Instant::now());
    }
    Ok(())
}

/// How long a process counts as live after its last heartbeat: three heartbeats, in ms.
fn live_window(heartbeat: Duration) -> i64 {
    i64::try_from(heartbeat.as_millis()).unwrap_or(i64::MAX).saturating_mul(3)
}

/// Waits until every live process has heard revocation `generation` (forgotten the tokens it
/// remembered), up to `timeout`; returns the processes that have not.
pub fn await_revocation(
    db: &super::Db,
    generation: i64,
    heartbeat: Duration,
    timeout: Duration,
) -> Result<Vec<String>, StoreError> {
    let deadline = Instant::now() + timeout;
    loop {
        let since = crate::util::now_ms().saturating_sub(live_window(heartbeat));
        let unheard = db.read_now(move |c| c.unheard(generation, since).map_err(StoreError::from))?;
        if unheard.is_empty() || Instant::now() >= deadline {
            return Ok(unheard);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until every live process has acted on contracts reload `generation`, up to `timeout`;
/// returns the roll as it then stands (each process with the digest it enforces).
pub fn await_contracts(
    db: &super::Db,
    generation: i64,
    heartbeat: Duration,
    timeout: Duration,
) -> Result<Vec<ContractsHeard>, StoreError> {
    let deadline = Instant::now() + timeout;
    loop {
        let since = crate::util::now_ms().saturating_sub(live_window(heartbeat));
        let roll = db.read_now(move |c| c.contracts_roll(since).map_err(StoreError::from))?;
        if roll.iter().all(|p| p.contracts_heard >= generation) || Instant::now() >= deadline {
            return Ok(roll);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The live processes on the roll with the contracts each enforces.
pub fn contracts_roll(db: &super::Db, heartbeat: Duration) -> Result<Vec<ContractsHeard>, StoreError> {
    let since = crate::util::now_ms().saturating_sub(live_window(heartbeat));
    db.read_now(move |c| c.contracts_roll(since).map_err(StoreError::from))
}
