//! The canonical ticket model every partner is mapped to and from.

pub mod events;
pub mod fields;
pub mod ids;
pub mod payload;

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A canonical ticket as the sync engine sees it: identity plus a flat map of canonical field
/// values (`attributes.<name>` keys for contract-declared custom fields). Absent or `null`
/// values mean "not set".
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: i64,
    pub number: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub updated_by: String,
    pub values: Map<String, Value>,
    /// Who last set each field, at which version: what conflict detection compares with the
    /// version the writing partner last saw.
    pub stamps: Stamps,
    /// Conflict records of this ticket still open.
    pub open_conflicts: i64,
}

/// Who last set a field (a partner id, or `operator:<credential id>`), at which ticket version
/// and when (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub v: i64,
    pub by: String,
    pub at: i64,
}

/// Canonical field → its [`Stamp`].
pub type Stamps = BTreeMap<String, Stamp>;

impl Ticket {
    pub fn get(&self, field: &str) -> &Value {
        self.values.get(field).unwrap_or(&Value::Null)
    }

    pub fn state(&self) -> &str {
        self.get("state").as_str().unwrap_or_default()
    }
}

/// Canonical field → new value (`null` clears it). Ordered so journal rows and payloads are
/// stable.
pub type Changeset = BTreeMap<String, Value>;

/// Kinds of journal entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalKind {
    WorkNote,
    Comment,
    FieldChange,
}

impl JournalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JournalKind::WorkNote => "work_note",
            JournalKind::Comment => "comment",
            JournalKind::FieldChange => "field_change",
        }
    }
}

/// A work note or comment a partner adds with a write.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JournalInput {
    pub kind: JournalKind,
    pub body: String,
    /// The partner's own id for the entry, used to drop duplicates of a retried request.
    pub entry_id: Option<String>,
}
