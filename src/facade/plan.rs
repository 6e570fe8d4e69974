//! An encoded query against one partner's contract, compiled to SQL: each field name resolved
//! to a ticket column (a whitelist: the contract's readable fields and the system fields), each
//! value converted to its canonical form and bound as a parameter — never written into the
//! statement. Date-time conditions become ranges on indexed columns; enum conditions are
//! evaluated over the partner's values and become `IN` lists of canonical values.

use super::query::{Condition, EncodedQuery, Op, Order};
use super::{Table, SYSTEM_FIELDS};
use crate::contract::{Contract, FieldSpec, FieldType, Target};
use serde_json::Value;

/// How the database writes its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?`
    Sqlite,
    /// `$1`, `$2`, …
    Postgres,
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Text(String),
    Int(i64),
}

/// A compiled list query: `SELECT … {from_where} {order} LIMIT … OFFSET …`, and the count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sql {
    /// `FROM tickets t JOIN xrefs x … WHERE …` (the partner's shared tickets of the table's
    /// kind, then the query's conditions).
    pub from_where: String,
    /// `ORDER BY …`, always ending with the ticket id so pages are stable.
    pub order_by: String,
    pub binds: Vec<Bind>,
    /// Binds of `order_by` (enum rankings), after those of `from_where`.
    pub order_binds: Vec<Bind>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("`{term}`: {detail}")]
    Value { term: String, detail: String },
    #[error("`{field}` is a journal field (work notes, comments): it cannot be queried or ordered by")]
    Journal { field: String },
}

