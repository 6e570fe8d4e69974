//! Assembling the gateway from settings: contracts, database, migrations, HTTP server.

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::contract::live::Live;
use crate::contract::{self, Registry};
use crate::outbox::Processor;
use crate::store::Db;
use anyhow::Context;
use std::net::TcpListener;
use std::sync::Arc;
use tokio::sync::watch;

/// Loads and checks every contract, or fails listing each error with its location.
pub fn load_contracts(settings: &Settings) -> anyhow::Result<Registry> {
    contract::load_dir(&settings.contracts_dir).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::anyhow!(
            "{} contract error{} in {}:\n{}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            settings.contracts_dir.display(),
            list.join("\n")
        )
    })
}

/// Opens the configured database (creating the SQLite file if needed) and migrates it: what
/// `serve`, `worker` and `migrate` do. Returns the migrations applied.
pub fn open_and_migrate(settings: &Settings) -> anyhow::Result<(Db, Vec<String>)> {
    let url = settings.effective_database_url();
    let db = Db::connect(&url, &settings.database).with_context(|| format!("opening {}", describe_database(&url)))?;
    let applied = db.migrate().with_context(|| format!("migrating {}", describe_database(&url)))?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "database migrated");
    }
    Ok((db, applied))
}

/// Opens the configured database as it is, for every other command: it must exist and be
/// migrated already (a command that only reads or changes a few rows never changes the
/// schema under a gateway that may still be running an older binary).
pub fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.effective_database_url();
    let shown = describe_database(&url);
    if crate::store::Backend::of_url(&url)? == crate::store::Backend::Sqlite {
        let path = url.strip_prefix("sqlite://").unwrap_or(&url);
        if !std::path::Path::new(path).exists() {
            anyhow::bail!("there is no database yet at {path}: start `ebond serve` or run `ebond migrate` first");
        }
    }
    let db = Db::connect(&url, &settings.database).with_context(|| format!("opening {shown}"))?;
    let pending = db.pending_migrations().with_context(|| format!("reading the schema version of {shown}"))?;
    if !pending.is_empty() {
        anyhow::bail!(
            "{shown} is not migrated to this version of ebond ({} migration{} pending): run `ebond migrate`",
            pending.len(),
            if pending.len() == 1 { "" } else { "s" }
        );
    }
    Ok(db)
}

/// "the SQLite database ./data/ebond.db", "the PostgreSQL database db.internal/ebond" (no
/// credentials).
pub fn describe_database(url: &str) -> String {
    match crate::store::Backend::of_url(url) {
        Ok(crate::store::Backend::Postgres) => {
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            let rest = rest.split('?').next().unwrap_or(rest);
            format!("the PostgreSQL database {rest}")
        }
        Ok(crate::store::Backend::Sqlite) => {
            format!("the SQLite database {}", url.strip_prefix("sqlite://").unwrap_or(url))
        }
        Err(_) => format!("the database {}", crate::config::redact_url_password(url)),
    }
}

/// Everything the HTTP server needs (for `ebond serve`: see [`state_for`]).
pub fn state(settings: Settings) -> anyhow::Result<AppState> {
    state_for(settings, "serve")
}

/// [`state`] for a process of `kind` (`serve` or `worker`), with its signal listener running.
pub fn state_for(settings: Settings, kind: &'static str) -> anyhow::Result<AppState> {
    let mut state = bare_state(settings)?;
    let (tokens, wake) = (state.tokens.clone(), state.wake.clone());
    let tokens2 = tokens.clone();
    let (settings, contracts) = (state.settings.clone(), state.contracts.clone());
    let listener = crate::store::listener::Listener::start(
        crate::store::listener::ListenerSettings {
            url: state.settings.effective_database_url(),
            kind,
            delivers: kind == "worker" || state.settings.outbox.in_process,
            poll: state.settings.database.signal_poll(),
            heartbeat: state.settings.database.heartbeat(),
        },
        crate::store::listener::Hooks {
            revoked: Box::new(move || tokens.forget_all()),
            listening: Box::new(move |on| tokens2.set_listening(on)),
            outbox: Box::new(move || wake.notify_one()),
            contracts: Box::new(move |reload| {
                if reload {
                    // A refused folder is logged there; this process keeps what it enforces.
                    let _ = reload_contracts(&settings, &contracts, "another process asked");
                }
                contracts.current().sha256.clone()
            }),
        },
    )?;
    state.listener = Some(Arc::new(listener));
    Ok(state)
}

