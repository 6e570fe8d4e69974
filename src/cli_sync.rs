//! `ebond sync run|status|runs` and `ebond reconcile`: pull sync and reconciliation from the
//! command line, run in this process over the same engine the scheduler and the admin API use
//! (the lease keeps it from running beside a gateway's own run of the same partner).

use clap::Subcommand;
use ebond::api::admin::sync::{item_view, run_view};
use ebond::config::Settings;
use ebond::pull::reconcile::{ReconcileCounts, ReconcileOptions};
use ebond::pull::run::PullCounts;
use ebond::pull::{Engine, PullError, Scope};
use ebond::store::StoreError;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum SyncCommand {
    /// Pull one partner's changed records now and apply them (progress on stderr).
    Run {
        /// The partner id (its contract has a [pull] section).
        partner: String,
        /// Print the finished run as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each [pull] partner's watermark, lag and last run.
    Status,
    /// Pull runs, newest first, with counts and refused records.
    Runs {
        /// Only this partner's runs.
        #[arg(long)]
        partner: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

/// Options of `ebond reconcile`.
#[derive(clap::Args)]
pub struct ReconcileArgs {
    /// One partner (default: every partner whose contract has a read_url).
    #[arg(long)]
    partner: Option<String>,
    /// Compare and report only: nothing is pushed or written but the report.
    #[arg(long)]
    dry_run: bool,
    /// Every shared ticket, closed ones too.
    #[arg(long, conflicts_with = "open")]
    all: bool,
    /// Only open tickets (the default).
    #[arg(long)]
    open: bool,
    /// Print the report as JSON (as GET /admin/reconcile/runs/{id} answers).
    #[arg(long)]
    json: bool,
}

fn engine(settings: &Settings) -> anyhow::Result<Arc<Engine>> {
    let registry =
        Arc::new(ebond::contract::live::Live::new(&settings.contracts_dir, ebond::app::load_contracts(settings)?));
    let db = ebond::app::open_database(settings)?;
    let metrics = ebond::ops::metrics::Metrics::new();
    let alerts = Arc::new(ebond::ops::alerts::Alerts::new(&settings.alerts, metrics)?);
    let secrets = ebond::secrets::Secrets::new(db.clone(), settings);
    let wake = Arc::new(tokio::sync::Notify::new());
    Ok(Arc::new(Engine::new(db, registry, settings, secrets, alerts, wake)?))
}

fn who() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

pub fn run(settings: &Settings, command: SyncCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let engine = engine(settings)?;
    runtime.block_on(async move {
        match command {
            SyncCommand::Run { partner, json } => {
                let progress = |c: &PullCounts| {
                    eprint!(
                        "\rpages {}  records {}  applied {}  unchanged {}  rejected {}  conflicts {}   ",
                        c.pages, c.records, c.applied, c.unchanged, c.rejected, c.conflicts
                    );
                    let _ = std::io::stderr().flush();
                };
                let run = engine.pull(&partner, &who(), progress).await?;
                eprintln!();
                let id = run.id;
                let errors = engine.db.read(move |c| c.run_errors(id, 1000).map_err(StoreError::from)).await?;
                let view = run_view(run, errors);
                if json {
                    println!("{}", serde_json::to_string_pretty(&view)?);
                } else {
                    println!(
                        "pull run {} of {}: {} (window from {}, watermark {})",
                        view.id,
                        view.partner,
                        view.status,
                        view.since.as_deref().unwrap_or("the beginning"),
                        view.watermark.as_deref().unwrap_or("none")
                    );
                    println!("  {}", view.counts);
                    if let Some(m) = &view.message {
                        println!("  {m}");
                    }
                    for e in &view.errors {
                        let what: Vec<String> =
                            e.errors.iter().map(|f| format!("{} ({}): {}", f.field, f.code, f.message)).collect();
                        println!(
                            "  refused {} [sha256 {}]: {}",
                            e.partner_ticket_id.as_deref().unwrap_or("?"),
                            &e.record_sha256[..12],
                            what.join("; ")
                        );
                    }
                }
                Ok(if view.status == "succeeded" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            SyncCommand::Status => {
                let partners: Vec<String> =
                    engine.registry().partners().filter(|c| c.pull.is_some()).map(|c| c.id.to_string()).collect();
                let now = ebond::util::now_ms();
                println!("{:<16} {:<26} {:>10} {:<8} LAST RUN", "PARTNER", "WATERMARK", "LAG (s)", "RUNNING");
                for p in partners {
                    let q = p.clone();
                    let (job, last) = engine
                        .db
                        .read(move |c| {
                            Ok::<_, StoreError>((
                                c.sync_job(&format!("pull:{q}"))?,
                                c.list_runs("pull", Some(&q), None, 1)?,
                            ))
                        })
                        .await?;
                    let wm = job.as_ref().and_then(|j| j.watermark);
                    let last = last
                        .into_iter()
                        .next()
                        .map(|r| format!("{} {} {}", r.id, r.status, r.counts))
                        .unwrap_or_else(|| "never".into());
                    println!(
                        "{:<16} {:<26} {:>10} {:<8} {}",
                        p,
                        wm.map(ebond::util::ms_to_rfc3339).unwrap_or_else(|| "-".into()),
                        wm.map(|w| format!("{:.0}", (now - w) as f64 / 1000.0)).unwrap_or_else(|| "-".into()),
                        job.as_ref().is_some_and(|j| j.lease_until > now),
                        last
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            SyncCommand::Runs { partner, limit } => {
                let runs = engine
                    .db
                    .read(move |c| {
                        let mut out = Vec::new();
                        for r in c.list_runs("pull", partner.as_deref(), None, limit)? {
                            let errors = c.run_errors(r.id, 20)?;
                            out.push(run_view(r, errors));
                        }
                        Ok::<_, StoreError>(out)
                    })
                    .await?;
                println!("{}", serde_json::to_string_pretty(&runs)?);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

pub fn reconcile(settings: &Settings, args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let engine = engine(settings)?;
    let partners: Vec<String> = match &args.partner {
        Some(p) => vec![p.clone()],
        None => engine.readable_partners(),
    };
    let options = ReconcileOptions {
        scope: if args.all && !args.open { Scope::All } else { Scope::Open },
        dry_run: args.dry_run,
        started_by: who(),
    };
    runtime.block_on(async move {
        let mut failed = false;
        for partner in partners {
            let progress = |c: &ReconcileCounts| {
                eprint!(
                    "\r{partner}: tickets {}  compared {}  drifted {}  healed {}  capped {}  errors {}   ",
                    c.tickets, c.compared, c.drifted, c.healed, c.capped, c.errors
                );
                let _ = std::io::stderr().flush();
            };
            let run = match engine.reconcile(&partner, &options, progress).await {
                Ok(r) => r,
                // Another process reconciles this partner now: the others still run.
                Err(e @ PullError::Running { .. }) => {
                    eprintln!("{partner}: {e}");
                    failed = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            eprintln!();
            let id = run.id;
            let items = engine.db.read(move |c| c.reconcile_items(id, None, 100_000).map_err(StoreError::from)).await?;
            let view = run_view(run, Vec::new());
            failed |= view.status != "succeeded";
            let items: Vec<_> = items.into_iter().map(item_view).collect();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"run": view, "items": items}))?);
                continue;
            }
            println!(
                "reconciliation {} of {} ({}{}): {}",
                view.id,
                view.partner,
                view.scope,
                if view.dry_run { ", dry run" } else { "" },
                view.status
            );
            println!("  {}", view.counts);
            if let Some(m) = &view.message {
                println!("  {m}");
            }
            for i in &items {
                let fields: Vec<String> =
                    i.fields.iter().map(|f| format!("{}: hub {} / partner {}", f.field, f.hub, f.partner)).collect();
                println!(
                    "  {:<19} {:<10} {:<14} cause {:<22} action {:<9} {}",
                    i.kind,
                    i.ticket.as_deref().unwrap_or("-"),
                    i.partner_ticket_id.as_deref().unwrap_or("-"),
                    i.cause,
                    i.action,
                    fields.join("; ")
                );
            }
        }
        Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    })
}
