//! One `[[rules]]` entry → a derived-value rule (first match wins per target).

use super::*;

pub(super) fn compile_rule(
    loc: &mut Locator,
    r: &raw::RawRule,
    fields: &[FieldSpec],
    access: &Access,
    workflow: &Workflow,
) -> Option<Rule> {
    let Some(target) = parse_target(r.target.get_ref()) else {
        loc.at(&r.target, unknown_canonical(r.target.get_ref()));
        return None;
    };
    if !access.write.contains(&target.name()) {
        loc.at(&r.target, format!("rule target `{}` must be in [access] write", target.name()));
    }
    let value = match toml_to_json(r.value.get_ref()) {
        Some(v) => match check_canonical(&target, &v, workflow) {
            Ok(()) => v,
            Err(why) => {
                loc.at(&r.value, format!("rule value: {why}"));
                return None;
            }
        },
        None => {
            loc.at(&r.value, "rule value must be a string, integer or boolean");
            return None;
        }
    };
    let mut when = Vec::new();
    if let Some(w) = &r.when {
        for (ptr, accepted) in w.get_ref() {
            let pointer = match Pointer::parse(ptr) {
                Ok(p) => p,
                Err(e) => {
                    loc.at(w, e);
                    continue;
                }
            };
            if !fields.iter().any(|f| f.pointer == pointer) {
                loc.at(w, format!("rule condition on `{ptr}`, which no [[fields]] entry declares"));
            }
            let list = match accepted {
                toml::Value::Array(a) => a.iter().filter_map(|v| toml_to_json(v).map(|j| plain(&j))).collect(),
                other => toml_to_json(other).map(|j| vec![plain(&j)]).unwrap_or_default(),
            };
            when.push((pointer, list));
        }
    }
    Some(Rule { target, value, when })
}