/// What a facade field name stands for in SQL.
enum Column<'a> {
    /// A text column (or text expression).
    Text(String),
    /// An integer column (or expression).
    Int(String),
    /// Epoch milliseconds (system times): second-precision values become ranges.
    Millis(String),
    /// A canonical date-time (RFC 3339 text, to the second), written as the partner writes it.
    Datetime(String, &'a FieldSpec),
    /// Canonical enum values, named by the partner's values.
    Enum(String, &'a FieldSpec),
}

/// The names a query may use: every field the partner may read (journal fields included, so
/// that they are refused by name) and the system fields.
pub fn queryable_names(contract: &Contract) -> Vec<String> {
    let mut names: Vec<String> = SYSTEM_FIELDS.iter().map(|s| s.to_string()).collect();
    for spec in readable_fields(contract) {
        names.push(super::field_name(spec).to_string());
    }
    names
}

/// The partner's readable fields, the first per canonical target (as records show them).
pub fn readable_fields(contract: &Contract) -> Vec<&FieldSpec> {
    let mut seen = std::collections::BTreeSet::new();
    contract.fields.iter().filter(|f| contract.may_read(&f.target.name()) && seen.insert(f.target.name())).collect()
}

struct Builder {
    dialect: Dialect,
    sql: String,
    binds: Vec<Bind>,
    /// Placeholders already written (PostgreSQL numbers them across the whole statement).
    offset: usize,
}

impl Builder {
    fn param(&mut self, b: Bind) -> String {
        self.binds.push(b);
        match self.dialect {
            Dialect::Sqlite => "?".into(),
            Dialect::Postgres => format!("${}", self.offset + self.binds.len()),
        }
    }
}

/// Compiles `q` for `contract`'s partner on `table`.
pub fn compile(contract: &Contract, table: Table, q: &EncodedQuery, dialect: Dialect) -> Result<Sql, PlanError> {
    let mut b = Builder { dialect, sql: String::new(), binds: Vec::new(), offset: 0 };
    let partner = b.param(Bind::Text(contract.id.to_string()));
    let kind = b.param(Bind::Text(table.kind().into()));
    b.sql = format!(
        "FROM tickets t JOIN xrefs x ON x.ticket_id = t.id AND x.partner = {partner} AND x.active WHERE t.kind = {kind}"
    );
    if !q.groups.is_empty() {
        let mut groups = Vec::new();
        for group in &q.groups {
            let mut ands = Vec::new();
            for ors in group {
                let mut parts = Vec::new();
                for c in ors {
                    parts.push(condition(contract, c, &mut b)?);
                }
                ands.push(format!("({})", parts.join(" OR ")));
            }
            groups.push(format!("({})", ands.join(" AND ")));
        }
        b.sql.push_str(&format!(" AND ({})", groups.join(" OR ")));
    }
    let from_where = std::mem::take(&mut b.sql);
    let binds = std::mem::take(&mut b.binds);
    b.offset = binds.len();
    let mut order = Vec::new();
    for o in &q.order {
        order.push(ordering(contract, o, &mut b)?);
    }
    order.push("t.id".into());
    Ok(Sql { from_where, order_by: format!("ORDER BY {}", order.join(", ")), binds, order_binds: b.binds })
}

fn column<'a>(contract: &'a Contract, name: &str, dialect: Dialect) -> Result<Column<'a>, PlanError> {
    match name {
        "sys_id" => return Ok(Column::Text("t.sys_id".into())),
        "number" => return Ok(Column::Text("t.number".into())),
        "sys_created_on" => return Ok(Column::Millis("t.created_at".into())),
        "sys_updated_on" => return Ok(Column::Millis("t.updated_at".into())),
        "sys_mod_count" => return Ok(Column::Int("(t.version - 1)".into())),
        "sys_created_by" => return Ok(Column::Text("t.created_by".into())),
        "sys_updated_by" => return Ok(Column::Text("t.updated_by".into())),
        _ => {}
    }
    // The parser only lets names through that are system fields or readable fields.
    let spec = readable_fields(contract)
        .into_iter()
        .find(|s| super::field_name(s) == name)
        .ok_or_else(|| PlanError::Value { term: name.into(), detail: "not a field you may read".into() })?;
    let expr = match &spec.target {
        // Canonical names are column names (a fixed list, never the caller's text).
        Target::Field(f) => format!("t.{}", f.name),
        Target::PartnerTicketId => "x.partner_ticket_id".into(),
        Target::Version => return Ok(Column::Int("t.version".into())),
        Target::WorkNote | Target::Comment => return Err(PlanError::Journal { field: name.into() }),
        Target::Attribute(a) => {
            if matches!(spec.ty, FieldType::Enum | FieldType::Datetime) {
                return Err(PlanError::Value {
                    term: name.into(),
                    detail: "custom attributes of type enum or datetime cannot be queried through the Table-API facade"
                        .into(),
                });
            }
            // The attribute's name comes from the contract; it is still quoted for SQL and JSON.
            let sqlite_key = a.replace('\\', "\\\\").replace('"', "\\\"").replace('\'', "''");
            let pg_key = a.replace('\'', "''");
            let text = match dialect {
                Dialect::Sqlite => format!("json_extract(t.attributes, '$.\"{sqlite_key}\"')"),
                Dialect::Postgres => format!("(t.attributes::jsonb ->> '{pg_key}')"),
            };
            return Ok(match (dialect, spec.ty) {
                (Dialect::Sqlite, FieldType::Integer | FieldType::Boolean) => Column::Int(text),
                // Guarded casts: a stored value of another shape is no match, never an error.
                (Dialect::Postgres, FieldType::Integer) => {
                    Column::Int(format!("(CASE WHEN {text} ~ '^-?[0-9]{{1,18}}$' THEN ({text})::bigint END)"))
                }
                (Dialect::Postgres, FieldType::Boolean) => {
                    Column::Int(format!("(CASE {text} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"))
                }
                _ => Column::Text(text),
            });
        }
    };
    Ok(match spec.ty {
        FieldType::Enum => Column::Enum(expr, spec),
        FieldType::Datetime => Column::Datetime(expr, spec),
        FieldType::Integer => Column::Int(expr),
        FieldType::Boolean => Column::Int(expr),
        FieldType::String | FieldType::Text => Column::Text(expr),
    })
}

