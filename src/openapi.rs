//! OpenAPI documents: the generic one from the handlers' utoipa annotations, and one per
//! partner whose ticket schemas are generated from its contract — so the names, enums, limits
//! and required fields a partner reads are the ones the gateway enforces.

use crate::api::admin::{self, conflicts, delivery, sync};
use crate::api::{events, health, oauth, problem, tickets};
use crate::contract::{Contract, FieldSpec, FieldType, UnknownFields, Workflow};
use serde_json::{json, Map, Value};
use std::path::Path;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ebond eBond gateway",
        description = "Validated inbound API for partners' ticketing systems. Every partner has its own \
                       contract; its field names, values and limits are in `/api/ebond/v1/partners/{id}/openapi.json`. \
                       Errors are RFC 9457 problem documents.",
        version = "1.0.0"
    ),
    paths(
        oauth::token,
        tickets::create::create,
        tickets::update::update,
        tickets::work_note::add_work_note,
        tickets::read::read,
        tickets::list::list,
        events::receive,
        admin::auth_events,
        admin::lockout_clear,
        admin::transactions,
        admin::partners,
        admin::contracts::show,
        crate::api::shadow::report,
        crate::api::shadow::promote,
        crate::api::shadow::drop,
        admin::contracts::reload,
        delivery::outbox_list,
        delivery::outbox_show,
        delivery::replay_one,
        delivery::discard_one,
        delivery::replay_partner,
        delivery::pause,
        delivery::resume,
        delivery::ticket_sync,
        conflicts::list,
        conflicts::show,
        conflicts::resolve,
        conflicts::resolve_many,
        sync::start_pull,
        sync::pull_runs,
        sync::pull_run,
        sync::pull_status,
        sync::start_reconcile,
        sync::reconcile_runs,
        sync::reconcile_report,
        health::metrics,
        health::healthz,
        health::readyz,
    ),
    components(schemas(
        problem::Problem,
        crate::contract::inbound::FieldError,
        tickets::TicketCreate,
        tickets::TicketUpdate,
        tickets::TicketFields,
    )),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "auth", description = "OAuth 2.0 client credentials"),
        (name = "tickets", description = "Partners' tickets"),
        (name = "admin", description = "Operators"),
        (name = "ops", description = "Health"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// Adds the refusals every operation of a kind can answer with, so clients and fuzzers see
/// each status the gateway may send: 401/403 where a token is needed, 429 on partner
/// endpoints, 400/413/415 where a body is read, 503 when the database is saturated.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{path::HttpMethod, ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let partner = path.contains("/tickets") && !path.contains("/admin/") || path.ends_with("/events");
            for method in [HttpMethod::Get, HttpMethod::Post, HttpMethod::Patch] {
                let op = match method {
                    HttpMethod::Get => item.get.as_mut(),
                    HttpMethod::Post => item.post.as_mut(),
                    HttpMethod::Patch => item.patch.as_mut(),
                    _ => None,
                };
                let Some(op) = op else { continue };
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let mut add = |code: &str, description: &str| {
                    op.responses.responses.entry(code.to_string()).or_insert_with(|| problem(description).into());
                };
                if !path.starts_with("/api/") {
                    continue;
                }
                if secured {
                    add("401", "No, invalid, expired or revoked token");
                    add("403", "The token may not do this (scope, partner, source network, client certificate)");
                }
                if partner {
                    add("429", "Rate limit exceeded; see Retry-After");
                }
                if op.request_body.is_some() {
                    add("400", "Malformed body");
                    add("413", "Body too large");
                    add("415", "Wrong content type");
                }
                if secured || partner {
                    add("400", "Bad request");
                    add("503", "Database saturated; retry after Retry-After");
                }
            }
        }
    }
}

/// The generic document as JSON.
pub fn generic_document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null)
}

/// The generic document with the ticket schemas replaced by `contract`'s.
pub fn partner_document(generic: &Value, contract: &Contract, workflow: &Workflow) -> Value {
    let mut doc = generic.clone();
    leave_out_operator_paths(&mut doc);
    doc["info"]["title"] = json!(format!("ebond API for {} ({})", contract.name, contract.id));
    doc["info"]["version"] = json!(contract.version);
    doc["info"]["description"] = json!(describe(contract, workflow));
    let strict = contract.unknown_fields == UnknownFields::Reject;
    let writable: Vec<&FieldSpec> = contract.fields.iter().filter(|f| contract.may_write(&f.target.name())).collect();
    let readable: Vec<&FieldSpec> = contract
        .fields
        .iter()
        .filter(|f| {
            contract.may_read(&f.target.name())
                && !matches!(f.target, crate::contract::Target::WorkNote | crate::contract::Target::Comment)
        })
        .collect();
    let schemas = &mut doc["components"]["schemas"];
    let mut create = object_schema(&writable, true, strict, false);
    create["description"] = json!(if contract.access.create {
        format!("A new ticket from {}.", contract.name)
    } else {
        format!("{} may not create tickets.", contract.name)
    });
    schemas["TicketCreate"] = create;
    let mut update = object_schema(&writable, false, strict, true);
    update["description"] = json!("Send only the fields that change; null clears a field.");
    schemas["TicketUpdate"] = update;
    let mut read = object_schema(&readable, false, false, true);
    read["description"] = json!(format!("The fields {} may read.", contract.name));
    schemas["TicketFields"] = read;
    doc
}