/// The state without a listener.
fn bare_state(settings: Settings) -> anyhow::Result<AppState> {
    let registry = load_contracts(&settings)?;
    let (db, _) = open_and_migrate(&settings)?;
    warn_unservable(&settings, &registry);
    let trusted_proxies = networks("security.trusted_proxies", &settings.security.trusted_proxies)?;
    let ops_networks = networks("security.ops_networks", &settings.security.ops_networks)?;
    let generic = crate::openapi::generic_document();
    let contracts = Arc::new(Live::new(&settings.contracts_dir, registry));
    let mut state = AppState::new(db, contracts, Arc::new(settings), generic, trusted_proxies)?;
    state.ops_networks = ops_networks;
    // The master key for secrets at rest exists from the first run on (created 0600).
    state.secrets.master_key().context("master key for secrets stored in the database")?;
    Ok(state)
}

/// A setting's list of addresses and networks (CIDR), parsed; a bad entry stops the start.
fn networks(key: &str, list: &[String]) -> anyhow::Result<Vec<ipnet::IpNet>> {
    list.iter()
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow::anyhow!("{key}: `{p}` is not an address or network (CIDR)"))
        })
        .collect()
}

/// Says what the settings make unusable in `registry` (at start and after every reload).
fn warn_unservable(settings: &Settings, registry: &Registry) {
    for c in registry.partners() {
        if !c.client_cert_sha256.is_empty()
            && (settings.tls.cert_file.is_none() || settings.tls.client_ca_file.is_none())
        {
            tracing::error!(
                partner = %c.id,
                "the contract pins client certificates but TLS with tls.client_ca_file is not configured: \
                 every request of this partner will be refused"
            );
        }
    }
}

/// Reloads this process's contracts folder (see [`Live::reload`]) and logs the outcome: what a
/// reload request, `SIGHUP` and another process's reload signal all do here.
pub fn reload_contracts(
    settings: &Settings,
    contracts: &Live,
    why: &str,
) -> Result<crate::contract::live::Reloaded, Vec<crate::contract::ContractError>> {
    match contracts.reload() {
        Ok(done) => {
            if done.unchanged() {
                tracing::info!(why, sha256 = %done.current.sha256, "contracts reloaded: nothing changed");
            } else {
                warn_unservable(settings, &done.current);
                let changed: Vec<String> = done
                    .partners
                    .iter()
                    .filter(|p| p.change != crate::contract::live::Change::Unchanged)
                    .map(|p| format!("{} {:?}", p.partner, p.change).to_lowercase())
                    .collect();
                tracing::info!(why, sha256 = %done.current.sha256, changes = %changed.join(", "), "contracts reloaded");
            }
            Ok(done)
        }
        Err(errors) => {
            tracing::error!(
                why,
                errors = errors.len(),
                first = %errors.first().map(|e| e.to_string()).unwrap_or_default(),
                "contracts reload refused: the contracts in force stay"
            );
            Err(errors)
        }
    }
}

/// The outbox processor over the same database, contracts, metrics and wake-up signal as
/// `state`.
pub fn processor(state: &AppState) -> anyhow::Result<Arc<Processor>> {
    let lease_ms = state.settings.outbox.lease_secs * 1000;
    let request_ms = state.settings.outbox.request_timeout_ms + state.settings.outbox.connect_timeout_ms;
    if lease_ms <= request_ms {
        anyhow::bail!(
            "outbox.lease_secs ({} s) must be longer than connect + request timeout ({} ms), or a slow delivery would be leased twice",
            state.settings.outbox.lease_secs,
            request_ms
        );
    }
    let processor = Processor::new(
        state.db.clone(),
        state.contracts.clone(),
        state.settings.outbox.clone(),
        state.metrics.clone(),
        state.alerts.clone(),
        state.secrets.clone(),
        state.wake.clone(),
    )
    .context("the outbox processor's HTTP client cannot be built")?;
    Ok(Arc::new(processor))
}

/// Starts the processor in the background; send `true` on the returned channel to stop it.
pub fn spawn_processor(state: &AppState) -> anyhow::Result<(watch::Sender<bool>, tokio::task::JoinHandle<()>)> {
    let lock = delivery_lock(state)?;
    let processor = processor(state)?;
    let (stop, stopped) = watch::channel(false);
    let handle = tokio::spawn(async move {
        processor.run(stopped).await;
        // Held while delivering; released when the processor has stopped.
        drop(lock);
    });
    Ok((stop, handle))
}