fn condition(contract: &Contract, c: &Condition, b: &mut Builder) -> Result<String, PlanError> {
    let term = format!("{}{}{}", c.field, op_name(c.op), c.value);
    let bad = |detail: String| PlanError::Value { term: term.clone(), detail };
    // `field=` (nothing after the operator) asks for an empty field, as on ServiceNow.
    let op = match (c.op, c.value.is_empty()) {
        (Op::Eq, true) => Op::IsEmpty,
        (Op::Ne, true) => Op::IsNotEmpty,
        (op, _) => op,
    };
    match op {
        Op::Anything => return Ok("1=1".into()),
        Op::IsEmpty | Op::IsNotEmpty | Op::EmptyString => {}
        _ if c.value.starts_with("javascript:") && !c.value.contains("gs.dateGenerate") => {
            return Err(bad(
                "javascript: values are not run by this Table-API facade (only gs.dateGenerate(…) is understood)"
                    .into(),
            ))
        }
        _ => {}
    }
    let col = column(contract, &c.field, b.dialect)?;
    match col {
        Column::Enum(expr, spec) => enum_condition(&expr, spec, op, &c.value, b),
        Column::Millis(expr) => millis_condition(&expr, op, &c.value, b).map_err(bad),
        Column::Datetime(expr, spec) => {
            let conv = |v: &str| datetime_value(v, spec).map(Bind::Text);
            scalar_condition(&expr, false, op, &c.value, conv, b).map_err(bad)
        }
        Column::Int(expr) => {
            let conv =
                |v: &str| v.trim().parse::<i64>().map(Bind::Int).map_err(|_| format!("`{v}` is not a whole number"));
            scalar_condition(&expr, true, op, &c.value, conv, b).map_err(bad)
        }
        Column::Text(expr) => {
            scalar_condition(&expr, false, op, &c.value, |v| Ok(Bind::Text(v.into())), b).map_err(bad)
        }
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Like => "LIKE",
        Op::NotLike => "NOT LIKE",
        Op::StartsWith => "STARTSWITH",
        Op::EndsWith => "ENDSWITH",
        Op::In => "IN",
        Op::NotIn => "NOT IN",
        Op::IsEmpty => "ISEMPTY",
        Op::IsNotEmpty => "ISNOTEMPTY",
        Op::Anything => "ANYTHING",
        Op::EmptyString => "EMPTYSTRING",
        Op::Between => "BETWEEN",
    }
}

/// `a@b` of BETWEEN.
fn between(v: &str) -> Result<(&str, &str), String> {
    v.split_once('@').ok_or_else(|| format!("BETWEEN takes two values joined by @ (low@high), got `{v}`"))
}

/// LIKE patterns match the value literally (its `%`, `_` and `\` escaped); case is folded by
/// the database (ASCII on SQLite, Unicode on PostgreSQL).
fn like_pattern(op: Op, v: &str) -> String {
    let escaped = v.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    match op {
        Op::StartsWith => format!("{escaped}%"),
        Op::EndsWith => format!("%{escaped}"),
        _ => format!("%{escaped}%"),
    }
}

fn scalar_condition(
    expr: &str,
    numeric: bool,
    op: Op,
    value: &str,
    conv: impl Fn(&str) -> Result<Bind, String>,
    b: &mut Builder,
) -> Result<String, String> {
    let empty = match numeric {
        true => format!("{expr} IS NULL"),
        false => format!("({expr} IS NULL OR {expr} = '')"),
    };
    Ok(match op {
        Op::Eq | Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            let sym = op_name(op);
            let p = b.param(conv(value)?);
            format!("{expr} {sym} {p}")
        }
        Op::Ne => {
            let p = b.param(conv(value)?);
            format!("({expr} IS NULL OR {expr} <> {p})")
        }
        Op::Like | Op::StartsWith | Op::EndsWith | Op::NotLike => {
            let text = if numeric { format!("CAST({expr} AS TEXT)") } else { expr.to_string() };
            // Both sides through the database's own LOWER, so they fold alike on each backend.
            let p = b.param(Bind::Text(like_pattern(op, value)));
            let like = format!("LOWER({text}) LIKE LOWER({p}) ESCAPE '\\'");
            match op {
                Op::NotLike => format!("({expr} IS NULL OR NOT ({like}))"),
                _ => like,
            }
        }
        Op::In | Op::NotIn => {
            let mut ps = Vec::new();
            for v in value.split(',') {
                ps.push(b.param(conv(v)?));
            }
            match op {
                Op::In => format!("{expr} IN ({})", ps.join(", ")),
                _ => format!("({expr} IS NULL OR {expr} NOT IN ({}))", ps.join(", ")),
            }
        }
        Op::Between => {
            let (lo, hi) = between(value)?;
            let (lo, hi) = (b.param(conv(lo)?), b.param(conv(hi)?));
            format!("({expr} >= {lo} AND {expr} <= {hi})")
        }
        Op::IsEmpty => empty,
        Op::IsNotEmpty => format!("NOT {empty}"),
        Op::EmptyString if numeric => "1=0".into(),
        Op::EmptyString => format!("{expr} = ''"),
        Op::Anything => "1=1".into(),
    })
}

