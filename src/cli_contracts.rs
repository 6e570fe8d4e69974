//! `ebond contracts check` (a folder or one file: load errors, then what the contracts need to
//! work — see `contract::check`) and `ebond contracts try`: a partner's real payload run against
//! a contract folder (the one being edited, not necessarily the one a gateway enforces) over the
//! real database, as a dry run: the report says what the write would do, and nothing is written.

use ebond::api::problem::ApiError;
use ebond::config::Settings;
use ebond::contract::inbound::Op;
use ebond::contract::{Contract, Registry};
use ebond::domain::ids::TicketReference;
use ebond::domain::{Stamp, Ticket};
use ebond::store::models::{NewXref, TicketRow};
use ebond::store::{Repos, StoreError};
use ebond::sync::dry_run::DryRunReport;
use ebond::sync::write::{WriteCommand, WriteOp};
use ebond::sync::{AuditInfo, SyncError};
use std::path::PathBuf;
use std::process::ExitCode;

/// How the payload is tried.
pub enum TryAs {
    /// As a create.
    Create,
    /// As an update of a real ticket (the partner's id for it, or the hub number).
    Update(String),
    /// As an update of a ticket in this state (the partner's value or canonical), made up for
    /// the dry run and undone with it.
    From(String),
}

/// Writes `<contracts>/<id>.toml` from the example `like` (in the configured folder, or the
/// examples shipped with ebond): the new id, a version to start from, the schema directive.
pub fn scaffold(settings: &Settings, id: &str, like: &str, name: Option<&str>) -> anyhow::Result<PathBuf> {
    ebond::domain::ids::PartnerId::parse(id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let target = settings.contracts_dir.join(format!("{id}.toml"));
    if target.exists() {
        anyhow::bail!("{} exists already: edit it, or choose another id", target.display());
    }
    let source = settings.contracts_dir.join(format!("{like}.toml"));
    let text = match std::fs::read_to_string(&source) {
        Ok(t) => t,
        Err(_) => EXAMPLES.iter().find(|(n, _)| *n == like).map(|(_, t)| t.to_string()).ok_or_else(|| {
            let names: Vec<&str> = EXAMPLES.iter().map(|(n, _)| *n).collect();
            anyhow::anyhow!("no example `{like}`: use one of {}", names.join(", "))
        })?,
    };
    let mut out = format!(
        "#:schema ../schema/contract.schema.json\n# {id}: started from the `{like}` example by `ebond partner new`. Every section below\n# is commented; change what differs for this partner, then `ebond contracts check`.\n"
    );
    let mut in_partner = false;
    for line in text.lines().filter(|l| !l.starts_with("#:schema")) {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_partner = trimmed.starts_with("[partner]");
        }
        let replaced = if in_partner && trimmed.starts_with("id =") {
            format!("id = \"{id}\"")
        } else if in_partner && trimmed.starts_with("name =") {
            format!("name = \"{}\"", name.unwrap_or(id).replace('"', "'"))
        } else if in_partner && trimmed.starts_with("contract_version =") {
            "contract_version = \"0.1.0\"".to_string()
        } else {
            line.to_string()
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    std::fs::create_dir_all(&settings.contracts_dir)?;
    std::fs::write(&target, out)?;
    Ok(target)
}

/// The example contracts shipped with ebond, for a contracts folder that has none of them.
const EXAMPLES: [(&str, &str); 5] = [
    ("servicenow", include_str!("../contracts/servicenow.toml")),
    ("enovia", include_str!("../contracts/enovia.toml")),
    ("acme-msp", include_str!("../contracts/acme-msp.toml")),
    ("fieldops", include_str!("../contracts/fieldops.toml")),
    ("initech", include_str!("../contracts/initech.toml")),
];

pub fn check(settings: &Settings, path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use ebond::contract::check::Level;
    let path = path.unwrap_or_else(|| settings.contracts_dir.clone());
    let loaded = if path.is_file() { ebond::contract::load_file(&path) } else { ebond::contract::load_dir(&path) };
    let registry = match loaded {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} error{} found", errors.len(), if errors.len() == 1 { "" } else { "s" });
            return Ok(ExitCode::FAILURE);
        }
    };
    // `db:` secrets are looked up when this machine has the database (never created here).
    let secrets = ebond::app::open_database(settings).ok().map(|db| ebond::secrets::Secrets::new(db, settings));
    let lookup = |partner: &str, name: &str| {
        let s = secrets.as_ref()?;
        Some(
            s.resolve_blocking(partner, &ebond::contract::SecretRef::Db(name.to_string()))
                .map(|v| v.expose().to_string())
                .map_err(|e| e.to_string()),
        )
    };
    let findings = ebond::contract::check::check(&registry, &lookup);
    let n = registry.partners().count();
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    for f in &findings {
        eprintln!("{f}");
    }
    if errors > 0 {
        eprintln!("{errors} error{} found", if errors == 1 { "" } else { "s" });
        return Ok(ExitCode::FAILURE);
    }
    println!("{}: workflow and {n} partner contract{} OK", path.display(), if n == 1 { "" } else { "s" });
    for c in registry.partners() {
        println!("  {} ({}), contract {}", c.id, c.file.display(), c.version);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(
    settings: &Settings,
    dir: Option<PathBuf>,
    partner: &str,
    payload: PathBuf,
    how: TryAs,
) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| settings.contracts_dir.clone());
    let registry = ebond::contract::load_dir(&dir).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::anyhow!("{} has errors; fix them first (`ebond contracts check`):\n{}", dir.display(), list.join("\n"))
    })?;
    let contract = registry.get(partner).cloned().ok_or_else(|| {
        let known: Vec<&str> = registry.partners().map(|c| c.id.as_str()).collect();
        anyhow::anyhow!("no contract for `{partner}` in {} (partners: {})", dir.display(), known.join(", "))
    })?;
    let text = std::fs::read_to_string(&payload).map_err(|e| anyhow::anyhow!("reading {}: {e}", payload.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("{} is not JSON: line {}, column {}: {e}", payload.display(), e.line(), e.column())
    })?;
    let db = ebond::app::open_database(settings)?;
    let report = match try_payload(&db, registry, contract, json, how) {
        Ok(report) => report,
        Err(e) => {
            let status = actix_web::ResponseError::status_code(&e);
            if status.is_server_error() {
                return Err(anyhow::anyhow!("{e}"));
            }
            DryRunReport::refused(status.as_u16(), serde_json::to_value(e.problem())?)
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.outcome == "accepted" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn try_payload(
    db: &ebond::store::Db,
    registry: Registry,
    contract: std::sync::Arc<Contract>,
    json: serde_json::Value,
    how: TryAs,
) -> Result<DryRunReport, ApiError> {
    let op = if matches!(how, TryAs::Create) { Op::Create } else { Op::Update };
    let mapped = contract.map_inbound(&json, op)?;
    let from = match &how {
        TryAs::From(state) => Some(canonical_state(&registry, &contract, state)?),
        _ => None,
    };
    let reference = match &how {
        TryAs::Update(r) => Some(TicketReference::parse(r).map_err(ApiError::NotFound)?),
        _ => None,
    };
    let audit = AuditInfo {
        request_id: format!("cli-try-{}", ebond::util::now_ms()),
        method: if reference.is_some() || from.is_some() { "PATCH".into() } else { "POST".into() },
        path: "ebond contracts try".into(),
        payload_sha256: ebond::util::sha256_hex(json.to_string().as_bytes()),
    };
    let result = db.write_now(move |c| {
        let now = ebond::util::now_ms();
        let op = match (reference, from) {
            (Some(reference), _) => WriteOp::Update { reference },
            (None, Some(state)) => WriteOp::Update { reference: made_up_ticket(c, &contract, &state, now)? },
            (None, None) => WriteOp::Create,
        };
        let cmd = WriteCommand {
            registry: &registry,
            contract: &contract,
            op,
            mapped,
            if_match: None,
            idempotency: None,
            audit,
            now,
            from_record: false,
            dry_run: true,
        };
        ebond::sync::write::apply(c, cmd).map(|_| ())
    });
    match result {
        Err(SyncError::DryRun(report)) => Ok(*report),
        Err(e) => Err(e.into()),
        Ok(()) => Err(ApiError::Internal("the dry run wrote instead of reporting".into())),
    }
}

/// `state` as the workflow names it: the partner's own value (mapped through its contract) or
/// a canonical state.
fn canonical_state(registry: &Registry, contract: &Contract, state: &str) -> Result<String, ApiError> {
    let names = registry.workflow.state_names();
    if names.contains(&state) {
        return Ok(state.to_string());
    }
    let probe = serde_json::json!(state);
    if let Some(found) = names.iter().find(|n| contract.state_outward(n) == probe) {
        return Ok(found.to_string());
    }
    Err(ApiError::BadRequest {
        code: "unknown-state",
        detail: format!(
            "--from `{state}` is neither a state of the workflow ({}) nor this partner's value for one",
            names.join(", ")
        ),
    })
}

/// A ticket in `state`, shared with the partner, that exists only inside the dry run.
fn made_up_ticket(c: &mut dyn Repos, contract: &Contract, state: &str, now: i64) -> Result<TicketReference, SyncError> {
    let mut values = serde_json::Map::new();
    values.insert("kind".into(), contract.default_kind.clone().into());
    values.insert("state".into(), state.into());
    values.insert("short_description".into(), "A ticket made up for a dry run".into());
    let stamp = Stamp { v: 1, by: "dry-run".into(), at: now };
    let ticket = Ticket {
        id: 0,
        number: c.next_ticket_number()?,
        version: 1,
        created_at: now,
        updated_at: now,
        created_by: "dry-run".into(),
        updated_by: "dry-run".into(),
        stamps: values.keys().map(|k| (k.clone(), stamp.clone())).collect(),
        values,
        open_conflicts: 0,
    };
    let id = c.insert_ticket(&TicketRow::from_ticket(&ticket))?;
    c.insert_xref(&NewXref {
        partner: &contract.id,
        partner_ticket_id: None,
        ticket_id: id,
        active: true,
        created_at: now,
        updated_at: now,
        seen_version: 1,
    })?;
    TicketReference::parse(&ticket.number).map_err(|e| SyncError::Store(StoreError::Corrupt(e)))
}
