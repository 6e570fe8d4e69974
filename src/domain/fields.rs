//! The canonical fields: names, types and limits. Contracts map partner fields onto these.

/// How a canonical field's values are typed and bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanonicalType {
    String {
        max_len: usize,
    },
    Integer {
        min: i64,
        max: i64,
    },
    /// RFC 3339 timestamp, stored normalised to UTC.
    Datetime,
    /// A state of `contracts/workflow.toml`.
    State,
    Enum(&'static [&'static str]),
}

#[derive(Debug, PartialEq)]
pub struct CanonicalField {
    pub name: &'static str,
    pub ty: CanonicalType,
    pub doc: &'static str,
}

pub const KINDS: &[&str] = &["incident", "change", "problem", "service_request"];
pub const HOLD_REASONS: &[&str] = &["awaiting_caller", "awaiting_problem", "awaiting_vendor", "awaiting_change"];

const fn s(max_len: usize) -> CanonicalType {
    CanonicalType::String { max_len }
}

pub const FIELDS: &[CanonicalField] = &[
    CanonicalField { name: "kind", ty: CanonicalType::Enum(KINDS), doc: "Ticket kind" },
    CanonicalField { name: "short_description", ty: s(160), doc: "One-line summary" },
    CanonicalField { name: "description", ty: s(32_000), doc: "Full description" },
    CanonicalField { name: "category", ty: s(80), doc: "Category" },
    CanonicalField { name: "subcategory", ty: s(80), doc: "Subcategory" },
    CanonicalField { name: "impact", ty: CanonicalType::Integer { min: 1, max: 3 }, doc: "1 high … 3 low" },
    CanonicalField { name: "urgency", ty: CanonicalType::Integer { min: 1, max: 3 }, doc: "1 high … 3 low" },
    CanonicalField {
        name: "priority",
        ty: CanonicalType::Integer { min: 1, max: 5 },
        doc: "1 critical … 5 planning; derived from impact × urgency unless set",
    },
    CanonicalField { name: "state", ty: CanonicalType::State, doc: "Workflow state" },
    CanonicalField { name: "hold_reason", ty: CanonicalType::Enum(HOLD_REASONS), doc: "Why on hold" },
    CanonicalField { name: "assignment_group", ty: s(100), doc: "Group working the ticket" },
    CanonicalField { name: "assigned_to", ty: s(100), doc: "Person working the ticket" },
    CanonicalField { name: "caller", ty: s(100), doc: "Who raised it" },
    CanonicalField { name: "configuration_item", ty: s(255), doc: "Affected CI" },
    CanonicalField { name: "resolution_code", ty: s(80), doc: "How it was resolved" },
    CanonicalField { name: "resolution_notes", ty: s(32_000), doc: "Resolution details" },
    CanonicalField { name: "estimated_completion", ty: CanonicalType::Datetime, doc: "Expected completion" },
    CanonicalField { name: "sla_due", ty: CanonicalType::Datetime, doc: "SLA due time" },
];

/// Targets that are not ticket columns: the partner's own ticket id and journal entries.
pub const PARTNER_TICKET_ID: &str = "partner_ticket_id";
pub const WORK_NOTE: &str = "work_note";
pub const COMMENT: &str = "comment";
/// The ticket's version, readable by partners (never written by them).
pub const VERSION: &str = "version";
pub const ATTRIBUTE_PREFIX: &str = "attributes.";

pub fn field(name: &str) -> Option<&'static CanonicalField> {
    FIELDS.iter().find(|f| f.name == name)
}

/// Every name a contract may use in `canonical`, `write` or `read`, for error messages.
pub fn all_target_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    names.extend([PARTNER_TICKET_ID, WORK_NOTE, COMMENT, VERSION, "attributes.<name>"]);
    names
}