/// On SQLite, the one process that may deliver holds an exclusive lock on a file beside the
/// database (released by the system when the process ends, however it ends): a second
/// processor on the same file would claim the same rows, since SQLite has no row locks to
/// share the queue with. PostgreSQL needs none: its workers share the queue.
fn delivery_lock(state: &AppState) -> anyhow::Result<Option<std::fs::File>> {
    let url = state.settings.effective_database_url();
    if crate::store::Backend::of_url(&url)? != crate::store::Backend::Sqlite {
        return Ok(None);
    }
    let db_path = std::path::PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(&url));
    let mut name = db_path.file_name().unwrap_or_default().to_os_string();
    name.push(".delivery.lock");
    let path = db_path.with_file_name(name);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the delivery lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::{Seek, Write};
            // Who holds it, for the error the next process shows.
            let _ = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| writeln!(file, "{}", std::process::id()));
            tracing::info!(lock = %path.display(), "SQLite: this process is the only one delivering");
            Ok(Some(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another ebond process{} already delivers from {} (it holds {}): one process delivers per SQLite database. \
                 Run this one with outbox.in_process = false (EBOND_OUTBOX_IN_PROCESS=false) to serve the API only, \
                 or move to PostgreSQL to run several delivering processes",
                match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (pid {pid})"),
                },
                describe_database(&url),
                path.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("locking {}", path.display())))
        }
    }
}

/// Runs the gateway until SIGINT / SIGTERM, with the outbox processor unless
/// `outbox.in_process` is off.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bind = settings.bind.clone();
    let state = state(settings)?;
    let listener = TcpListener::bind(&bind).with_context(|| format!("binding {bind}"))?;
    let delivering = if state.settings.outbox.in_process { Some(spawn_processor(&state)?) } else { None };
    tracing::info!(
        address = %listener.local_addr()?,
        scheme = if state.settings.tls.cert_file.is_some() { "https" } else { "http" },
        database = state.db.backend_name(),
        partners = state.registry().partners().count(),
        outbox = if delivering.is_some() { "in process" } else { "separate worker" },
        "ebond listening"
    );
    let scheduling = spawn_scheduler(&state);
    let state = actix_web::web::Data::new(state);
    let hangup = spawn_hangup(state.clone().into_inner());
    api::server_with(state, listener)?.await?;
    hangup.abort();
    if let Some((stop, handle)) = delivering {
        let _ = stop.send(true);
        let _ = handle.await;
    }
    if let Some((stop, handle)) = scheduling {
        let _ = stop.send(true);
        let _ = handle.await;
    }
    Ok(())
}

/// Runs only the outbox processor until SIGINT / SIGTERM (`ebond worker`).
pub async fn work(settings: Settings) -> anyhow::Result<()> {
    let state = state_for(settings, "worker")?;
    let (stop, handle) = spawn_processor(&state)?;
    let scheduling = spawn_scheduler(&state);
    tracing::info!(database = state.db.backend_name(), "ebond worker running");
    let state = Arc::new(state);
    let hangup = spawn_hangup(state.clone());
    shutdown_signal().await;
    hangup.abort();
    let _ = stop.send(true);
    let _ = handle.await;
    if let Some((stop, handle)) = scheduling {
        let _ = stop.send(true);
        let _ = handle.await;
    }
    Ok(())
}

/// Starts the pull / reconciliation scheduler unless `sync.schedule` is off or no partner has
/// anything scheduled.
pub fn spawn_scheduler(state: &AppState) -> Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)> {
    let pulls = state.registry().partners().filter(|c| c.pull.is_some()).count();
    let reconciles = state.settings.sync.reconcile_interval_secs > 0;
    if !state.settings.sync.schedule || (pulls == 0 && !reconciles) {
        return None;
    }
    tracing::info!(
        pull_partners = pulls,
        reconcile_every_secs = state.settings.sync.reconcile_interval_secs,
        "sync scheduler running"
    );
    let (stop, stopped) = watch::channel(false);
    Some((stop, tokio::spawn(crate::pull::schedule::run(state.sync.clone(), stopped))))
}

/// `SIGHUP` reloads this process's contracts folder (this process only: `POST
/// /admin/contracts/reload` and `ebond contracts reload` reach every process).
fn spawn_hangup(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("SIGHUP cannot be handled here: reload contracts through the API or the CLI");
                return;
            };
            while hup.recv().await.is_some() {
                let s = state.clone();
                let done =
                    tokio::task::spawn_blocking(move || reload_contracts(&s.settings, &s.contracts, "SIGHUP").is_ok())
                        .await;
                if matches!(done, Ok(true)) {
                    if let Some(l) = &state.listener {
                        l.report_contracts();
                    }
                }
            }
        }
        #[cfg(not(unix))]
        let _ = state;
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
