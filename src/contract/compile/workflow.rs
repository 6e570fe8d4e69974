//! `workflow.toml` → the canonical [`Workflow`]: states, categories, transitions, required
//! fields per state, the default priority matrix.

use super::*;

pub(in crate::contract) fn compile_workflow(path: &Path, text: &str) -> Result<Workflow, Vec<ContractError>> {
    let mut loc = Locator::new(path, text);
    let Some(raw): Option<RawWorkflow> = loc.parse() else {
        return Err(loc.errors);
    };
    let mut states = Vec::new();
    for (name, state) in &raw.states {
        let category = match state.category.as_ref().map(|c| c.get_ref().as_str()) {
            None | Some("open") => StateCategory::Open,
            Some("resolved") => StateCategory::Resolved,
            Some("closed") => StateCategory::Closed,
            Some(other) => {
                if let Some(c) = &state.category {
                    loc.at(c, format!("state `{name}`: unknown category `{other}`; use open, resolved or closed"));
                }
                StateCategory::Open
            }
        };
        let mut requires = Vec::new();
        for r in &state.requires {
            if fields::field(r.get_ref()).is_none() && !r.get_ref().starts_with(fields::ATTRIBUTE_PREFIX) {
                loc.at(r, unknown_canonical(r.get_ref()));
            } else {
                requires.push(r.get_ref().clone());
            }
        }
        states.push(StateDef {
            label: state.label.clone().unwrap_or_else(|| name.clone()),
            name: name.clone(),
            category,
            requires,
        });
    }
    if states.is_empty() {
        loc.at(&raw.initial, "the workflow declares no [states.<name>] tables");
    }
    let known = |s: &str| states.iter().any(|d| d.name == s);
    let mut initial = Vec::new();
    for s in raw.initial.get_ref() {
        if known(s.get_ref()) {
            initial.push(s.get_ref().clone());
        } else {
            loc.at(s, unknown_state(s.get_ref(), &states));
        }
    }
    if raw.initial.get_ref().is_empty() {
        loc.at(&raw.initial, "`initial` must name at least one state");
    }
    let mut transitions = BTreeSet::new();
    for t in &raw.transitions {
        match parse_arrow(t.get_ref()) {
            Some((from, to)) if from != "*" && to != "*" => {
                let mut ok = true;
                for s in [from, to] {
                    if !known(s) {
                        loc.at(t, format!("transition `{}`: {}", t.get_ref(), unknown_state(s, &states)));
                        ok = false;
                    }
                }
                if ok {
                    transitions.insert((from.to_string(), to.to_string()));
                }
            }
            _ => loc.at(t, format!("transition `{}` must read `from -> to` with two state names", t.get_ref())),
        }
    }
    let priority_matrix =
        raw.priority.as_ref().and_then(|p| compile_priority(&mut loc, p)).unwrap_or(DEFAULT_PRIORITY_MATRIX);
    if loc.errors.is_empty() {
        Ok(Workflow { initial, states, transitions, priority_matrix })
    } else {
        Err(loc.errors)
    }
}
