//! The contracts in force in this process, swapped whole on a reload.
//!
//! Every unit of work (a request, a claim round, a pull) takes one snapshot with
//! [`Live::current`] and keeps it to the end, so a reload never shows it half of each: what is
//! in flight finishes on the old registry, what starts after the swap sees the new one. A
//! folder with any error is refused whole and the registry in force stays.

use super::{ContractError, Registry};
use arc_swap::ArcSwap;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The registry in force and the folder it is reloaded from.
pub struct Live {
    dir: PathBuf,
    current: ArcSwap<Registry>,
    /// One reload at a time (two at once would each compare against the same old registry).
    reloading: Mutex<()>,
}

/// What one partner's contract did in a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Changed,
    Unchanged,
    Removed,
}

/// One partner in a reload's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartnerChange {
    pub partner: String,
    pub change: Change,
    /// The version now in force (`None` once removed).
    pub contract_version: Option<String>,
    pub previous_version: Option<String>,
    pub file_sha256: Option<String>,
}

/// A reload that took effect (or found nothing to change).
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub current: Arc<Registry>,
    pub previous_sha256: String,
    pub partners: Vec<PartnerChange>,
}

impl Reloaded {
    /// Nothing differs from what was in force.
    pub fn unchanged(&self) -> bool {
        self.previous_sha256 == self.current.sha256
    }
}

impl Live {
    pub fn new(dir: &Path, registry: Registry) -> Live {
        Live { dir: dir.to_path_buf(), current: ArcSwap::from_pointee(registry), reloading: Mutex::new(()) }
    }

    /// The registry in force now; keep it for the whole unit of work.
    pub fn current(&self) -> Arc<Registry> {
        self.current.load_full()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the folder anew and, when every file is valid, puts it in force; otherwise every
    /// error, with the registry in force untouched.
    pub fn reload(&self) -> Result<Reloaded, Vec<ContractError>> {
        let _one = self.reloading.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = Arc::new(super::load_dir(&self.dir)?);
        let previous = self.current.load_full();
        let partners = changes(&previous, &next);
        let unchanged = previous.sha256 == next.sha256;
        if !unchanged {
            self.current.store(next.clone());
        }
        Ok(Reloaded {
            current: if unchanged { previous.clone() } else { next },
            previous_sha256: previous.sha256.clone(),
            partners,
        })
    }
}

/// Puts `partner`'s shadow contract in force on the next reload: its live file is kept beside
/// as `<file>.previous` (not loaded), the shadow file takes the live file's name. Returns the
/// file now holding the contract.
pub fn promote_shadow(registry: &Registry, partner: &str) -> Result<std::path::PathBuf, String> {
    let default = registry.get(partner).ok_or_else(|| format!("no partner `{partner}` has a contract here"))?;
    let shadow = registry.shadow(partner).ok_or_else(|| format!("no shadow contract is loaded for `{partner}`"))?;
    // The live version of the shadow's major is the one it replaces (the default otherwise).
    let live = registry.version(partner, shadow.major).unwrap_or(default);
    // The folder as it would be must load, or nothing is moved.
    let dir = live.file.parent().unwrap_or(std::path::Path::new("."));
    if let Err(errors) = try_folder(dir, &live.file, &shadow.file) {
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(format!(
            "the folder would not load after the promotion, so nothing was moved:\n  {}",
            list.join("\n  ")
        ));
    }
    let mut previous = live.file.clone().into_os_string();
    previous.push(".previous");
    // An earlier promotion's backup is kept: this one gets its own name.
    if std::path::Path::new(&previous).exists() {
        previous.push(format!(".{}", crate::util::now_ms()));
    }
    std::fs::rename(&live.file, &previous).map_err(|e| format!("moving {} aside: {e}", live.file.display()))?;
    if let Err(e) = std::fs::rename(&shadow.file, &live.file) {
        // Put the live file back: the folder stays as it was.
        let _ = std::fs::rename(&previous, &live.file);
        return Err(format!("moving {} into place: {e}", shadow.file.display()));
    }
    Ok(live.file.clone())
}

/// Loads a copy of `dir` in which `shadow` has taken `live`'s place.
fn try_folder(
    dir: &std::path::Path,
    live: &std::path::Path,
    shadow: &std::path::Path,
) -> Result<(), Vec<ContractError>> {
    let io =
        |e: std::io::Error| vec![ContractError { file: dir.to_path_buf(), line: 0, column: 0, message: e.to_string() }];
    let tmp = std::env::temp_dir().join(format!("ebond-promote-{}-{}", std::process::id(), crate::util::now_ms()));
    std::fs::create_dir_all(&tmp).map_err(io)?;
    let loaded = copy_and_load(dir, live, shadow, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    loaded
}

fn copy_and_load(
    dir: &std::path::Path,
    live: &std::path::Path,
    shadow: &std::path::Path,
    tmp: &std::path::Path,
) -> Result<(), Vec<ContractError>> {
    let io =
        |e: std::io::Error| vec![ContractError { file: dir.to_path_buf(), line: 0, column: 0, message: e.to_string() }];
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_none_or(|x| x != "toml") || path == live || path == shadow {
            continue;
        }
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, tmp.join(name)).map_err(io)?;
        }
    }
    if let Some(name) = live.file_name() {
        std::fs::copy(shadow, tmp.join(name)).map_err(io)?;
    }
    super::load_dir(tmp).map(|_| ())
}