/// A partner's document shows what a partner may call: the operator paths (`/admin`), their
/// tag and the schemas only they use are left out.
fn leave_out_operator_paths(doc: &mut Value) {
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.retain(|p, _| !p.starts_with("/api/ebond/v1/admin"));
    }
    if let Some(tags) = doc["tags"].as_array_mut() {
        tags.retain(|t| t["name"] != "admin");
    }
    // The schemas still reachable from the paths, following references inside schemas.
    let mut reachable = std::collections::BTreeSet::new();
    let mut todo = vec![doc["paths"].clone()];
    while let Some(v) = todo.pop() {
        let mut refs = Vec::new();
        collect_refs(&v, &mut refs);
        for name in refs {
            if reachable.insert(name.clone()) {
                todo.push(doc["components"]["schemas"][&name].clone());
            }
        }
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas.retain(|name, _| reachable.contains(name));
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                if let Some(name) = r.strip_prefix("#/components/schemas/") {
                    out.push(name.to_string());
                }
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn describe(contract: &Contract, workflow: &Workflow) -> String {
    let transitions: Vec<String> = workflow
        .transitions
        .iter()
        .filter(|(f, t)| contract.may_transition(f, t))
        .map(|(f, t)| format!("{} → {}", contract.state_text(f), contract.state_text(t)))
        .collect();
    format!(
        "{}\n\nContract version {}. Allowed state transitions: {}.",
        contract.description.clone().unwrap_or_else(|| contract.name.clone()),
        contract.version,
        if transitions.is_empty() { "none".to_string() } else { transitions.join(", ") }
    )
}

/// A (possibly nested) object schema for `fields`, nesting by JSON Pointer.
fn object_schema(fields: &[&FieldSpec], with_required: bool, strict: bool, nullable: bool) -> Value {
    let mut root = json!({"type": "object", "properties": {}});
    if strict {
        root["additionalProperties"] = json!(false);
    }
    for f in fields {
        let tokens = f.pointer.tokens();
        let mut node = &mut root;
        for (i, token) in tokens.iter().enumerate() {
            let last = i + 1 == tokens.len();
            if !node["properties"].is_object() {
                node["properties"] = json!({});
            }
            if with_required && f.required_on_create {
                let req = node.as_object_mut().map(|o| o.entry("required").or_insert_with(|| json!([])));
                if let Some(Value::Array(list)) = req {
                    if !list.contains(&json!(token)) {
                        list.push(json!(token));
                    }
                }
            }
            let props = &mut node["properties"];
            if last {
                props[token.as_str()] = field_schema(f, nullable);
                break;
            }
            if !props[token.as_str()].is_object() {
                let mut child = json!({"type": "object", "properties": {}});
                if strict {
                    child["additionalProperties"] = json!(false);
                }
                props[token.as_str()] = child;
            }
            node = &mut props[token.as_str()];
        }
    }
    root
}

fn field_schema(f: &FieldSpec, nullable: bool) -> Value {
    let mut s = Map::new();
    let base = match f.ty {
        FieldType::String | FieldType::Text | FieldType::Enum | FieldType::Datetime => "string",
        FieldType::Integer => "integer",
        FieldType::Boolean => "boolean",
    };
    s.insert("type".into(), if nullable { json!([base, "null"]) } else { json!(base) });
    if let Some(n) = f.min_length {
        s.insert("minLength".into(), json!(n));
    }
    if let Some(n) = f.max_length {
        s.insert("maxLength".into(), json!(n));
    }
    if let Some(n) = f.min {
        s.insert("minimum".into(), json!(n));
    }
    if let Some(n) = f.max {
        s.insert("maximum".into(), json!(n));
    }
    if let Some(p) = &f.pattern {
        s.insert("pattern".into(), json!(p.as_str()));
    }
    if f.ty == FieldType::Enum {
        let mut values: Vec<Value> = f.values.iter().map(|(p, _)| json!(p)).collect();
        if nullable {
            values.push(Value::Null);
        }
        s.insert("enum".into(), Value::Array(values));
    }
    let mut desc = format!("Maps to canonical `{}`.", f.target.name());
    if f.ty == FieldType::Datetime {
        match &f.format {
            None => {
                s.insert("format".into(), json!("date-time"));
            }
            Some(fmt) => desc.push_str(&format!(" Format `{fmt}`, UTC.")),
        }
    }
    if let Some(d) = &f.description {
        desc = format!("{d} {desc}");
    }
    s.insert("description".into(), json!(desc));
    Value::Object(s)
}

/// The documents checked in under `openapi/`: (relative path, pretty JSON).
pub fn checked_in_documents(registry: &crate::contract::Registry) -> Vec<(String, String)> {
    let generic = generic_document();
    let mut out = vec![("ebond.json".to_string(), pretty(&generic))];
    for c in registry.partners() {
        out.push((format!("partners/{}.json", c.id), pretty(&partner_document(&generic, c, &registry.workflow))));
    }
    out
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Writes the documents under `dir`; returns the paths written.
pub fn write_documents(dir: &Path, registry: &crate::contract::Registry) -> std::io::Result<Vec<String>> {
    let mut written = Vec::new();
    for (rel, text) in checked_in_documents(registry) {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// Paths under `dir` whose content differs from what the code and contracts generate.
pub fn stale_documents(dir: &Path, registry: &crate::contract::Registry) -> Vec<String> {
    checked_in_documents(registry)
        .into_iter()
        .filter(|(rel, text)| std::fs::read_to_string(dir.join(rel)).ok().as_deref() != Some(text.as_str()))
        .map(|(rel, _)| dir.join(rel).display().to_string())
        .collect()
}
