//! What `ebond contracts check` proves beyond a folder that loads: every secret a contract
//! refers to resolves and fits its use, every transition a partner may perform can be completed
//! with what it may write or what rules derive, a partner that may create can create, and each
//! file is named for its partner.

use super::{Contract, OutboundAuth, Registry, SecretRef};
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

/// One thing the check found, in the partner's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub file: PathBuf,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{}: {level}: {}", self.file.display(), self.message)
    }
}

/// Where `db:` secrets are looked up: `Some(Ok(..))` stored, `Some(Err(why))` not readable,
/// `None` no database to ask.
pub type DbLookup<'a> = dyn Fn(&str, &str) -> Option<Result<String, String>> + 'a;

/// Every finding over `registry`, errors first, each file in order.
pub fn check(registry: &Registry, db: &DbLookup) -> Vec<Finding> {
    let mut out = Vec::new();
    // Shadows too: each is the version about to be promoted.
    for c in registry.all_versions().chain(registry.shadows()) {
        let mut found = Vec::new();
        file_name(c, &mut found);
        secrets(c, db, &mut found);
        transitions(c, registry, &mut found);
        creation(c, registry, &mut found);
        out.extend(found.into_iter().map(|(level, message)| Finding { level, file: c.file.clone(), message }));
    }
    out.sort_by(|a, b| (a.level, &a.file).cmp(&(b.level, &b.file)));
    out
}

fn file_name(c: &Contract, out: &mut Vec<(Level, String)>) {
    let stem = c.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = stem.strip_suffix(".shadow").map(str::to_string).unwrap_or(stem);
    // `<partner>.v2.toml`: a second major version of the partner's contract.
    let stem = match stem.rsplit_once(".v") {
        Some((base, n)) if n.parse::<u64>().is_ok() => base.to_string(),
        _ => stem,
    };
    if stem != c.id.as_str() {
        out.push((
            Level::Warning,
            format!(
                "the file is named `{stem}.toml` but the partner id is `{}`: name it `{}.toml` so both sides find it",
                c.id, c.id
            ),
        ));
    }
}

/// Each secret a contract refers to: where it is used, and whether the use fixes a format.
fn references(c: &Contract) -> Vec<(&'static str, &SecretRef, bool)> {
    let mut refs = Vec::new();
    if let Some(r) = &c.webhook_secret {
        refs.push(("[auth] webhook_secret", r, true));
    }
    if let Some(o) = &c.outbound {
        if let Some(r) = &o.signing_secret {
            refs.push(("[outbound] signing_secret", r, true));
        }
        match &o.auth {
            OutboundAuth::OAuth2ClientCredentials { client_secret, .. } => {
                refs.push(("[outbound.auth] client_secret", client_secret, false))
            }
            OutboundAuth::Basic { password, .. } => refs.push(("[outbound.auth] password", password, false)),
            OutboundAuth::ApiKey { key, .. } => refs.push(("[outbound.auth] key", key, false)),
            OutboundAuth::None => {}
        }
    }
    refs
}

fn secrets(c: &Contract, db: &DbLookup, out: &mut Vec<(Level, String)>) {
    for (used, r, whsec) in references(c) {
        let value = match r {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(v),
                Ok(_) => Err(format!("the environment variable {name} is empty")),
                Err(_) => {
                    Err(format!("the environment variable {name} is not set (here: set it where the gateway runs too)"))
                }
            },
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end().to_string())
                .map_err(|e| format!("the file {} cannot be read: {e}", path.display())),
            SecretRef::Db(name) => {
                match db(c.id.as_str(), name) {
                    Some(Ok(v)) => Ok(v),
                    Some(Err(why)) => Err(why),
                    None => {
                        out.push((
                        Level::Warning,
                        format!("{used} `db:{name}`: not checked, there is no database here (`ebond migrate` creates one)"),
                    ));
                        continue;
                    }
                }
            }
        };
        match value {
            Err(why) => out.push((Level::Error, format!("{used} `{}`: {why}", shown(r)))),
            Ok(v) if whsec => {
                if let Err(why) = whsec_format(&v) {
                    out.push((Level::Error, format!("{used} `{}`: {why}", shown(r))));
                }
            }
            Ok(_) => {}
        }
    }
}

