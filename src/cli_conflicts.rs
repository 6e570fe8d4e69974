//! `ebond conflicts list|show|resolve`: the conflict queue from the command line, over the same
//! store and sync functions as the admin API.

use anyhow::Context;
use clap::Subcommand;
use ebond::api::admin::conflicts::{filter, view, ConflictView};
use ebond::config::Settings;
use ebond::store::StoreError;
use ebond::sync::conflicts::{self, Choice, Resolution};
use ebond::sync::AuditInfo;
use ebond::{app, sync::SyncError};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum ConflictsCommand {
    /// List conflict records, oldest first (open ones by default).
    List {
        /// open, resolved, superseded, overwritten or all.
        #[arg(long, default_value = "open")]
        status: String,
        /// The partner whose write conflicted.
        #[arg(long)]
        partner: Option<String>,
        /// Hub ticket number.
        #[arg(long)]
        ticket: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Show one record: base, proposed and current value of each field, canonical and in each
    /// side's vocabulary.
    Show {
        /// The conflict id (see `conflicts list`).
        id: i64,
        /// Print the record as JSON (as the admin API answers it).
        #[arg(long)]
        json: bool,
    },
    /// Resolve one conflict (ID), or every open one a filter matches (--all).
    Resolve {
        /// The conflict id (or use --all with a filter).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// keep_current or take_partner, for every held field not named with --field.
        #[arg(long)]
        choice: Option<String>,
        /// FIELD=keep_current, FIELD=take_partner or FIELD=custom:JSON (canonical field and
        /// value, e.g. state=custom:"in_progress"). Repeatable.
        #[arg(long = "field", value_name = "FIELD=CHOICE")]
        fields: Vec<String>,
        /// Why (kept with the resolution).
        #[arg(long)]
        comment: Option<String>,
        /// Resolve every open conflict that matches --partner / --ticket with --choice.
        #[arg(long)]
        all: bool,
        /// With --all: only conflicts of this partner's writes.
        #[arg(long, requires = "all")]
        partner: Option<String>,
        /// With --all: only conflicts on this hub ticket number.
        #[arg(long, requires = "all")]
        ticket: Option<String>,
        /// With --all: only count the conflicts that would be resolved.
        #[arg(long, requires = "all")]
        dry_run: bool,
    },
}

/// Who the command line acts as: recorded as the resolver and on the fields it sets.
fn operator() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

fn audit(path: String) -> AuditInfo {
    AuditInfo {
        request_id: format!("cli-{}", uuid::Uuid::now_v7().simple()),
        method: "CLI".into(),
        path,
        payload_sha256: ebond::util::sha256_hex(b""),
    }
}

fn parse_choice(text: &str) -> anyhow::Result<Choice> {
    Ok(match text {
        "keep_current" => Choice::KeepCurrent,
        "take_partner" => Choice::TakePartner,
        other => match other.strip_prefix("custom:") {
            Some(json) => Choice::Custom(
                serde_json::from_str(json)
                    .with_context(|| format!("custom value `{json}` is not JSON (quote strings)"))?,
            ),
            None => anyhow::bail!("`{other}`: use keep_current, take_partner or custom:JSON"),
        },
    })
}

fn print_view(v: &ConflictView) {
    println!("conflict {} on {} — {} (write {} by {})", v.id, v.ticket, v.status, v.request_id, v.partner);
    println!("  {} had seen version {}; the ticket was at {}", v.partner, v.seen_version, v.ticket_version);
    for f in &v.fields {
        println!("  {} [{}]", f.field, f.disposition);
        println!("    base (last seen): {}", f.base);
        println!("    proposed by {}: {}", v.partner, f.proposed);
        println!(
            "    current, set by {} in version {} at {}: {}",
            f.current_by, f.current_version, f.current_at, f.current
        );
        if let Some(c) = &f.chosen {
            println!("    chosen: {c}");
        }
        for (partner, side) in &f.sides {
            println!(
                "    as {partner} calls it ({}): base {}, proposed {}, current {}",
                side.field, side.base, side.proposed, side.current
            );
        }
    }
    if let Some(by) = &v.resolved_by {
        println!(
            "  resolved by {by} at {}{}",
            v.resolved_at.as_deref().unwrap_or("?"),
            v.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default()
        );
    }
}

pub fn run(settings: &Settings, command: ConflictsCommand) -> anyhow::Result<()> {
    let registry = Arc::new(app::load_contracts(settings)?);
    let db = app::open_database(settings)?;
    match command {
        ConflictsCommand::List { status, partner, ticket, limit } => {
            let status = (status != "all").then_some(status);
            let mut f = filter(status.as_deref(), partner, ticket.as_deref()).map_err(anyhow::Error::msg)?;
            f.limit = limit.max(1);
            let rows = db.read_now(|c| c.list_conflicts(&f).map_err(StoreError::from))?;
            println!("{:<6} {:<11} {:<12} {:<11} {:<25} FIELDS", "ID", "TICKET", "PARTNER", "STATUS", "CREATED");
            for c in rows.into_iter().map(|c| view(&registry, c)) {
                let fields: Vec<String> = c.fields.iter().map(|f| format!("{} ({})", f.field, f.disposition)).collect();
                println!(
                    "{:<6} {:<11} {:<12} {:<11} {:<25} {}",
                    c.id,
                    c.ticket,
                    c.partner,
                    c.status,
                    c.created_at,
                    fields.join(", ")
                );
            }
        }
        ConflictsCommand::Show { id, json } => {
            let found = db.read_now(|c| c.conflict(id).map_err(StoreError::from))?;
            let v = view(&registry, found.ok_or_else(|| anyhow::anyhow!("no conflict {id}"))?);
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_view(&v);
            }
        }
        ConflictsCommand::Resolve { all: true, choice, fields, comment, partner, ticket, dry_run, .. } => {
            anyhow::ensure!(fields.is_empty(), "--field names a field of one conflict: use it with an ID, not --all");
            let choice = match choice.as_deref() {
                Some(c @ ("keep_current" | "take_partner")) => parse_choice(c)?,
                _ => anyhow::bail!("--all needs --choice keep_current or --choice take_partner"),
            };
            let f = filter(None, partner, ticket.as_deref()).map_err(anyhow::Error::msg)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let bulk = conflicts::BulkResolution {
                filter: f,
                choice,
                operator: operator(),
                comment,
                audit: audit("ebond conflicts resolve --all".into()),
                dry_run,
            };
            let out = runtime.block_on(conflicts::resolve_matching(&db, registry.clone(), bulk))?;
            if out.dry_run {
                println!(
                    "{} open conflict{} match; run again without --dry-run to resolve them",
                    out.matched,
                    plural(out.matched)
                );
            } else {
                println!("resolved {} of {} matching conflict{}", out.resolved, out.matched, plural(out.matched));
            }
            for r in &out.refused {
                eprintln!("  conflict {} left open: {}", r.id, r.reason);
            }
        }
        ConflictsCommand::Resolve { id, choice, fields, comment, .. } => {
            let id = id.context("give the conflict id, or --all")?;
            let default = choice.as_deref().map(parse_choice).transpose()?;
            let mut choices = BTreeMap::new();
            for f in &fields {
                let (name, c) = f.split_once('=').with_context(|| format!("--field `{f}`: write FIELD=CHOICE"))?;
                choices.insert(name.to_string(), parse_choice(c)?);
            }
            let reg = registry.clone();
            let resolved = db.write_now(move |c| {
                let r = Resolution {
                    registry: &reg,
                    id,
                    choices,
                    default,
                    operator: operator(),
                    comment,
                    audit: audit(format!("ebond conflicts resolve {id}")),
                    now: ebond::util::now_ms(),
                };
                conflicts::resolve(c, r)
            });
            let resolved = match resolved {
                Ok(r) => r,
                Err(SyncError::Store(e)) => return Err(e.into()),
                // The same words the admin API answers with.
                Err(e) => anyhow::bail!("{}", ebond::api::problem::ApiError::Sync(e).problem().detail),
            };
            println!(
                "resolved conflict {id}: ticket at version {}, pushed to {}",
                resolved.version,
                if resolved.fanned_out_to.is_empty() { "nobody".into() } else { resolved.fanned_out_to.join(", ") }
            );
            print_view(&view(&registry, resolved.conflict));
        }
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
