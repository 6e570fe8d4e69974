//! `[access]` → what the partner may create, write, read, and which transitions it may make.

use super::*;

pub(super) fn compile_access(loc: &mut Locator, a: &raw::RawAccess, workflow: &Workflow) -> Access {
    let mut names = |list: &Vec<Spanned<String>>| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for n in list {
            if parse_target(n.get_ref()).is_some() {
                out.insert(n.get_ref().clone());
            } else {
                loc.at(n, unknown_canonical(n.get_ref()));
            }
        }
        out
    };
    let write = names(&a.write);
    let read = names(&a.read);
    if let Some(v) = a.write.iter().find(|n| n.get_ref() == fields::VERSION) {
        loc.at(v, "`version` is read-only: ebond sets it; a partner reads it (and may send it back in If-Match)");
    }
    let mut transitions = Vec::new();
    for t in &a.transitions {
        let Some((from, to)) = parse_arrow(t.get_ref()) else {
            loc.at(t, format!("transition `{}` must read `from -> to` (`*` for any state)", t.get_ref()));
            continue;
        };
        let mut ok = true;
        for s in [from, to] {
            if s != "*" && workflow.state(s).is_none() {
                loc.at(t, format!("transition `{}`: {}", t.get_ref(), unknown_state(s, &workflow.states)));
                ok = false;
            }
        }
        if ok && from != "*" && to != "*" && workflow.check_transition(from, to).is_err() {
            loc.at(t, format!("transition `{}` is not in workflow.toml, so it could never be performed", t.get_ref()));
            ok = false;
        }
        if ok {
            let wild = |s: &str| (s != "*").then(|| s.to_string());
            transitions.push((wild(from), wild(to)));
        }
    }
    if !transitions.is_empty() && !write.contains("state") {
        if let Some(t) = a.transitions.first() {
            loc.at(t, "transitions are listed but `state` is not in [access] write");
        }
    }
    Access { create: a.create, write, read, transitions }
}