/// A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 random bytes. Never shows the
/// value.
pub fn whsec_format(v: &str) -> Result<(), String> {
    use base64::Engine;
    let Some(b64) = v.strip_prefix("whsec_") else {
        return Err("the secret must start with `whsec_` (a Standard Webhooks secret)".into());
    };
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(key) if (24..=64).contains(&key.len()) => Ok(()),
        Ok(key) => Err(format!("after `whsec_` the key is {} bytes; use 24 to 64 random bytes", key.len())),
        Err(_) => Err("after `whsec_` the secret must be base64".into()),
    }
}

fn shown(r: &SecretRef) -> String {
    match r {
        SecretRef::Env(n) => format!("env:{n}"),
        SecretRef::File(p) => format!("file:{}", p.display()),
        SecretRef::Db(n) => format!("db:{n}"),
    }
}

/// Canonical fields the partner can set: written through a mapped field it may write, or
/// derived by one of its rules.
fn settable(c: &Contract) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = c.fields.iter().map(|f| f.target.name()).filter(|name| c.may_write(name)).collect();
    out.extend(c.rules.iter().map(|r| r.target.name()));
    out
}

fn requires<'a>(registry: &'a Registry, state: &str) -> &'a [String] {
    registry.workflow.states.iter().find(|s| s.name == state).map(|s| s.requires.as_slice()).unwrap_or(&[])
}

fn label(c: &Contract, state: &str) -> String {
    match c.state_text(state) {
        s if s != state => format!("`{s}` ({state})"),
        _ => format!("`{state}`"),
    }
}

fn transitions(c: &Contract, registry: &Registry, out: &mut Vec<(Level, String)>) {
    let settable = settable(c);
    let allowed: Vec<&(String, String)> =
        registry.workflow.transitions.iter().filter(|(f, t)| c.may_transition(f, t)).collect();
    if allowed.is_empty() {
        return;
    }
    if !settable.contains("state") {
        out.push((
            Level::Warning,
            "[access] transitions allows moves, but the partner cannot write `state` (no field maps it, or it is not in [access] write): it can perform none".into(),
        ));
        return;
    }
    // What every initial state requires was set when the ticket was made.
    let always: BTreeSet<&String> = registry
        .workflow
        .initial
        .iter()
        .map(|s| requires(registry, s).iter().collect::<BTreeSet<_>>())
        .reduce(|a, b| a.intersection(&b).copied().collect())
        .unwrap_or_default();
    for (from, to) in allowed {
        // What the source state required is set already (a write clearing it is refused).
        let mut before: BTreeSet<&String> = requires(registry, from).iter().collect();
        before.extend(always.iter().copied());
        let missing: Vec<String> = requires(registry, to)
            .iter()
            .filter(|f| !before.contains(f) && !settable.contains(*f))
            .map(|f| f.to_string())
            .collect();
        if !missing.is_empty() {
            out.push((
                Level::Error,
                format!(
                    "the transition {} → {} can never complete: state `{to}` requires {}, which this partner cannot write (no field maps it, or it is not in [access] write) and no rule derives; map the field, or take the transition out of [access] transitions",
                    label(c, from),
                    label(c, to),
                    missing.join(", ")
                ),
            ));
        }
    }
}

fn creation(c: &Contract, registry: &Registry, out: &mut Vec<(Level, String)>) {
    if !c.access.create {
        return;
    }
    let settable = settable(c);
    let workflow = &registry.workflow;
    // Without `state`, a ticket starts in the workflow's first initial state.
    let candidates: Vec<&String> = if settable.contains("state") {
        workflow.initial.iter().collect()
    } else {
        workflow.initial.first().into_iter().collect()
    };
    let can = candidates.iter().any(|s| requires(registry, s).iter().all(|f| settable.contains(f)));
    if !can {
        let needs: Vec<String> =
            candidates.iter().map(|s| format!("{} needs {}", label(c, s), requires(registry, s).join(", "))).collect();
        out.push((
            Level::Error,
            format!(
                "the partner may create, but can start a ticket in no initial state: {}; map those fields, or set [access] create = false",
                needs.join("; ")
            ),
        ));
    }
}
