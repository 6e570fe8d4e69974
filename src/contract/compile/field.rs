//! One `[[fields]]` entry → a [`FieldSpec`]: pointer, canonical target, type, limits, value maps.

use super::*;

pub(super) fn compile_field(loc: &mut Locator, f: &RawField, workflow: &Workflow) -> Option<FieldSpec> {
    let errors_before = loc.errors.len();
    let pointer = match Pointer::parse(f.pointer.get_ref()) {
        Ok(p) => Some(p),
        Err(e) => {
            loc.at(&f.pointer, e);
            None
        }
    };
    let target = parse_target(f.canonical.get_ref());
    if target.is_none() {
        loc.at(&f.canonical, unknown_canonical(f.canonical.get_ref()));
    }
    let ty = match f.ty.get_ref().as_str() {
        "string" => Some(FieldType::String),
        "text" => Some(FieldType::Text),
        "integer" => Some(FieldType::Integer),
        "enum" => Some(FieldType::Enum),
        "datetime" => Some(FieldType::Datetime),
        "boolean" => Some(FieldType::Boolean),
        other => {
            loc.at(&f.ty, format!("unknown type `{other}`; use string, text, integer, enum, datetime or boolean"));
            None
        }
    };
    let (Some(pointer), Some(target), Some(ty)) = (pointer, target, ty) else {
        return None;
    };

    // Which partner types can feed which canonical field.
    let compatible = match (&target, ty) {
        (Target::Attribute(_), _) => true,
        (Target::PartnerTicketId, FieldType::String) => true,
        (Target::Version, FieldType::Integer | FieldType::String) => true,
        (Target::WorkNote | Target::Comment, FieldType::String | FieldType::Text) => true,
        (Target::Field(cf), t) => matches!(
            (cf.ty, t),
            (CanonicalType::String { .. }, FieldType::String | FieldType::Text | FieldType::Enum)
                | (CanonicalType::Integer { .. }, FieldType::Integer | FieldType::Enum)
                | (CanonicalType::State | CanonicalType::Enum(_), FieldType::Enum)
                | (CanonicalType::Datetime, FieldType::Datetime)
        ),
        _ => false,
    };
    if !compatible {
        loc.at(&f.ty, format!("type `{}` cannot carry canonical `{}`", ty.as_str(), target.name()));
    }

    let mut values = Vec::new();
    match (&f.values, ty) {
        (Some(map), FieldType::Enum) => {
            if map.get_ref().is_empty() {
                loc.at(map, "an enum field needs at least one value in `values`");
            }
            for (partner_value, canonical) in map.get_ref() {
                match toml_to_json(canonical) {
                    Some(cv) => match check_canonical(&target, &cv, workflow) {
                        Ok(()) => values.push((partner_value.clone(), cv)),
                        Err(why) => loc.at(map, format!("bad value map: `{partner_value}` → {canonical}: {why}")),
                    },
                    None => loc
                        .at(map, format!("bad value map: `{partner_value}` must map to a string, integer or boolean")),
                }
            }
        }
        (None, FieldType::Enum) => {
            loc.at(&f.ty, "an enum field needs a `values` table (partner value = canonical value)")
        }
        (Some(map), _) => loc.at(map, "`values` only applies to fields of type `enum`"),
        (None, _) => {}
    }

    // Reverse map: explicit outbound_values first, else the single partner value of each
    // canonical value; several partner values for one canonical value must be disambiguated.
    let mut outbound_values: Vec<(Value, String)> = Vec::new();
    if let Some(ov) = &f.outbound_values {
        for (canonical, partner) in ov.get_ref() {
            let partner = partner.as_str().map(str::to_string).unwrap_or_else(|| partner.to_string());
            if !values.iter().any(|(p, _)| *p == partner) {
                loc.at(ov, format!("outbound_values: `{partner}` is not one of this field's values"));
                continue;
            }
            let cv = values.iter().find(|(p, _)| *p == partner).map(|(_, c)| c.clone()).unwrap_or_default();
            let canonical_matches = match &cv {
                Value::String(s) => s == canonical,
                other => {
                    other.as_i64().is_some_and(|n| canonical.parse::<i64>() == Ok(n))
                        || other.as_bool().is_some_and(|b| canonical.parse::<bool>() == Ok(b))
                }
            };
            if !canonical_matches {
                loc.at(ov, format!("outbound_values: `{partner}` maps to {cv}, not `{canonical}`"));
                continue;
            }
            outbound_values.push((cv, partner));
        }
    }
    for (partner_value, cv) in &values {
        if outbound_values.iter().any(|(c, _)| c == cv) {
            continue;
        }
        let all: Vec<&str> = values.iter().filter(|(_, c)| c == cv).map(|(p, _)| p.as_str()).collect();
        if all.len() > 1 {
            if all[0] == partner_value {
                let span = f.values.as_ref().map(|v| v.span()).unwrap_or_else(|| f.ty.span());
                loc.error(
                    span,
                    format!(
                        "bad value map: {} all map to {cv}; say which one ebond sends with outbound_values = {{ {} = \"{}\" }}",
                        all.join(", "),
                        cv.as_str().map(str::to_string).unwrap_or_else(|| cv.to_string()),
                        all[0]
                    ),
                );
            }
        } else {
            outbound_values.push((cv.clone(), partner_value.clone()));
        }
    }

    let (mut min_length, mut max_length, mut min, mut max) = (None, None, None, None);
    let usize_of = |loc: &mut Locator, v: &Option<Spanned<i64>>, name: &str| -> Option<usize> {
        let s = v.as_ref()?;
        match usize::try_from(*s.get_ref()) {
            Ok(u) => Some(u),
            Err(_) => {
                loc.at(s, format!("{name} must not be negative"));
                None
            }
        }
    };
    if matches!(ty, FieldType::String | FieldType::Text) {
        min_length = usize_of(loc, &f.min_length, "min_length");
        max_length = usize_of(loc, &f.max_length, "max_length");
    } else if let Some(s) = f.max_length.as_ref().or(f.min_length.as_ref()) {
        loc.at(s, "min_length / max_length only apply to string and text fields");
    }
    if ty == FieldType::Integer {
        min = f.min.as_ref().map(|m| *m.get_ref());
        max = f.max.as_ref().map(|m| *m.get_ref());
    } else if let Some(s) = f.min.as_ref().or(f.max.as_ref()) {
        loc.at(s, "min / max only apply to integer fields");
    }
    // Narrow to the canonical field's own limits, so the documented limits are the enforced ones.
    if let Target::Field(cf) = &target {
        match cf.ty {
            CanonicalType::String { max_len } if matches!(ty, FieldType::String | FieldType::Text) => {
                max_length = Some(max_length.map_or(max_len, |m| m.min(max_len)));
            }
            CanonicalType::Integer { min: cmin, max: cmax } if ty == FieldType::Integer => {
                min = Some(min.map_or(cmin, |m| m.max(cmin)));
                max = Some(max.map_or(cmax, |m| m.min(cmax)));
            }
            _ => {}
        }
    }
    if let (Some(a), Some(b)) = (min_length, max_length) {
        if a > b {
            loc.at(&f.pointer, format!("min_length {a} is larger than max_length {b}"));
        }
    }
    let pattern = f.pattern.as_ref().and_then(|p| match regex::Regex::new(p.get_ref()) {
        Ok(r) => Some(r),
        Err(e) => {
            loc.at(p, format!("pattern is not a valid regular expression: {e}"));
            None
        }
    });
    if let Some(fmt) = &f.format {
        if ty != FieldType::Datetime {
            loc.at(fmt, "`format` only applies to datetime fields");
        } else if chrono::format::StrftimeItems::new(fmt.get_ref()).any(|i| matches!(i, chrono::format::Item::Error)) {
            loc.at(fmt, "`format` is not a valid chrono strftime format");
        }
    }
    if f.required_on_create && matches!(target, Target::WorkNote | Target::Comment) {
        loc.at(&f.canonical, "journal entries cannot be required_on_create");
    }
    let on_conflict = f.on_conflict.as_ref().and_then(|o| parse_on_conflict(loc, o));
    if on_conflict.is_some() && !matches!(target, Target::Field(_) | Target::Attribute(_)) {
        if let Some(o) = &f.on_conflict {
            loc.at(o, "on_conflict applies to ticket fields; ids and journal entries never conflict");
        }
    }
    let mut labels = Vec::new();
    if let Some(display) = &f.display {
        if ty != FieldType::Enum {
            loc.at(display, "`display` labels only apply to fields of type `enum`");
        }
        for (partner_value, label) in display.get_ref() {
            match label.as_str() {
                Some(l) if values.iter().any(|(p, _)| p == partner_value) => {
                    labels.push((partner_value.clone(), l.to_string()))
                }
                Some(_) => loc.at(display, format!("display: `{partner_value}` is not one of this field's values")),
                None => loc.at(display, format!("display: the label of `{partner_value}` must be a string")),
            }
        }
    }
    if loc.errors.len() > errors_before {
        return None;
    }
    Some(FieldSpec {
        labels,
        display: pointer.display(),
        pointer,
        target,
        ty,
        description: f.description.clone(),
        min_length,
        max_length,
        min,
        max,
        pattern,
        format: f.format.as_ref().map(|f| f.get_ref().clone()),
        required_on_create: f.required_on_create,
        values,
        outbound_values,
        on_conflict,
    })
}