/// System times are stored in milliseconds and written to the second: a condition on a second
/// covers all of it, and stays a range on the column's index.
fn millis_condition(expr: &str, op: Op, value: &str, b: &mut Builder) -> Result<String, String> {
    const S: i64 = 1000;
    let at = |v: &str| super::parse_time(v).map(|(ms, len)| (ms, len.max(S)));
    let range = |b: &mut Builder, lo: i64, hi: i64| {
        let (l, h) = (b.param(Bind::Int(lo)), b.param(Bind::Int(hi)));
        format!("({expr} >= {l} AND {expr} < {h})")
    };
    Ok(match op {
        Op::Eq => {
            let (t, len) = at(value)?;
            range(b, t, t + len)
        }
        Op::Ne => {
            let (t, len) = at(value)?;
            format!("NOT {}", range(b, t, t + len))
        }
        Op::Gt => {
            let (t, len) = at(value)?;
            format!("{expr} >= {}", b.param(Bind::Int(t + len)))
        }
        Op::Ge => format!("{expr} >= {}", b.param(Bind::Int(at(value)?.0))),
        Op::Lt => format!("{expr} < {}", b.param(Bind::Int(at(value)?.0))),
        Op::Le => {
            let (t, len) = at(value)?;
            format!("{expr} < {}", b.param(Bind::Int(t + len)))
        }
        Op::Between => {
            let (lo, hi) = between(value)?;
            let (lo, (hi, len)) = (at(lo)?.0, at(hi)?);
            range(b, lo, hi + len)
        }
        Op::In | Op::NotIn => {
            let mut parts = Vec::new();
            for v in value.split(',') {
                let (t, len) = at(v)?;
                parts.push(range(b, t, t + len));
            }
            let any = format!("({})", parts.join(" OR "));
            if op == Op::In {
                any
            } else {
                format!("NOT {any}")
            }
        }
        // Always set.
        Op::IsEmpty | Op::EmptyString => "1=0".into(),
        Op::IsNotEmpty | Op::Anything => "1=1".into(),
        Op::Like | Op::NotLike | Op::StartsWith | Op::EndsWith => {
            return Err("LIKE, STARTSWITH and ENDSWITH do not apply to date-time fields; use >, <, BETWEEN".into())
        }
    })
}

/// A partner date-time (its contract's format, ServiceNow's `YYYY-MM-DD HH:MM:SS`, or
/// `gs.dateGenerate`) as the canonical RFC 3339 text the column holds.
fn datetime_value(v: &str, spec: &FieldSpec) -> Result<String, String> {
    let parsed = crate::contract::inbound::parse_datetime(v, spec.format.as_deref())
        .map(|d| d.timestamp_millis())
        .or_else(|| super::parse_time(v).ok().map(|(ms, _)| ms));
    let ms = parsed.ok_or_else(|| {
        format!(
            "`{v}` is not a date-time; write {}",
            spec.format.as_deref().map(|f| format!("`{f}`")).unwrap_or_else(|| "YYYY-MM-DD HH:MM:SS".into())
        )
    })?;
    let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Ok(dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The partner values of an enum field in their order: numerically when they all are numbers.
fn ordered_values(spec: &FieldSpec) -> Vec<&(Value, String)> {
    let mut values: Vec<&(Value, String)> = spec.outbound_values.iter().collect();
    values.sort_by(|a, b| compare(&a.1, &b.1));
    values
}

fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.cmp(b),
    }
}

