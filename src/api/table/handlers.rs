//! The facade's operations, apart from HTTP so that `/api/now/v1/batch` runs them too: list,
//! read, create, update (PATCH and PUT, both a merge) and delete (a cancel) of one table's
//! records. Writes go through the partner's contract and the one write path of `/api/ebond/v1`.

use super::auth::Caller;
use super::error::TableError;
use crate::api::AppState;
use crate::contract::inbound::{Mapped, Op};
use crate::domain::ids::TicketReference;
use crate::facade::plan::{self, Dialect};
use crate::facade::query::{Condition, EncodedQuery, Op as QOp};
use crate::facade::record::{self, Display, Facts};
use crate::facade::{is_sys_id, Table};
use crate::store::table_api::FacadeRow;
use crate::sync::write::WriteOp;
use crate::sync::AuditInfo;
use actix_web::http::StatusCode;
use serde_json::{Map, Value};

/// ServiceNow's default and largest page.
pub const MAX_LIMIT: i64 = 10_000;

/// An answer, before it is an HTTP response or a batch entry.
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// The request's audit row was written in its write transaction.
    pub audited: bool,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Reply {
        Reply { status, headers: Vec::new(), body: Some(body), audited: false }
    }
}

/// What one request says, however it arrived (HTTP or a batch entry).
pub struct Request<'a> {
    pub table: &'a str,
    pub sys_id: Option<&'a str>,
    /// The raw query string.
    pub query: &'a str,
    /// `https://host` as the caller reached the gateway (for `Link` and `Location`).
    pub origin: &'a str,
    /// The path as requested (for `Link`).
    pub path: &'a str,
    pub audit: AuditInfo,
}

