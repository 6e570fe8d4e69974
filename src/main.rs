//! The `ebond` command line.

mod cli_conflicts;
mod cli_contracts;
mod cli_sync;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ebond::config::Settings;
use ebond::outbox::admin as outbox_admin;
use ebond::store::outbox::{OutboxFilter, OutboxStatus};
use ebond::store::StoreError;
use ebond::{app, auth, openapi};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ebond", version, about = "eBond gateway: keeps tickets in step across partners' ticketing systems")]
struct Cli {
    /// Settings file (default: ./ebond.toml when present). EBOND_* variables override it.
    #[arg(long, global = true, env = "EBOND_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (HTTP API).
    Serve,
    /// Run only the outbox processor (deliveries to partners).
    Worker,
    /// Apply pending database migrations.
    Migrate,
    /// List every setting: its key in ebond.toml, its EBOND_* variable and its default.
    Settings,
    /// Inspect and replay outbound deliveries.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Check contract files, and reload them in every running gateway process.
    Contracts {
        #[command(subcommand)]
        command: ContractsCommand,
    },
    /// Write the OpenAPI documents under openapi/, or check they are current.
    Openapi {
        /// Fail (exit 1) when a checked-in document differs from what would be generated.
        #[arg(long)]
        check: bool,
        /// Folder of the checked-in documents.
        #[arg(long, default_value = "openapi")]
        dir: PathBuf,
    },
    /// The queue of conflicting writes: list, show, resolve.
    Conflicts {
        #[command(subcommand)]
        command: cli_conflicts::ConflictsCommand,
    },
    /// Pull sync: run a partner's pull now, see watermarks and runs.
    Sync {
        #[command(subcommand)]
        command: cli_sync::SyncCommand,
    },
    /// Compare partners' copies of shared tickets with the hub's and heal the drift.
    Reconcile(cli_sync::ReconcileArgs),
    /// Partners and their credentials.
    Partner {
        #[command(subcommand)]
        command: PartnerCommand,
    },
    /// Operator credentials.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum ContractsCommand {
    /// Check every contract in DIR, or one FILE: every error with file:line:column, then
    /// whether each secret resolves and fits its use, each allowed transition can complete, a
    /// creating partner can create, and files are named for their partners. Exit 1 on errors.
    Check {
        /// The folder (default: the configured contracts folder), or one partner file (checked
        /// with the workflow.toml beside it).
        dir: Option<PathBuf>,
    },
    /// Run a partner's payload against a contract folder as a dry run over the database: what
    /// the write would do (changes, derived values, transition, events, each partner's push)
    /// or why it would be refused. Nothing is written. Exit 1 when it would be refused.
    Try {
        /// The partner whose payload it is.
        partner: String,
        /// A file with the JSON payload, as the partner would send it.
        payload: PathBuf,
        /// Try it as an update of this ticket (the partner's id for it, or the hub number).
        #[arg(long, conflicts_with = "from")]
        update: Option<String>,
        /// Try it as an update of a ticket in this state (the partner's value or canonical),
        /// made up for the dry run.
        #[arg(long)]
        from: Option<String>,
        /// The contracts folder to try (default: the configured one): a contract being edited
        /// can be tried before any gateway loads it.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Write the JSON Schemas of the contract and workflow formats (for editors with TOML
    /// schema support), or check that the checked-in ones are current.
    Schema {
        /// Fail (exit 1) when a checked-in schema differs from what would be generated.
        #[arg(long)]
        check: bool,
        /// Folder of the schemas.
        #[arg(long, default_value = "schema")]
        dir: PathBuf,
    },
    /// Put PARTNER's shadow contract (<partner>.shadow.toml) in force: it takes the live file's
    /// name (the old one is kept as .previous), then every running process reloads.
    Promote {
        /// The partner id.
        partner: String,
        /// Seconds to wait for every process to act on the reload.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Take PARTNER's shadow contract out (its file is kept as .dropped), then every running
    /// process reloads.
    DropShadow {
        /// The partner id.
        partner: String,
        /// Seconds to wait for every process to act on the reload.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Write PARTNER's data-contract document (what both sides sign off) to standard output:
    /// fields, values, rules, states and transitions, what is pushed, retries and limits.
    Doc {
        /// The partner id.
        partner: String,
        /// md (Markdown) or html.
        #[arg(long, default_value = "md")]
        format: String,
        /// The contracts folder (default: the configured one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check the configured contracts folder, then have every gateway process on the database
    /// (`serve`, `worker`) load it anew, without a restart; shows what each process enforces.
    Reload {
        /// Seconds to wait for every process to act on the reload.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// List outbox rows, oldest first (by default what is not delivered yet: pending, in
    /// flight and dead letters).
    List {
        /// Only this partner's rows.
        #[arg(long)]
        partner: Option<String>,
        /// undelivered (pending, in_flight and dead), pending, in_flight, delivered, dead,
        /// discarded or all.
        #[arg(long, default_value = "undelivered")]
        status: String,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Show one row with its payload and every attempt.
    Show {
        /// The outbox row's id (see `outbox list`).
        id: i64,
    },
    /// Give up on a dead letter: it is never delivered, and its ticket's later changes flow.
    Discard {
        /// The dead letter's outbox id.
        id: i64,
    },
    /// Queue a dead letter again (ID), or every dead letter of a partner, in order (--partner).
    Replay {
        /// The dead letter's outbox id (or use --partner).
        #[arg(required_unless_present = "partner", conflicts_with = "partner")]
        id: Option<i64>,
        /// Replay every dead letter of this partner, oldest first.
        #[arg(long)]
        partner: Option<String>,
    },
}

#[derive(Subcommand)]
enum PartnerCommand {
    /// List the partners whose contracts are loaded.
    List,
    /// Write contracts/<ID>.toml to start from: a copy of an example contract (its comments
    /// explain each section) under the new id, version 0.1.0, with the schema directive for
    /// editors. Then: `ebond contracts check`, `try`, `reload`.
    New {
        /// The new partner's id (a-z, 0-9, `-`, `_`).
        id: String,
        /// The example to start from: servicenow (flat Table-API fields), enovia (nested
        /// payloads with JSON Pointers, webhook events), acme-msp (a restricted MSP), fieldops
        /// (poll-only), initech (the Table-API facade).
        #[arg(long, default_value = "acme-msp")]
        like: String,
        /// The partner's display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Stop deliveries to a partner (its backlog waits).
    Pause {
        /// The partner id (its contract's `id`).
        partner: String,
    },
    /// Resume deliveries to a partner.
    Resume {
        /// The partner id.
        partner: String,
    },
    /// Secrets stored encrypted in the database.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Partner client credentials.
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// Issue a client id and secret for PARTNER (the secret is shown once).
    Issue {
        /// The partner id (its contract's `id`).
        partner: String,
        /// Print {"client_id": …, "client_secret": …}.
        #[arg(long)]
        json: bool,
        /// Tokens of this credential may only read.
        #[arg(long)]
        read_only: bool,
        /// A login of the ServiceNow Table-API facade (`/api/now`) instead: its client id is
        /// the username and its secret the password of HTTP Basic and of the facade's OAuth
        /// password grant. The partner's contract must have `[table_api] enabled = true`.
        #[arg(long)]
        table_api: bool,
        /// Bind the credential to this major version of the partner's contract (when two are
        /// live): its tokens are served under it without an Ebond-Contract-Version header.
        #[arg(long)]
        contract_version: Option<u64>,
    },
    /// Give PARTNER's newest credential a new secret; the old one works for the overlap.
    Rotate {
        /// The partner id (its contract's `id`).
        partner: String,
        /// How long the old secret keeps working, e.g. 24h, 30m, 0s.
        #[arg(long, default_value = "24h")]
        overlap: String,
        /// Rotate this credential rather than the newest.
        #[arg(long)]
        client_id: Option<String>,
        /// Rotate even while an earlier rotation's overlap runs (that previous secret stops).
        #[arg(long)]
        force: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke PARTNER's credentials (or one): every token they issued stops at once.
    Revoke {
        /// The partner id (its contract's `id`).
        partner: String,
        /// Revoke only this credential (see `list`).
        #[arg(long)]
        client_id: Option<String>,
    },
    /// List PARTNER's credentials: client id, kind, scope, creation, revocation and until when
    /// a rotated-out secret still works.
    List {
        /// The partner id (its contract's `id`).
        partner: String,
        /// Print them as JSON lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Store a secret for PARTNER under NAME, read from standard input, encrypted with the
    /// master key; contracts refer to it as `db:NAME`.
    Set {
        /// The partner id.
        partner: String,
        /// The secret's name, as the contract refers to it (`db:NAME`).
        name: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Operator client credentials.
    Credentials {
        #[command(subcommand)]
        command: AdminCredentialsCommand,
    },
    /// Lockouts after repeated failed authentications.
    Lockout {
        #[command(subcommand)]
        command: LockoutCommand,
    },
}

#[derive(Subcommand)]
enum AdminCredentialsCommand {
    /// Issue an operator client id and secret (admin scope; the secret is shown once).
    Issue {
        /// Print {"client_id": …, "client_secret": …}.
        #[arg(long)]
        json: bool,
        /// A read-only operator (`admin:read`): signs in to the console and reads the admin
        /// API, but may not replay, resolve, pause or reload.
        #[arg(long)]
        read_only: bool,
    },
    /// List operator credentials: client id, scope, creation and revocation.
    List {
        /// Print them as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one operator credential: its tokens stop at once in every process.
    Revoke {
        /// The operator credential's client id (see `admin credentials list`).
        client_id: String,
    },
}

#[derive(Subcommand)]
enum LockoutCommand {
    /// Clear a lockout now: the failures so far stop counting (the clearing is logged as an
    /// authentication event).
    Clear {
        /// The locked-out client id.
        #[arg(long, required_unless_present = "source")]
        client_id: Option<String>,
        /// The locked-out source address (as `GET /admin/auth-events` shows it).
        #[arg(long)]
        source: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    ebond::telemetry::init(settings.log_format);
    match run(cli.command, settings) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(app::serve(settings))?;
        }
        Command::Worker => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(app::work(settings))?;
        }
        Command::Outbox { command } => outbox(&settings, command)?,
        Command::Conflicts { command } => cli_conflicts::run(&settings, command)?,
        Command::Sync { command } => return cli_sync::run(&settings, command),
        Command::Reconcile(args) => return cli_sync::reconcile(&settings, args),
        Command::Partner { command: PartnerCommand::Pause { partner } } => set_paused(&settings, &partner, true)?,
        Command::Partner { command: PartnerCommand::Resume { partner } } => set_paused(&settings, &partner, false)?,
        Command::Migrate => {
            let (_, applied) = app::open_and_migrate(&settings)?;
            let shown = app::describe_database(&settings.effective_database_url());
            if applied.is_empty() {
                println!("{shown} is up to date");
            } else {
                println!(
                    "migrated {shown}: applied {} migration{} ({})",
                    applied.len(),
                    if applied.len() == 1 { "" } else { "s" },
                    applied.join(", ")
                );
            }
        }
        Command::Settings => {
            println!("{:<36} {:<40} DEFAULT", "KEY (ebond.toml)", "VARIABLE");
            for s in Settings::describe() {
                println!("{:<36} {:<40} {}", s.key, s.env, s.default);
            }
        }
        Command::Contracts { command: ContractsCommand::Check { dir } } => return cli_contracts::check(&settings, dir),
        Command::Contracts { command: ContractsCommand::Reload { wait } } => return reload_contracts(&settings, wait),
        Command::Contracts { command: ContractsCommand::Promote { partner, wait } } => {
            return settle_shadow(&settings, &partner, wait, true)
        }
        Command::Contracts { command: ContractsCommand::DropShadow { partner, wait } } => {
            return settle_shadow(&settings, &partner, wait, false)
        }
        Command::Contracts { command: ContractsCommand::Schema { check, dir } } => {
            if check {
                let stale = ebond::contract::stale_schemas(&dir);
                if !stale.is_empty() {
                    for s in &stale {
                        eprintln!("stale: {s}");
                    }
                    eprintln!("run `ebond contracts schema` to regenerate the schemas and commit them");
                    return Ok(ExitCode::FAILURE);
                }
                println!("contract schemas under {} are current", dir.display());
            } else {
                for p in ebond::contract::write_schemas(&dir).context("writing the schemas")? {
                    println!("wrote {p}");
                }
            }
        }
        Command::Contracts { command: ContractsCommand::Doc { partner, format, dir } } => {
            use ebond::contract::document::Audience;
            let dir = dir.unwrap_or_else(|| settings.contracts_dir.clone());
            let registry = ebond::contract::load_dir(&dir).map_err(|errors| {
                anyhow::anyhow!("{} has {} error(s): run `ebond contracts check`", dir.display(), errors.len())
            })?;
            let contract = registry
                .get(&partner)
                .ok_or_else(|| anyhow::anyhow!("no contract for `{partner}` in {}", dir.display()))?;
            let ttl = settings.auth.default_token_ttl_secs;
            match format.as_str() {
                "md" | "markdown" => {
                    print!("{}", ebond::contract::document::markdown(&registry, contract, ttl, Audience::Operator))
                }
                "html" => print!("{}", ebond::contract::document::html(&registry, contract, ttl, Audience::Operator)),
                other => anyhow::bail!("--format `{other}`: use md or html"),
            }
        }
        Command::Contracts { command: ContractsCommand::Try { partner, payload, update, from, dir } } => {
            let how = match (update, from) {
                (Some(t), _) => cli_contracts::TryAs::Update(t),
                (None, Some(s)) => cli_contracts::TryAs::From(s),
                (None, None) => cli_contracts::TryAs::Create,
            };
            return cli_contracts::run(&settings, dir, &partner, payload, how);
        }
        Command::Openapi { check, dir } => {
            let registry = app::load_contracts(&settings)?;
            if check {
                let stale = openapi::stale_documents(&dir, &registry);
                if !stale.is_empty() {
                    for s in &stale {
                        eprintln!("stale: {s}");
                    }
                    eprintln!("run `ebond openapi` to regenerate the documents and commit them");
                    return Ok(ExitCode::FAILURE);
                }
                println!("OpenAPI documents under {} are current", dir.display());
            } else {
                for p in openapi::write_documents(&dir, &registry).context("writing OpenAPI documents")? {
                    println!("wrote {p}");
                }
            }
        }
        Command::Partner { command: PartnerCommand::List } => {
            let registry = app::load_contracts(&settings)?;
            let db = app::open_database(&settings)?;
            let (creds, paused) =
                db.read_now(|c| Ok::<_, StoreError>((c.list_credentials()?, outbox_admin::paused(c)?)))?;
            println!(
                "{:<14} {:<44} {:<9} {:<7} {:<11} {:<9} CREDENTIALS",
                "PARTNER", "NAME", "CONTRACT", "CREATE", "SUBSCRIBES", "DELIVERY"
            );
            for c in registry.partners() {
                let subscribes = c.outbound.as_ref().is_some_and(|o| !o.subscriptions.is_empty());
                let active =
                    creds.iter().filter(|k| k.partner.as_deref() == Some(&c.id) && k.revoked_at.is_none()).count();
                let delivery = if paused.iter().any(|p| *p == c.id) { "paused" } else { "on" };
                println!(
                    "{:<14} {:<44} {:<9} {:<7} {:<11} {:<9} {active}",
                    c.id, c.name, c.version, c.access.create, subscribes, delivery
                );
            }
        }
        Command::Partner { command: PartnerCommand::New { id, like, name } } => {
            let path = cli_contracts::scaffold(&settings, &id, &like, name.as_deref())?;
            println!("wrote {}", path.display());
            eprintln!(
                "next: edit it, then `ebond contracts check {}`, `ebond contracts try {id} payload.json`, `ebond contracts reload`",
                path.display()
            );
        }
        Command::Partner { command: PartnerCommand::Credentials { command } } => credentials(&settings, command)?,
        Command::Partner { command: PartnerCommand::Secret { command: SecretCommand::Set { partner, name } } } => {
            set_secret(&settings, &partner, &name)?
        }
        Command::Admin { command: AdminCommand::Credentials { command: AdminCredentialsCommand::List { json } } } => {
            list_credentials(&settings, None, json)?
        }
        Command::Admin {
            command: AdminCommand::Credentials { command: AdminCredentialsCommand::Revoke { client_id } },
        } => revoke(&settings, None, Some(client_id))?,
        Command::Admin { command: AdminCommand::Lockout { command: LockoutCommand::Clear { client_id, source } } } => {
            let db = app::open_database(&settings)?;
            let clear = ebond::api::admin::LockoutClear { client_id, source };
            let who = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "operator".into()));
            let now = ebond::util::now_ms();
            let shown = [clear.client_id.clone(), clear.source.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" from ");
            db.write_now(move |c| ebond::api::admin::clear_lockout(c, &clear, &who, now))?;
            println!("lockout of {shown} cleared: earlier failures no longer count");
        }
        Command::Admin {
            command: AdminCommand::Credentials { command: AdminCredentialsCommand::Issue { json, read_only } },
        } => {
            issue_scoped(&settings, None, read_only, auth::CredentialKind::Client, None, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn issue_scoped(
    settings: &Settings,
    partner: Option<&str>,
    read_only: bool,
    kind: auth::CredentialKind,
    contract_major: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let db = app::open_database(settings)?;
    let iterations = settings.auth.pbkdf2_iterations;
    let partner = partner.map(str::to_string);
    let major = contract_major.and_then(|m| i64::try_from(m).ok());
    let cred = db.write_now(move |c| {
        auth::tokens::issue_credential_scoped(c, partner.as_deref(), read_only, kind, major, iterations)
    })?;
    if json {
        println!("{}", serde_json::to_string(&cred)?);
    } else if kind == auth::CredentialKind::Login {
        println!("username: {}", cred.client_id);
        println!("password: {}", cred.client_secret);
        eprintln!("Store the password now: it is kept only as a hash and cannot be shown again.");
    } else {
        println!("client_id:     {}", cred.client_id);
        println!("client_secret: {}", cred.client_secret);
        eprintln!("Store the secret now: it is kept only as a hash and cannot be shown again.");
    }
    Ok(())
}

fn outbox(settings: &Settings, command: OutboxCommand) -> anyhow::Result<()> {
    let db = app::open_database(settings)?;
    match command {
        OutboxCommand::List { partner, status, limit } => {
            let statuses = match status.as_str() {
                "all" => Vec::new(),
                "undelivered" => vec![OutboxStatus::Pending, OutboxStatus::InFlight, OutboxStatus::Dead],
                s => vec![OutboxStatus::parse(s).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--status `{s}`: use undelivered, pending, in_flight, delivered, dead, discarded or all"
                    )
                })?],
            };
            let filter = OutboxFilter { partner, statuses, ticket_id: None, after_id: None, limit };
            let rows = db.read_now(|c| outbox_admin::list(c, &filter))?;
            println!(
                "{:>8} {:<12} {:<11} {:<16} {:<10} {:>8} {:>6}  LAST ERROR",
                "ID", "PARTNER", "TICKET", "EVENT", "STATUS", "ATTEMPTS", "HTTP"
            );
            for r in &rows {
                println!(
                    "{:>8} {:<12} {:<11} {:<16} {:<10} {:>8} {:>6}  {}",
                    r.id,
                    r.partner,
                    r.ticket.as_deref().unwrap_or("-"),
                    r.event,
                    r.status,
                    r.attempts,
                    r.last_status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    r.last_error.as_deref().unwrap_or("")
                );
            }
            eprintln!("{} row{} ({status})", rows.len(), if rows.len() == 1 { "" } else { "s" });
        }
        OutboxCommand::Show { id } => match db.read_now(|c| outbox_admin::show(c, id))? {
            Some(d) => println!("{}", serde_json::to_string_pretty(&d)?),
            None => anyhow::bail!("no outbox row {id}"),
        },
        OutboxCommand::Discard { id } => {
            if !db.write_now(move |c| outbox_admin::discard(c, id))? {
                anyhow::bail!("outbox row {id} is not a dead letter");
            }
            println!("discarded dead letter {id}; later changes of its ticket go out now");
        }
        OutboxCommand::Replay { id: Some(id), .. } => {
            if !db.write_now(move |c| outbox_admin::replay(c, id))? {
                anyhow::bail!("outbox row {id} is not a dead letter");
            }
            println!("replayed 1 dead letter ({id}); a running processor picks it up within its poll interval");
        }
        OutboxCommand::Replay { partner: Some(p), .. } => {
            let partner = p.clone();
            let n = db.write_now(move |c| outbox_admin::replay_partner(c, &partner))?;
            println!("replayed {n} dead letter{} of {p}, in their original order", if n == 1 { "" } else { "s" });
        }
        OutboxCommand::Replay { .. } => anyhow::bail!("give an outbox id or --partner"),
    }
    Ok(())
}

fn set_paused(settings: &Settings, partner: &str, paused: bool) -> anyhow::Result<()> {
    let registry = app::load_contracts(settings)?;
    if registry.get(partner).is_none() {
        anyhow::bail!("no contract for partner `{partner}`");
    }
    let db = app::open_database(settings)?;
    let p = partner.to_string();
    db.write_now(move |c| outbox_admin::set_paused(c, &p, paused))?;
    println!("deliveries to {partner} {}", if paused { "paused: its backlog waits" } else { "resumed" });
    Ok(())
}

fn known_partner(settings: &Settings, partner: &str) -> anyhow::Result<()> {
    let registry = app::load_contracts(settings)?;
    if registry.get(partner).is_none() {
        let known: Vec<&str> = registry.partners().map(|c| c.id.as_str()).collect();
        anyhow::bail!("no contract for partner `{partner}`; known partners: {}", known.join(", "));
    }
    Ok(())
}

fn credentials(settings: &Settings, command: CredentialsCommand) -> anyhow::Result<()> {
    match command {
        CredentialsCommand::Issue { partner, json, read_only, table_api, contract_version } => {
            known_partner(settings, &partner)?;
            if let Some(major) = contract_version {
                let registry = app::load_contracts(settings)?;
                if registry.version(&partner, major).is_none() {
                    let live: Vec<String> = registry.versions(&partner).map(|c| c.version.clone()).collect();
                    anyhow::bail!(
                        "`{partner}` has no live contract of major version {major} (live: {})",
                        live.join(", ")
                    );
                }
            }
            let kind = match table_api {
                true => {
                    let registry = app::load_contracts(settings)?;
                    if registry.get(&partner).is_none_or(|c| c.table_api.is_none()) {
                        anyhow::bail!(
                            "partner `{partner}` does not enable the Table-API facade: add `[table_api] enabled = true` to its contract first"
                        );
                    }
                    auth::CredentialKind::Login
                }
                false => auth::CredentialKind::Client,
            };
            issue_scoped(settings, Some(&partner), read_only, kind, contract_version, json)
        }
        CredentialsCommand::Rotate { partner, overlap, client_id, force, json } => {
            known_partner(settings, &partner)?;
            let overlap_secs = ebond::contract::parse_duration(&overlap)
                .map(|d| d.as_secs() as i64)
                .ok_or_else(|| anyhow::anyhow!("--overlap `{overlap}` is not a duration such as 24h, 30m or 0s"))?;
            let db = app::open_database(settings)?;
            let iterations = settings.auth.pbkdf2_iterations;
            let (p, id) = (partner.clone(), client_id.clone());
            let rotated =
                db.write_now(move |c| auth::tokens::rotate(c, &p, id.as_deref(), overlap_secs, force, iterations))?;
            let Some(cred) = rotated else { anyhow::bail!("{partner} has no live credential to rotate") };
            if json {
                println!("{}", serde_json::to_string(&cred)?);
            } else {
                println!("client_id:     {}", cred.client_id);
                println!("client_secret: {}", cred.client_secret);
                eprintln!(
                    "The previous secret keeps working for {overlap}. Store the new one now: it cannot be shown again."
                );
            }
            Ok(())
        }
        CredentialsCommand::Revoke { partner, client_id } => revoke(settings, Some(partner), client_id),
        CredentialsCommand::List { partner, json } => {
            known_partner(settings, &partner)?;
            list_credentials(settings, Some(&partner), json)
        }
    }
}

/// Revokes a partner's credentials (or one), or one operator credential (`partner` `None`), and
/// waits until every running process has forgotten the tokens it remembered.
fn revoke(settings: &Settings, partner: Option<String>, client_id: Option<String>) -> anyhow::Result<()> {
    let db = app::open_database(settings)?;
    let now = ebond::util::now_ms();
    let (p, id) = (partner.clone(), client_id.clone());
    let n = db.write_now(move |c| c.revoke(p.as_deref(), id.as_deref(), now).map_err(StoreError::from))?;
    let whose = partner.clone().unwrap_or_else(|| "the operators".into());
    if n == 0 {
        anyhow::bail!(
            "{whose} {} no live credential{} to revoke",
            if partner.is_some() { "has" } else { "have" },
            client_id.map(|c| format!(" {c}")).unwrap_or_default()
        );
    }
    // Every running process remembers checked tokens: wait until each has heard.
    let generation =
        db.read_now(|c| ebond::store::signals::SignalRepo::revoked_generation(c).map_err(StoreError::from))?;
    let unheard = ebond::store::listener::await_revocation(
        &db,
        generation,
        settings.database.heartbeat(),
        std::time::Duration::from_secs(5),
    )?;
    println!("revoked {n} credential{} of {whose}; their tokens no longer work", if n == 1 { "" } else { "s" });
    if !unheard.is_empty() {
        eprintln!(
            "warning: {} running process(es) did not confirm within 5 s that they forgot the revoked tokens: {}; each takes a token from memory for auth.token_cache_secs at most",
            unheard.len(),
            unheard.join(", ")
        );
    }
    Ok(())
}

/// Lists a partner's credentials, or the operators' (`None`); never a secret or its hash.
fn list_credentials(settings: &Settings, partner: Option<&str>, json: bool) -> anyhow::Result<()> {
    let db = app::open_database(settings)?;
    let rows: Vec<_> = db
        .read_now(|c| c.list_credentials().map_err(StoreError::from))?
        .into_iter()
        .filter(|r| r.partner.as_deref() == partner)
        .collect();
    let at = |ms: Option<i64>| ms.map(ebond::util::ms_to_rfc3339).unwrap_or_else(|| "-".into());
    if !json {
        println!(
            "{:<30} {:<7} {:<14} {:<25} {:<25} PREVIOUS SECRET UNTIL",
            "CLIENT ID", "KIND", "SCOPE", "CREATED", "REVOKED"
        );
    }
    let now = ebond::util::now_ms();
    for r in &rows {
        // A rotated-out secret that stopped working is not worth showing.
        let previous = r.previous_valid_until.filter(|u| *u > now);
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "client_id": r.client_id, "kind": r.kind, "scope": r.scope,
                    "created_at": at(Some(r.created_at)), "revoked_at": r.revoked_at.map(ebond::util::ms_to_rfc3339),
                    "contract_version": r.contract_major,
                    "previous_secret_valid_until": previous.map(ebond::util::ms_to_rfc3339),
                })
            );
        } else {
            println!(
                "{:<30} {:<7} {:<14} {:<25} {:<25} {}",
                r.client_id,
                r.kind,
                r.scope,
                at(Some(r.created_at)),
                at(r.revoked_at),
                at(previous)
            );
        }
    }
    if !json {
        let live = rows.iter().filter(|r| r.revoked_at.is_none()).count();
        eprintln!("{} credential{} ({live} live)", rows.len(), if rows.len() == 1 { "" } else { "s" });
    }
    Ok(())
}

fn set_secret(settings: &Settings, partner: &str, name: &str) -> anyhow::Result<()> {
    use std::io::Read;
    known_partner(settings, partner)?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        anyhow::bail!("secret names are letters, digits, `_` and `-`");
    }
    let mut value = String::new();
    std::io::stdin().read_to_string(&mut value).context("reading the secret from standard input")?;
    let value = value.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        anyhow::bail!("standard input was empty: pipe the secret in, e.g. `printf %s \"$SECRET\" | ebond partner secret set {partner} {name}`");
    }
    let db = app::open_database(settings)?;
    let secrets = ebond::secrets::Secrets::new(db, settings);
    secrets.store(partner, name, value)?;
    println!("stored secret `{name}` for {partner} (AES-256-GCM); refer to it as db:{name}");
    Ok(())
}

/// `ebond contracts reload`: the folder is checked here first (a broken one is refused before any
/// process sees it), then every process on the roll is told through the database and the
/// command waits until each has acted, showing the digest each enforces.
fn reload_contracts(settings: &Settings, wait: u64) -> anyhow::Result<ExitCode> {
    let registry = match ebond::contract::load_dir(&settings.contracts_dir) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "{} error{} found: nothing was reloaded; the running gateways keep the contracts they enforce",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let db = app::open_database(settings)?;
    let generation =
        db.write_now(|c| ebond::store::signals::SignalRepo::raise_contracts(c).map_err(StoreError::from))?;
    let roll = ebond::store::listener::await_contracts(
        &db,
        generation,
        settings.database.heartbeat(),
        std::time::Duration::from_secs(wait),
    )?;
    println!(
        "{}: workflow and {} partner contract{} OK (sha256 {})",
        settings.contracts_dir.display(),
        registry.partners().count(),
        if registry.partners().count() == 1 { "" } else { "s" },
        &registry.sha256[..12]
    );
    if roll.is_empty() {
        println!("no gateway process is running on this database: the contracts take effect when one starts");
        return Ok(ExitCode::SUCCESS);
    }
    let mut behind = 0;
    println!("{:<36} {:<7} CONTRACTS", "PROCESS", "KIND");
    for p in &roll {
        let state = if p.contracts_heard < generation {
            behind += 1;
            format!("did not answer within {wait} s")
        } else if p.contracts_sha256 == registry.sha256 {
            format!("reloaded: {}", &p.contracts_sha256[..12.min(p.contracts_sha256.len())])
        } else {
            behind += 1;
            format!(
                "enforces {} instead (its folder differs or has errors: see its log)",
                &p.contracts_sha256[..12.min(p.contracts_sha256.len())]
            )
        };
        println!("{:<36} {:<7} {state}", p.id, p.kind);
    }
    if behind > 0 {
        eprintln!("{behind} of {} process(es) do not enforce this folder's contracts", roll.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `ebond contracts promote|drop-shadow`: the files are moved in the configured folder, the
/// shadow's recorded differences forgotten, and every running process reloads.
fn settle_shadow(settings: &Settings, partner: &str, wait: u64, promote: bool) -> anyhow::Result<ExitCode> {
    let registry = app::load_contracts(settings)?;
    let moved = if promote {
        ebond::contract::live::promote_shadow(&registry, partner)
    } else {
        ebond::contract::live::drop_shadow(&registry, partner)
    };
    let path = moved.map_err(anyhow::Error::msg)?;
    println!("{} {partner}'s shadow contract: {}", if promote { "promoted" } else { "dropped" }, path.display());
    let db = app::open_database(settings)?;
    let p = partner.to_string();
    db.write_now(move |c| ebond::store::shadow::ShadowRepo::clear_shadow_diffs(c, &p).map_err(StoreError::from))?;
    reload_contracts(settings, wait)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and every argument says what it is in `--help`.
    #[test]
    fn help_describes_every_command_and_argument() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && !path.is_empty() {
                missing.push(format!("{here}: the command"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{here}: {id}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
    }
}
