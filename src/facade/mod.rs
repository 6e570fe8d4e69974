//! The ServiceNow Table-API facade's own logic, apart from HTTP (`api::table`): which tables
//! there are, encoded queries ([`query`]) and their SQL ([`plan`]), and records in ServiceNow's
//! shape ([`record`]). A partner's existing ServiceNow clients talk to ebond unmodified, while
//! every write still goes through its contract and the one write path.

pub mod plan;
pub mod query;
pub mod record;

use crate::contract::FieldSpec;

/// Fields every facade record has, set by ebond.
pub const SYSTEM_FIELDS: &[&str] =
    &["sys_id", "number", "sys_created_on", "sys_updated_on", "sys_mod_count", "sys_created_by", "sys_updated_by"];

/// ServiceNow's date-time format (UTC), for values and display values alike.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The tables the facade answers, each one kind of ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Incident,
    ChangeRequest,
    Problem,
    ScReqItem,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Incident, Table::ChangeRequest, Table::Problem, Table::ScReqItem];

    pub fn parse(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Incident => "incident",
            Table::ChangeRequest => "change_request",
            Table::Problem => "problem",
            Table::ScReqItem => "sc_req_item",
        }
    }

    /// The canonical ticket kind the table holds.
    pub fn kind(self) -> &'static str {
        match self {
            Table::Incident => "incident",
            Table::ChangeRequest => "change",
            Table::Problem => "problem",
            Table::ScReqItem => "service_request",
        }
    }
}

/// A field's facade name: its pointer's one member (contracts with `[table_api]` are flat).
pub fn field_name(spec: &FieldSpec) -> &str {
    spec.pointer.tokens().first().map(String::as_str).unwrap_or_default()
}

/// Is `s` a sys_id (32 hexadecimal digits)?
pub fn is_sys_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A ServiceNow time as epoch milliseconds and the span it names: `YYYY-MM-DD HH:MM:SS` (a
/// second), `YYYY-MM-DD` (a day), or `javascript:gs.dateGenerate('YYYY-MM-DD','HH:MM:SS'|'start'|'end')`.
pub fn parse_time(v: &str) -> Result<(i64, i64), String> {
    const SECOND: i64 = 1000;
    const DAY: i64 = 86_400_000;
    let v = v.trim();
    let bad = || {
        format!(
            "`{v}` is not a date-time; write YYYY-MM-DD HH:MM:SS (UTC), YYYY-MM-DD, or javascript:gs.dateGenerate('YYYY-MM-DD','HH:MM:SS')"
        )
    };
    if let Some(args) = v.strip_prefix("javascript:gs.dateGenerate(").and_then(|r| r.strip_suffix(')')) {
        let parts: Vec<String> = args.split(',').map(|a| a.trim().trim_matches(['\'', '"']).to_string()).collect();
        return match parts.as_slice() {
            [one] => parse_time(one),
            [date, time] => match time.as_str() {
                "start" => Ok((parse_time(date)?.0, SECOND)),
                "end" => Ok((parse_time(date)?.0 + DAY - SECOND, SECOND)),
                t => parse_time(&format!("{date} {t}")),
            },
            _ => Err(bad()),
        };
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(v, TIME_FORMAT) {
        return Ok((dt.and_utc().timestamp_millis(), SECOND));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok((d.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc().timestamp_millis(), DAY));
    }
    Err(bad())
}

/// Epoch milliseconds in ServiceNow's format.
pub fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format(TIME_FORMAT).to_string()
}

/// The example facade partner's contract (`contracts/initech.toml`), for unit tests.
#[cfg(test)]
pub(crate) fn example_contract() -> std::sync::Arc<crate::contract::Contract> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts");
    let registry = crate::contract::load_dir(&dir).expect("the example contracts load");
    registry.get("initech").expect("the initech example").clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_form_the_clients_send() {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
        assert_eq!(parse_time("2026-01-02 03:04:05"), Ok((t("2026-01-02T03:04:05Z"), 1000)));
        assert_eq!(parse_time("2026-01-02"), Ok((t("2026-01-02T00:00:00Z"), 86_400_000)));
        assert_eq!(
            parse_time("javascript:gs.dateGenerate('2026-01-02','03:04:05')"),
            Ok((t("2026-01-02T03:04:05Z"), 1000))
        );
        assert_eq!(
            parse_time("javascript:gs.dateGenerate(\"2026-01-02 03:04:05\")"),
            Ok((t("2026-01-02T03:04:05Z"), 1000))
        );
        assert_eq!(parse_time("javascript:gs.dateGenerate('2026-01-02','end')"), Ok((t("2026-01-02T23:59:59Z"), 1000)));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(format_time(t("2026-01-02T03:04:05.678Z")), "2026-01-02 03:04:05");
        assert!(is_sys_id("0123456789abcdef0123456789ABCDEF") && !is_sys_id("xyz"));
        assert_eq!(Table::parse("sc_req_item").map(Table::kind), Some("service_request"));
        assert_eq!(Table::parse("sys_user"), None);
    }
}
