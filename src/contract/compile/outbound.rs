//! `[outbound]` → endpoints, auth, signing, retry schedule, rate limit, alert threshold and
//! subscriptions.

use super::*;

/// `"https://…"` or `"http://…"`, else an error at the value.
pub(super) fn check_url(loc: &mut Locator, u: &Spanned<String>) {
    let v = u.get_ref();
    if !(v.starts_with("https://") || v.starts_with("http://")) {
        loc.at(u, "URL must start with https:// or http://");
    }
}

pub(super) fn compile_outbound(loc: &mut Locator, o: &raw::RawOutbound, workflow: &Workflow) -> Outbound {
    let url = |loc: &mut Locator, u: &Option<Spanned<String>>| -> Option<String> {
        let u = u.as_ref()?;
        check_url(loc, u);
        Some(u.get_ref().clone())
    };
    let create_url = url(loc, &o.create_url);
    let update_url = url(loc, &o.update_url);
    let read_url = url(loc, &o.read_url);
    if let Some(u) = &o.read_url {
        if !u.get_ref().contains("{partner_ticket_id}") {
            loc.at(u, "read_url must contain `{partner_ticket_id}` where the partner's ticket id goes");
        }
    }
    if let Some(u) = &o.update_url {
        if !u.get_ref().contains("{partner_ticket_id}") {
            loc.at(u, "update_url must contain `{partner_ticket_id}` where the partner's ticket id goes");
        }
    }
    let method = |loc: &mut Locator, m: &Option<Spanned<String>>, default: &str| -> String {
        match m {
            Some(m) if ["POST", "PUT", "PATCH"].contains(&m.get_ref().as_str()) => m.get_ref().clone(),
            Some(m) => {
                loc.at(m, "method must be POST, PUT or PATCH");
                default.into()
            }
            None => default.into(),
        }
    };
    let create_method = method(loc, &o.create_method, "POST");
    let update_method = method(loc, &o.update_method, "PATCH");
    let pointer = |loc: &mut Locator, p: &Option<Spanned<String>>| {
        p.as_ref().and_then(|p| match Pointer::parse(p.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                loc.at(p, e);
                None
            }
        })
    };
    let id_pointer = pointer(loc, &o.id_pointer);
    let read_pointer = pointer(loc, &o.read_pointer);
    let auth = match &o.auth {
        None => OutboundAuth::None,
        Some(a) => {
            let need = |loc: &mut Locator, v: &Option<Spanned<String>>, key: &str| -> Option<Spanned<String>> {
                if v.is_none() {
                    loc.at(&a.ty, format!("auth type `{}` needs `{key}`", a.ty.get_ref()));
                }
                v.clone()
            };
            match a.ty.get_ref().as_str() {
                "none" => OutboundAuth::None,
                "oauth2_client_credentials" => {
                    let token_url = need(loc, &a.token_url, "token_url");
                    let client_id = need(loc, &a.client_id, "client_id");
                    let secret = need(loc, &a.client_secret, "client_secret")
                        .and_then(|s| check_secret_ref(loc, "client_secret", &s));
                    match (token_url, client_id, secret) {
                        (Some(t), Some(c), Some(s)) => OutboundAuth::OAuth2ClientCredentials {
                            token_url: t.into_inner(),
                            client_id: c.into_inner(),
                            client_secret: s,
                            scope: a.scope.clone(),
                        },
                        _ => OutboundAuth::None,
                    }
                }
                "basic" => {
                    let user = need(loc, &a.username, "username");
                    let pw = need(loc, &a.password, "password").and_then(|s| check_secret_ref(loc, "password", &s));
                    match (user, pw) {
                        (Some(u), Some(p)) => OutboundAuth::Basic { username: u.into_inner(), password: p },
                        _ => OutboundAuth::None,
                    }
                }
                "api_key" => {
                    let header = need(loc, &a.header, "header");
                    let key = need(loc, &a.key, "key").and_then(|s| check_secret_ref(loc, "key", &s));
                    match (header, key) {
                        (Some(h), Some(k)) => OutboundAuth::ApiKey { header: h.into_inner(), key: k },
                        _ => OutboundAuth::None,
                    }
                }
                other => {
                    loc.at(
                        &a.ty,
                        format!("unknown auth type `{other}`; use oauth2_client_credentials, basic, api_key or none"),
                    );
                    OutboundAuth::None
                }
            }
        }
    };
    let signing_secret = o.signing_secret.as_ref().and_then(|s| check_secret_ref(loc, "signing_secret", s));
    let mut headers = Vec::new();
    if let Some(h) = &o.headers {
        for (k, v) in h.get_ref() {
            let lower = k.to_ascii_lowercase();
            if ["authorization", "x-api-key", "cookie"].contains(&lower.as_str())
                || lower.contains("secret")
                || lower.contains("token")
            {
                loc.at(
                    h,
                    format!("header `{k}` would carry a secret in clear; use [outbound.auth] with a secret reference"),
                );
            }
            match v.as_str() {
                Some(s) => headers.push((k.clone(), s.to_string())),
                None => loc.at(h, format!("header `{k}` must be a string")),
            }
        }
    }
    let retry_schedule = match &o.retry_schedule {
        None => {
            vec![Duration::from_secs(60), Duration::from_secs(300), Duration::from_secs(900), Duration::from_secs(3600)]
        }
        Some(list) => list
            .iter()
            .filter_map(|s| {
                let d = parse_duration(s.get_ref());
                if d.is_none() {
                    loc.at(s, format!("`{}` is not a duration; write e.g. 500ms, 30s, 5m, 1h", s.get_ref()));
                }
                d
            })
            .collect(),
    };
    let rate_limit_per_minute = match &o.rate_limit_per_minute {
        Some(r) if (1..=1_000_000).contains(r.get_ref()) => *r.get_ref() as u32,
        Some(r) => {
            loc.at(r, "rate_limit_per_minute must be between 1 and 1000000");
            60
        }
        None => 60,
    };
    let alert_threshold = match &o.alert_threshold {
        Some(t) if (0.0..=1.0).contains(t.get_ref()) => *t.get_ref(),
        Some(t) => {
            loc.at(t, "alert_threshold is a failure rate between 0 and 1 (0.05 = 5 %)");
            0.05
        }
        None => 0.05,
    };
    let alert_window = match &o.alert_window {
        Some(w) => parse_duration(w.get_ref()).unwrap_or_else(|| {
            loc.at(w, "alert_window is not a duration; write e.g. 15m");
            Duration::from_secs(900)
        }),
        None => Duration::from_secs(900),
    };
    let mut subscriptions = Vec::new();
    for s in &o.subscriptions {
        let mut events = BTreeSet::new();
        for e in &s.events {
            if e.get_ref() == "*" {
                events.extend(crate::domain::events::Event::ALL);
            } else if let Some(ev) = crate::domain::events::Event::parse(e.get_ref()) {
                events.insert(ev);
            } else {
                let names: Vec<&str> = crate::domain::events::Event::ALL.iter().map(|e| e.as_str()).collect();
                loc.at(e, format!("unknown event `{}`; events are: {}, or `*`", e.get_ref(), names.join(", ")));
            }
        }
        let mut filter = Vec::new();
        if let Some(f) = &s.filter {
            for (field, accepted) in f.get_ref() {
                let Some(target) = parse_target(field).filter(|t| matches!(t, Target::Field(_) | Target::Attribute(_)))
                else {
                    loc.at(f, format!("filter: {}", unknown_canonical(field)));
                    continue;
                };
                let list: Vec<Value> = match accepted {
                    toml::Value::Array(a) => a.iter().filter_map(toml_to_json).collect(),
                    other => toml_to_json(other).into_iter().collect(),
                };
                for v in &list {
                    if let Err(why) = check_canonical(&target, v, workflow) {
                        loc.at(f, format!("filter on `{field}`: {why}"));
                    }
                }
                filter.push((field.clone(), list));
            }
        }
        subscriptions.push(Subscription { events, only_bonded: s.only_bonded, filter });
    }
    Outbound {
        create_url,
        update_url,
        create_method,
        update_method,
        read_url,
        read_pointer,
        id_pointer,
        auth,
        signing_secret,
        headers,
        retry_schedule,
        rate_limit_per_minute,
        alert_threshold,
        alert_window,
        subscriptions,
    }
}