fn canonical_bind(v: &Value) -> Bind {
    match v {
        Value::Number(n) => Bind::Int(n.as_i64().unwrap_or_default()),
        Value::Bool(b) => Bind::Int(i64::from(*b)),
        Value::String(s) => Bind::Text(s.clone()),
        other => Bind::Text(other.to_string()),
    }
}

/// An enum has few values: the condition is decided for each of the partner's values, and the
/// canonical values of those that hold are what the column may be.
fn enum_condition(expr: &str, spec: &FieldSpec, op: Op, value: &str, b: &mut Builder) -> Result<String, PlanError> {
    let holds = |pv: &str| -> Result<bool, PlanError> {
        let lower = pv.to_ascii_lowercase();
        let q = value.to_ascii_lowercase();
        Ok(match op {
            Op::Eq => pv == value,
            Op::Ne => pv != value,
            Op::Gt => compare(pv, value).is_gt(),
            Op::Ge => compare(pv, value).is_ge(),
            Op::Lt => compare(pv, value).is_lt(),
            Op::Le => compare(pv, value).is_le(),
            Op::Like => lower.contains(&q),
            Op::NotLike => !lower.contains(&q),
            Op::StartsWith => lower.starts_with(&q),
            Op::EndsWith => lower.ends_with(&q),
            Op::In => value.split(',').any(|v| v == pv),
            Op::NotIn => !value.split(',').any(|v| v == pv),
            Op::Between => {
                let (lo, hi) = between(value).map_err(|detail| PlanError::Value { term: value.into(), detail })?;
                compare(pv, lo).is_ge() && compare(pv, hi).is_le()
            }
            Op::IsEmpty | Op::IsNotEmpty | Op::Anything | Op::EmptyString => false,
        })
    };
    match op {
        Op::IsEmpty | Op::EmptyString => return Ok(format!("{expr} IS NULL")),
        Op::IsNotEmpty => return Ok(format!("{expr} IS NOT NULL")),
        Op::Anything => return Ok("1=1".into()),
        _ => {}
    }
    let mut ps = Vec::new();
    for (canonical, pv) in ordered_values(spec) {
        if holds(pv)? {
            ps.push(b.param(canonical_bind(canonical)));
        }
    }
    let matching = match ps.is_empty() {
        true => "1=0".to_string(),
        false => format!("{expr} IN ({})", ps.join(", ")),
    };
    Ok(match op.negative() {
        true => format!("({expr} IS NULL OR {matching})"),
        false => matching,
    })
}

