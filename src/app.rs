//! Assembling the gateway from settings: contracts, database, migrations, HTTP server.

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::contract::{self, Registry};
use crate::store::Db;
use anyhow::Context;
use std::net::TcpListener;
use std::sync::Arc;

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

/// Opens the configured database (creating the SQLite file if needed) and migrates it.
pub fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.effective_database_url();
    let db = Db::connect(
        &url,
        settings.database.pool_size,
        settings.database.busy_timeout_ms,
    )
    .with_context(|| {
        format!(
            "opening the {} database",
            if url.starts_with("postgres") {
                "PostgreSQL"
            } else {
                "SQLite"
            }
        )
    })?;
    let applied = db.migrate().context("applying migrations")?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "database migrated");
    }
    Ok(db)
}

/// Everything the HTTP server needs.
pub fn state(settings: Settings) -> anyhow::Result<AppState> {
    let registry = load_contracts(&settings)?;
    let db = open_database(&settings)?;
    Ok(AppState::new(db, Arc::new(registry), Arc::new(settings)))
}

/// Runs the gateway until SIGINT / SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bind = settings.bind.clone();
    let state = state(settings)?;
    let listener = TcpListener::bind(&bind).with_context(|| format!("binding {bind}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        database = state.db.backend_name(),
        partners = state.registry.partners().count(),
        "ebond listening"
    );
    api::server(state, listener)?.await?;
    Ok(())
}
