//! One partner file → a [`Contract`]: identity, inbound auth and transport controls, and the
//! assembly of its fields, rules, access and outbound sections.

use super::*;

pub(super) fn compile_contract(
    path: &Path,
    text: &str,
    workflow: &Workflow,
) -> Result<(Contract, Range<usize>), Vec<ContractError>> {
    let mut loc = Locator::new(path, text);
    let Some(raw): Option<RawContract> = loc.parse() else {
        return Err(loc.errors);
    };
    let parsed = crate::domain::ids::PartnerId::parse(raw.partner.id.get_ref());
    if let Err(why) = &parsed {
        loc.at(&raw.partner.id, why.as_str());
    }
    let default_kind = match &raw.partner.default_kind {
        Some(k) if fields::KINDS.contains(&k.get_ref().as_str()) => k.get_ref().clone(),
        Some(k) => {
            loc.at(k, format!("unknown ticket kind `{}`; use one of: {}", k.get_ref(), fields::KINDS.join(", ")));
            String::new()
        }
        None => "incident".to_string(),
    };
    let token_ttl_secs = raw.auth.token_lifetime_secs.as_ref().and_then(|t| {
        if (60..=86_400).contains(t.get_ref()) {
            Some(*t.get_ref())
        } else {
            loc.at(t, "token_lifetime_secs must be between 60 and 86400");
            None
        }
    });
    let mut auth_methods = Vec::new();
    for m in &raw.auth.methods {
        match m.get_ref().as_str() {
            "client_credentials" => auth_methods.push(m.get_ref().clone()),
            other => loc.at(m, format!("unknown auth method `{other}`; supported: client_credentials")),
        }
    }
    if auth_methods.is_empty() {
        auth_methods.push("client_credentials".into());
    }
    let mut source_networks = Vec::new();
    for n in &raw.auth.source_networks {
        let text = n.get_ref();
        let parsed = text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => source_networks.push(net),
            Err(_) => {
                loc.at(n, format!("`{text}` is not a network; write a CIDR such as 203.0.113.0/24 or an address"))
            }
        }
    }
    let mut client_cert_sha256 = Vec::new();
    for f in &raw.auth.client_cert_sha256 {
        let hex: String = f.get_ref().chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            client_cert_sha256.push(hex);
        } else {
            loc.at(f, "client_cert_sha256 entries are SHA-256 fingerprints: 64 hex digits, colons allowed");
        }
    }
    if raw.auth.require_client_cert && client_cert_sha256.is_empty() {
        loc.at(
            &raw.partner.id,
            "require_client_cert = true needs at least one client_cert_sha256 fingerprint in [auth]",
        );
    }
    let inbound_rate_per_minute = match &raw.auth.rate_limit_per_minute {
        Some(r) if (1..=1_000_000).contains(r.get_ref()) => *r.get_ref() as u32,
        Some(r) => {
            loc.at(r, "rate_limit_per_minute must be between 1 and 1000000");
            600
        }
        None => 600,
    };
    let webhook_secret = raw.auth.webhook_secret.as_ref().and_then(|s| check_secret_ref(&mut loc, "webhook_secret", s));
    let unknown_fields = match raw.inbound.unknown_fields.as_ref().map(|u| u.get_ref().as_str()) {
        None | Some("reject") => UnknownFields::Reject,
        Some("ignore") => UnknownFields::Ignore,
        Some(other) => {
            if let Some(u) = &raw.inbound.unknown_fields {
                loc.at(u, format!("unknown_fields must be `reject` or `ignore`, not `{other}`"));
            }
            UnknownFields::Reject
        }
    };

    let on_conflict =
        raw.inbound.on_conflict.as_ref().and_then(|o| parse_on_conflict(&mut loc, o)).unwrap_or(OnConflict::Queue);

    let fields: Vec<FieldSpec> = raw.fields.iter().filter_map(|f| compile_field(&mut loc, f, workflow)).collect();
    let mut pointers: BTreeMap<&str, ()> = BTreeMap::new();
    for (f, rf) in fields.iter().zip(raw.fields.iter()) {
        if pointers.insert(f.pointer.as_str(), ()).is_some() {
            loc.at(&rf.pointer, format!("pointer `{}` is declared twice", f.pointer.as_str()));
        }
    }

    let access = compile_access(&mut loc, &raw.access, workflow);
    for (f, rf) in fields.iter().zip(raw.fields.iter()) {
        let t = f.target.name();
        if !access.write.contains(&t) && !access.read.contains(&t) {
            loc.at(&rf.canonical, format!("field `{}` maps to `{t}`, which this partner may neither write nor read; add it to [access] or drop the field", f.display));
        }
    }
    for w in raw.access.write.iter().chain(raw.access.read.iter()) {
        let t = w.get_ref();
        // Compared with the raw fields, so a field refused above does not cascade into this.
        let mapped =
            raw.fields.iter().any(|f| f.canonical.get_ref() == t) || raw.rules.iter().any(|r| r.target.get_ref() == t);
        if parse_target(t).is_some() && !mapped {
            loc.at(w, format!("`{t}` is listed in [access] but no [[fields]] entry or rule maps it"));
        }
    }

    let mut rules = Vec::new();
    for r in &raw.rules {
        if let Some(rule) = compile_rule(&mut loc, r, &fields, &access, workflow) {
            rules.push(rule);
        }
    }
    let priority_matrix = raw.priority.as_ref().and_then(|p| compile_priority(&mut loc, p));
    let outbound = raw.outbound.as_ref().map(|o| compile_outbound(&mut loc, o, workflow));
    let pull = raw.pull.as_ref().map(|p| compile_pull(&mut loc, p));
    if let Some(p) = &raw.pull {
        if !fields.iter().any(|f| f.target == Target::PartnerTicketId) {
            loc.at(
                &p.list_url,
                "[pull] needs a field mapped to `partner_ticket_id`: every pulled record names its ticket",
            );
        }
    }
    let table_api = raw.table_api.as_ref().filter(|t| *t.enabled.get_ref()).map(|_| {
        for (f, rf) in fields.iter().zip(raw.fields.iter()) {
            let name = f.pointer.tokens().first().map(String::as_str).unwrap_or_default();
            if f.pointer.tokens().len() != 1 {
                loc.at(&rf.pointer, format!("with [table_api] enabled every field is a top-level member (a flat ServiceNow field name such as `/short_description`), not `{}`", f.pointer.as_str()));
            } else if crate::facade::SYSTEM_FIELDS.contains(&name) {
                loc.at(&rf.pointer, format!("`{name}` is a system field of the Table-API facade (ebond sets it); map this field under another name"));
            }
        }
        TableApi {}
    });
    // A facade record is created as a ServiceNow record is: the number is ebond's, and the
    // partner's own id (if it has one) may come later.
    if access.create
        && table_api.is_none()
        && !fields.iter().any(|f| f.target == Target::PartnerTicketId && f.required_on_create)
    {
        loc.at(
            &raw.partner.id,
            "a partner that may create tickets needs a field mapped to `partner_ticket_id` with required_on_create = true",
        );
    }

    let deprecated = date(&mut loc, &raw.partner.deprecated, "deprecated");
    let sunset = date(&mut loc, &raw.partner.sunset, "sunset");
    let id = match parsed {
        Ok(id) if loc.errors.is_empty() => id,
        _ => return Err(loc.errors),
    };
    let contract = Contract {
        id,
        name: raw.partner.name,
        major: major_of(&raw.partner.contract_version),
        version: raw.partner.contract_version,
        description: raw.partner.description,
        file: path.to_path_buf(),
        default_kind,
        token_ttl_secs,
        auth_methods,
        source_networks,
        client_cert_sha256,
        require_client_cert: raw.auth.require_client_cert,
        inbound_rate_per_minute,
        webhook_secret,
        unknown_fields,
        on_conflict,
        fields,
        rules,
        priority_matrix,
        access,
        outbound,
        pull,
        table_api,
        file_sha256: String::new(),
        deprecated,
        sunset,
        marked_default: raw.partner.default.as_ref().is_some_and(|d| *d.get_ref()),
    };
    Ok((contract, raw.partner.id.span()))
}

/// The major number of a contract version (`2` of `2.1.0`; 0 when it does not start with one).
pub(super) fn major_of(version: &str) -> u64 {
    super::super::parse_major(version).unwrap_or(0)
}

/// A `YYYY-MM-DD` date as Unix seconds at midnight UTC.
fn date(loc: &mut Locator, v: &Option<Spanned<String>>, key: &str) -> Option<i64> {
    let v = v.as_ref()?;
    match chrono::NaiveDate::parse_from_str(v.get_ref(), "%Y-%m-%d") {
        Ok(d) => d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()),
        Err(_) => {
            loc.at(v, format!("{key} must be a date as YYYY-MM-DD, e.g. 2027-06-30"));
            None
        }
    }
}