fn ordering(contract: &Contract, o: &Order, b: &mut Builder) -> Result<String, PlanError> {
    let dir = if o.desc { "DESC" } else { "ASC" };
    // Empty values first going up, last going down, on both databases (they differ by default).
    let nulls_first = |expr: &str| format!("(CASE WHEN {expr} IS NULL THEN 0 ELSE 1 END) {dir}, {expr} {dir}");
    Ok(match column(contract, &o.field, b.dialect)? {
        // System columns are never empty, and their indexes serve the order as written.
        Column::Millis(expr) => format!("{expr} {dir}"),
        Column::Text(expr) if expr.starts_with("t.sys_id") || expr == "t.number" => format!("{expr} {dir}"),
        Column::Text(expr) | Column::Int(expr) | Column::Datetime(expr, _) => nulls_first(&expr),
        // By the partner's values, not the canonical ones.
        Column::Enum(expr, spec) => {
            let mut case = format!("CASE {expr}");
            for (rank, (canonical, _)) in ordered_values(spec).into_iter().enumerate() {
                let w = b.param(canonical_bind(canonical));
                case.push_str(&format!(" WHEN {w} THEN {}", rank + 1));
            }
            case.push_str(" ELSE 0 END");
            format!("{case} {dir}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facade::query::parse;

    fn contract() -> std::sync::Arc<Contract> {
        crate::facade::example_contract()
    }

    fn sql(q: &str, d: Dialect) -> Result<Sql, String> {
        let c = contract();
        let names = queryable_names(&c);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let parsed = parse(q, &names).map_err(|e| e.to_string())?;
        compile(&c, Table::Incident, &parsed, d).map_err(|e| e.to_string())
    }

    #[test]
    fn values_are_bound_never_written_into_the_statement() {
        let s = sql("short_description=x' OR '1'='1^ORDERBYshort_description", Dialect::Sqlite).unwrap();
        assert!(!s.from_where.contains("'1'='1"), "{}", s.from_where);
        assert_eq!(s.binds.last(), Some(&Bind::Text("x' OR '1'='1".into())));
        let s = sql("short_descriptionLIKE100%_\\", Dialect::Postgres).unwrap();
        assert!(s.from_where.contains("LOWER(t.short_description) LIKE LOWER($3) ESCAPE"), "{}", s.from_where);
        assert_eq!(s.binds[2], Bind::Text("%100\\%\\_\\\\%".into()));
    }

    #[test]
    fn joiners_become_parenthesised_sql() {
        let s = sql("state=1^ORstate=2^priority=1^NQnumber=EB1", Dialect::Postgres).unwrap();
        assert!(
            s.from_where.ends_with(
                " AND (((t.state IN ($3) OR t.state IN ($4)) AND (t.priority IN ($5))) OR ((t.number = $6)))"
            ),
            "{}",
            s.from_where
        );
        assert_eq!(s.binds[2], Bind::Text("new".into()));
        assert_eq!(s.binds[3], Bind::Text("in_progress".into()));
        assert_eq!(s.binds[4], Bind::Int(1));
        assert!(s.order_by.ends_with("t.id"), "stable pages: {}", s.order_by);
    }

    #[test]
    fn enums_are_decided_over_the_partners_values() {
        // state > 2 over 1, 2, 3, 6, 7, 8 is 3, 6, 7, 8 (numerically, not as text).
        let s = sql("state>2", Dialect::Sqlite).unwrap();
        let ids: Vec<_> = s.binds[2..].to_vec();
        assert_eq!(
            ids,
            ["on_hold", "resolved", "closed", "canceled"].map(|v| Bind::Text(v.into())).to_vec(),
            "{}",
            s.from_where
        );
        let s = sql("state!=1", Dialect::Sqlite).unwrap();
        assert!(s.from_where.contains("(t.state IS NULL OR t.state IN (?, ?, ?, ?, ?))"), "{}", s.from_where);
        let s = sql("stateIN9", Dialect::Sqlite).unwrap();
        assert!(s.from_where.ends_with("AND (((1=0)))"), "{}", s.from_where);
        let s = sql("ORDERBYDESCstate", Dialect::Postgres).unwrap();
        assert!(s.order_by.starts_with("ORDER BY CASE t.state WHEN $3 THEN 1"), "{}", s.order_by);
        assert_eq!(s.order_binds[0], Bind::Text("new".into()));
    }

    #[test]
    fn system_times_are_ranges_of_the_second() {
        let s = sql("sys_updated_on>2026-01-01 10:00:00^sys_created_on=2026-01-01 10:00:00", Dialect::Sqlite).unwrap();
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z").unwrap().timestamp_millis();
        assert_eq!(s.binds[2..], [Bind::Int(t + 1000), Bind::Int(t), Bind::Int(t + 1000)]);
        let s = sql("sys_updated_onBETWEENjavascript:gs.dateGenerate('2026-01-01','start')@javascript:gs.dateGenerate('2026-01-01','end')", Dialect::Sqlite).unwrap();
        let day = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().timestamp_millis();
        assert_eq!(s.binds[2..], [Bind::Int(day), Bind::Int(day + 86_400_000)]);
        assert!(sql("sys_updated_on>yesterday", Dialect::Sqlite).unwrap_err().contains("date-time"));
        assert!(sql("sys_updated_onLIKE2026", Dialect::Sqlite).is_err());
    }

    #[test]
    fn bad_values_and_journal_fields_are_refused() {
        assert!(sql("sys_mod_count>many", Dialect::Sqlite).unwrap_err().contains("whole number"));
        assert!(sql("work_notesLIKEx", Dialect::Sqlite).unwrap_err().contains("journal field"));
        assert!(sql("short_description=javascript:gs.getUserID()", Dialect::Sqlite)
            .unwrap_err()
            .contains("javascript"));
        assert!(sql("priorityBETWEEN1", Dialect::Sqlite).is_err());
    }
}