/// The query parameters (the first of repeated ones wins, as on ServiceNow).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: &str) -> Result<Params, TableError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| TableError::bad_request("bad-query", "Invalid query string", e.to_string()))?;
        if let Some((k, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(TableError::bad_request(
                "bad-query",
                "Invalid query string",
                format!("parameter `{}` contains a NUL character", k.replace('\0', "\\u0000")),
            ));
        }
        Ok(Params(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn display(&self) -> Result<Display, TableError> {
        Display::parse(self.get("sysparm_display_value"))
            .map_err(|d| TableError::bad_request("bad-query", "Invalid sysparm_display_value", d))
    }

    fn fields(&self) -> Option<Vec<String>> {
        self.get("sysparm_fields").map(|f| f.split(',').map(|s| s.trim().to_string()).collect())
    }

    fn number(&self, name: &str, default: i64) -> Result<i64, TableError> {
        match self.get(name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v.trim().parse::<i64>().map_err(|_| {
                TableError::bad_request(
                    "bad-query",
                    format!("Invalid {name}"),
                    format!("{name} must be a whole number, got `{v}`"),
                )
            }),
        }
    }
}

fn table(name: &str) -> Result<Table, TableError> {
    Table::parse(name).ok_or_else(|| TableError::invalid_table(name))
}

fn dialect(state: &AppState) -> Dialect {
    match state.db {
        crate::store::Db::Sqlite(..) => Dialect::Sqlite,
        crate::store::Db::Postgres(..) => Dialect::Postgres,
    }
}

/// The query naming one record.
fn by(field: &str, value: &str) -> EncodedQuery {
    EncodedQuery {
        groups: vec![vec![vec![Condition { field: field.into(), op: QOp::Eq, value: value.into() }]]],
        order: Vec::new(),
    }
}

fn render(caller: &Caller, row: FacadeRow, display: Display, fields: Option<&[String]>) -> Result<Value, TableError> {
    let readable = plan::readable_fields(&caller.contract);
    render_row(caller, &readable, row, display, fields)
}

fn render_row(
    caller: &Caller,
    readable: &[&crate::contract::FieldSpec],
    row: FacadeRow,
    display: Display,
    fields: Option<&[String]>,
) -> Result<Value, TableError> {
    let ticket = row.ticket.into_ticket()?;
    let facts = Facts { ticket: &ticket, sys_id: &row.sys_id, partner_ticket_id: row.xref_pid.as_deref() };
    Ok(Value::Object(record::render_fields(&caller.contract, readable, &facts, display, fields)))
}

/// One record of `table` shared with the caller, by `field` (sys_id or number).
async fn find(
    state: &AppState,
    caller: &Caller,
    table: Table,
    field: &str,
    value: &str,
) -> Result<FacadeRow, TableError> {
    let sql = plan::compile(&caller.contract, table, &by(field, value), dialect(state))
        .map_err(|e| TableError::bad_request("bad-query", "Invalid query", e.to_string()))?;
    let rows = state.db.read(move |c| c.facade_page(&sql, 1, 0).map_err(crate::store::StoreError::from)).await?;
    rows.into_iter().next().ok_or_else(TableError::not_found)
}

fn sys_id(req: &Request) -> Result<String, TableError> {
    let id = req.sys_id.unwrap_or_default();
    // No record has such an id: ServiceNow's 404 (PySNC's `get()` reads it as "not found"),
    // saying why, without asking the database.
    if !is_sys_id(id) {
        let mut e = TableError::not_found();
        e.detail = Some(format!("`{}` is not a sys_id: a sys_id is 32 hexadecimal digits", id.escape_debug()));
        return Err(e);
    }
    Ok(id.to_ascii_lowercase())
}

/// `GET /table/{t}`: a page of the records the encoded query selects.
pub async fn list(state: &AppState, caller: &Caller, req: &Request<'_>) -> Result<Reply, TableError> {
    let table = table(req.table)?;
    let params = Params::parse(req.query)?;
    let limit = params.number("sysparm_limit", MAX_LIMIT)?;
    let offset = params.number("sysparm_offset", 0)?;
    if offset < 0 {
        return Err(TableError::bad_request(
            "bad-query",
            "Invalid sysparm_offset",
            "sysparm_offset must not be negative",
        ));
    }
    if limit < 1 {
        return Err(TableError::bad_request("bad-query", "Invalid sysparm_limit", "sysparm_limit must be at least 1"));
    }
    let limit = limit.min(MAX_LIMIT);
    let display = params.display()?;
    let names = plan::queryable_names(&caller.contract);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let encoded = params.get("sysparm_query").unwrap_or_default();
    let parsed = crate::facade::query::parse(encoded, &names)
        .map_err(|e| TableError::bad_request("bad-query", "Invalid query", format!("sysparm_query: {e}")))?;
    let sql = plan::compile(&caller.contract, table, &parsed, dialect(state))
        .map_err(|e| TableError::bad_request("bad-query", "Invalid query", format!("sysparm_query: {e}")))?;
    let count = !params.flag("sysparm_no_count");
    let (rows, total) = state
        .db
        .read(move |c| {
            let rows = c.facade_page(&sql, limit, offset).map_err(crate::store::StoreError::from)?;
            let total = match count {
                true => Some(c.facade_count(&sql).map_err(crate::store::StoreError::from)?),
                false => None,
            };
            Ok::<_, crate::store::StoreError>((rows, total))
        })
        .await?;
    let seen: Vec<_> =
        rows.iter().filter(|r| r.xref_seen < r.ticket.version).map(|r| (r.xref_id, r.ticket.version)).collect();
    crate::api::tickets::record_seen(state, seen).await;
    let fields = params.fields();
    let readable = plan::readable_fields(&caller.contract);
    let mut result = Vec::with_capacity(rows.len());
    for row in rows {
        result.push(render_row(caller, &readable, row, display, fields.as_deref())?);
    }
    let mut reply = Reply::json(StatusCode::OK, serde_json::json!({ "result": result }));
    if let Some(total) = total {
        reply.headers.push(("X-Total-Count".into(), total.to_string()));
        if !params.flag("sysparm_suppress_pagination_header") {
            reply.headers.push(("Link".into(), links(req, &params, offset, limit, total)));
        }
    }
    Ok(reply)
}

/// `Link` with first, prev, next and last: the request's own parameters with new offsets.
fn links(req: &Request, params: &Params, offset: i64, limit: i64, total: i64) -> String {
    let url = |at: i64| {
        let mut pairs: Vec<(&str, String)> = params
            .0
            .iter()
            .filter(|(k, _)| k != "sysparm_offset" && k != "sysparm_limit")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        pairs.push(("sysparm_limit", limit.to_string()));
        pairs.push(("sysparm_offset", at.to_string()));
        format!("<{}{}?{}>", req.origin, req.path, serde_urlencoded::to_string(&pairs).unwrap_or_default())
    };
    let last = if total == 0 { 0 } else { ((total - 1) / limit) * limit };
    let mut out = vec![format!("{};rel=\"first\"", url(0))];
    if offset > 0 {
        out.push(format!("{};rel=\"prev\"", url(offset.saturating_sub(limit).max(0))));
    }
    if offset.saturating_add(limit) < total {
        out.push(format!("{};rel=\"next\"", url(offset.saturating_add(limit))));
    }
    out.push(format!("{};rel=\"last\"", url(last)));
    out.join(",")
}

/// `GET /table/{t}/{sys_id}`.
pub async fn read(state: &AppState, caller: &Caller, req: &Request<'_>) -> Result<Reply, TableError> {
    let table = table(req.table)?;
    let id = sys_id(req)?;
    let params = Params::parse(req.query)?;
    let display = params.display()?;
    let row = find(state, caller, table, "sys_id", &id).await?;
    crate::api::context::record_ticket(&row.ticket.number);
    if row.xref_seen < row.ticket.version {
        crate::api::tickets::record_seen(state, vec![(row.xref_id, row.ticket.version)]).await;
    }
    let record = render(caller, row, display, params.fields().as_deref())?;
    Ok(Reply::json(StatusCode::OK, serde_json::json!({ "result": record })))
}

fn mapped(caller: &Caller, body: &Value, op: Op) -> Result<Mapped, TableError> {
    let payload = record::payload(&caller.contract, body)
        .map_err(|d| TableError::bad_request("bad-body", "Invalid request body", d))?;
    caller.contract.map_inbound(&payload, op).map_err(|e| TableError::from(crate::api::problem::ApiError::from(e)))
}

fn writing(caller: &Caller) -> Result<(), TableError> {
    match caller.may_write() {
        true => Ok(()),
        false => Err(TableError::from(crate::api::problem::ApiError::Auth(crate::auth::AuthError::ReadOnly))),
    }
}

/// Commits a write, then answers the record as it is now.
async fn write(
    state: &AppState,
    caller: &Caller,
    req: &Request<'_>,
    table: Table,
    op: WriteOp,
    mapped: Mapped,
) -> Result<(crate::sync::write::WriteOutcome, FacadeRow), TableError> {
    let outcome =
        crate::api::tickets::commit(state, caller.contract.clone(), op, mapped, None, None, req.audit.clone(), false)
            .await?;
    crate::api::tickets::committed(state, &outcome);
    let row = find(state, caller, table, "number", &outcome.ticket.number).await?;
    Ok((outcome, row))
}

/// `POST /table/{t}`: a new record; ebond gives it its number and sys_id.
pub async fn create(state: &AppState, caller: &Caller, req: &Request<'_>, body: &Value) -> Result<Reply, TableError> {
    writing(caller)?;
    let table = table(req.table)?;
    let params = Params::parse(req.query)?;
    let display = params.display()?;
    let mut mapped = mapped(caller, body, Op::Create)?;
    // The table says what kind of ticket it is.
    mapped.changes.insert("kind".into(), Value::String(table.kind().into()));
    let (_, row) = write(state, caller, req, table, WriteOp::Create, mapped).await?;
    let sys_id = row.sys_id.clone();
    let record = render(caller, row, display, params.fields().as_deref())?;
    let mut reply = Reply::json(StatusCode::CREATED, serde_json::json!({ "result": record }));
    let location = format!("{}/api/now/table/{}/{sys_id}", req.origin, table.name());
    reply.headers.push(("Location".into(), location));
    reply.audited = true;
    Ok(reply)
}

/// `PATCH` / `PUT /table/{t}/{sys_id}`: the fields sent change, the others stay.
pub async fn update(state: &AppState, caller: &Caller, req: &Request<'_>, body: &Value) -> Result<Reply, TableError> {
    writing(caller)?;
    let table = table(req.table)?;
    let id = sys_id(req)?;
    let params = Params::parse(req.query)?;
    let display = params.display()?;
    let mapped = mapped(caller, body, Op::Update)?;
    let current = find(state, caller, table, "sys_id", &id).await?;
    let reference = reference(&current)?;
    let (outcome, row) = write(state, caller, req, table, WriteOp::Update { reference }, mapped).await?;
    let record = render(caller, row, display, params.fields().as_deref())?;
    let mut reply = Reply::json(StatusCode::OK, serde_json::json!({ "result": record }));
    // A field held for an operator (another party changed it after the version this partner
    // last saw) is not in the record yet: say so, since ServiceNow clients expect 200.
    if let Some(c) = &outcome.ticket.conflict {
        reply.headers.push(("Ebond-Conflict".into(), format!("{}; status={}", c.id, c.status)));
    }
    reply.audited = true;
    Ok(reply)
}

fn reference(row: &FacadeRow) -> Result<TicketReference, TableError> {
    TicketReference::parse(&row.ticket.number).map_err(|_| {
        TableError::from(crate::store::StoreError::Corrupt(format!("ticket number {}", row.ticket.number)))
    })
}

/// `DELETE /table/{t}/{sys_id}`: ebond keeps every ticket, so a delete cancels it — where the
/// contract lets the partner make that transition, else ServiceNow's 403.
pub async fn delete(state: &AppState, caller: &Caller, req: &Request<'_>) -> Result<Reply, TableError> {
    writing(caller)?;
    let table = table(req.table)?;
    let id = sys_id(req)?;
    let current = find(state, caller, table, "sys_id", &id).await?;
    let state_now = current.ticket.state.clone();
    let done = Reply { status: StatusCode::NO_CONTENT, headers: Vec::new(), body: None, audited: false };
    if state_now == "canceled" {
        return Ok(done);
    }
    let contract = &caller.contract;
    let outward = |s: &str| contract.state_outward(s).as_str().map(str::to_string).unwrap_or_else(|| s.to_string());
    let refused = || {
        TableError::forbidden(
            "delete-forbidden",
            "Insufficient rights to delete record",
            format!(
                "ebond keeps every ticket: DELETE cancels it, and {} may not cancel a ticket in state {} (state {} is canceled)",
                contract.id,
                outward(&state_now),
                outward("canceled")
            ),
        )
    };
    // The cancel is the partner's own write of its state field, so the contract (may it write
    // the state?) and the write path (may it make this transition, does the workflow have it?)
    // decide, as for any write; what they refuse is ServiceNow's 403 here.
    let Some(state_field) = contract.field_for("state") else { return Err(refused()) };
    let body = serde_json::json!({ crate::facade::field_name(state_field): outward("canceled") });
    let mapped = mapped(caller, &body, Op::Update).map_err(|_| refused())?;
    let op = WriteOp::Update { reference: reference(&current)? };
    let (outcome, _) = match write(state, caller, req, table, op, mapped).await {
        Err(e) if matches!(e.status, StatusCode::FORBIDDEN | StatusCode::UNPROCESSABLE_ENTITY) => return Err(refused()),
        other => other?,
    };
    let mut reply = Reply { audited: true, ..done };
    // Another party changed the state after the version this partner last saw: the cancel is
    // held for an operator, and the answer says so (the clients expect 204).
    if let Some(c) = &outcome.ticket.conflict {
        reply.headers.push(("Ebond-Conflict".into(), format!("{}; status={}", c.id, c.status)));
    }
    Ok(reply)
}

/// An empty object for bodies that are not there (pysnow sends `Content-Type` with none).
pub fn body_or_empty(v: Option<Value>) -> Value {
    v.unwrap_or_else(|| Value::Object(Map::new()))
}