/// Takes `partner`'s shadow contract out on the next reload (its file is kept as
/// `<file>.dropped`, not loaded).
pub fn drop_shadow(registry: &Registry, partner: &str) -> Result<std::path::PathBuf, String> {
    let shadow = registry.shadow(partner).ok_or_else(|| format!("no shadow contract is loaded for `{partner}`"))?;
    let mut dropped = shadow.file.clone().into_os_string();
    dropped.push(".dropped");
    std::fs::rename(&shadow.file, &dropped).map_err(|e| format!("moving {} aside: {e}", shadow.file.display()))?;
    Ok(std::path::PathBuf::from(dropped))
}

/// Each partner of either registry, with what became of it.
pub fn changes(previous: &Registry, next: &Registry) -> Vec<PartnerChange> {
    let mut out = Vec::new();
    for c in next.partners() {
        let before = previous.get(c.id.as_str());
        out.push(PartnerChange {
            partner: c.id.to_string(),
            change: match before {
                None => Change::Added,
                Some(b) if b.file_sha256 == c.file_sha256 => Change::Unchanged,
                Some(_) => Change::Changed,
            },
            contract_version: Some(c.version.clone()),
            previous_version: before.map(|b| b.version.clone()),
            file_sha256: Some(c.file_sha256.clone()),
        });
    }
    for b in previous.partners().filter(|b| next.get(b.id.as_str()).is_none()) {
        out.push(PartnerChange {
            partner: b.id.to_string(),
            change: Change::Removed,
            contract_version: None,
            previous_version: Some(b.version.clone()),
            file_sha256: None,
        });
    }
    out.sort_by(|a, b| a.partner.cmp(&b.partner));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_examples(to: &Path) {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts");
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
            }
        }
    }

    #[test]
    fn a_broken_folder_keeps_the_registry_in_force_and_a_fixed_one_replaces_it() {
        let tmp = tempfile::tempdir().unwrap();
        copy_examples(tmp.path());
        let live = Live::new(tmp.path(), super::super::load_dir(tmp.path()).unwrap());
        let first = live.current();
        let again = live.reload().unwrap();
        assert!(again.unchanged());
        assert!(again.partners.iter().all(|p| p.change == Change::Unchanged));

        let file = tmp.path().join("servicenow.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{text}\nno_such_key = 1\n")).unwrap();
        let errors = live.reload().unwrap_err();
        assert!(errors.iter().any(|e| e.message.contains("no_such_key")), "{errors:?}");
        assert_eq!(live.current().sha256, first.sha256, "the old registry stays");

        let bumped = text.replacen(
            &format!("contract_version = \"{}\"", first.get("servicenow").unwrap().version),
            "contract_version = \"9.9.0\"",
            1,
        );
        assert_ne!(bumped, text, "the example names its version");
        std::fs::write(&file, bumped).unwrap();
        let done = live.reload().unwrap();
        assert!(!done.unchanged());
        let snow = done.partners.iter().find(|p| p.partner == "servicenow").unwrap();
        assert_eq!(snow.change, Change::Changed);
        assert_eq!(snow.contract_version.as_deref(), Some("9.9.0"));
        assert_eq!(live.current().get("servicenow").unwrap().version, "9.9.0");
        // A snapshot taken before keeps the old contract.
        assert_ne!(first.get("servicenow").unwrap().version, "9.9.0");

        std::fs::remove_file(tmp.path().join("enovia.toml")).unwrap();
        let removed = live.reload().unwrap();
        assert!(removed.partners.iter().any(|p| p.partner == "enovia" && p.change == Change::Removed));
        assert!(live.current().get("enovia").is_none());
    }
}
