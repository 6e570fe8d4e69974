//! Lifecycle events derived from a change; outbox rows and subscriptions speak in these.

use super::{JournalInput, JournalKind};
use serde::Serialize;

/// Events, declared from most to least significant: a row's headline event is the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Created,
    Recalled,
    Resolved,
    Closed,
    Reopened,
    Assigned,
    StateChanged,
    WorkNoteAdded,
    CommentAdded,
    Updated,
}

impl Event {
    pub const ALL: [Event; 10] = [
        Event::Created,
        Event::Recalled,
        Event::Resolved,
        Event::Closed,
        Event::Reopened,
        Event::Assigned,
        Event::StateChanged,
        Event::WorkNoteAdded,
        Event::CommentAdded,
        Event::Updated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Created => "created",
            Event::Recalled => "recalled",
            Event::Resolved => "resolved",
            Event::Closed => "closed",
            Event::Reopened => "reopened",
            Event::Assigned => "assigned",
            Event::StateChanged => "state_changed",
            Event::WorkNoteAdded => "work_note_added",
            Event::CommentAdded => "comment_added",
            Event::Updated => "updated",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// What a workflow state means for the lifecycle events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateCategory {
    Open,
    Resolved,
    Closed,
}

/// Events for one write. `changed` lists the canonical fields whose value changed;
/// `from`/`to` are the states before and after (equal when the state did not change; `from`
/// is `None` on create). Returns an empty list when nothing changed.
pub fn derive(
    from: Option<(&str, StateCategory)>,
    to: (&str, StateCategory),
    changed: &[&str],
    journal: &[JournalInput],
) -> Vec<Event> {
    let mut events = Vec::new();
    let Some((from_state, from_cat)) = from else {
        events.push(Event::Created);
        push_journal_events(&mut events, journal);
        return events;
    };
    let (to_state, to_cat) = to;
    if from_state != to_state {
        events.push(Event::StateChanged);
        match (from_cat, to_cat) {
            (_, StateCategory::Resolved) => events.push(Event::Resolved),
            (_, StateCategory::Closed) => events.push(Event::Closed),
            (StateCategory::Resolved | StateCategory::Closed, StateCategory::Open) => events.push(Event::Reopened),
            _ => {}
        }
    }
    if changed.iter().any(|f| *f == "assignment_group" || *f == "assigned_to") {
        events.push(Event::Assigned);
    }
    let other = changed.iter().any(|f| !matches!(*f, "state" | "assignment_group" | "assigned_to"));
    if other {
        events.push(Event::Updated);
    }
    push_journal_events(&mut events, journal);
    events.sort();
    events.dedup();
    events
}

fn push_journal_events(events: &mut Vec<Event>, journal: &[JournalInput]) {
    for entry in journal {
        match entry.kind {
            JournalKind::WorkNote => events.push(Event::WorkNoteAdded),
            JournalKind::Comment => events.push(Event::CommentAdded),
            JournalKind::FieldChange => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StateCategory::*;

    fn note(kind: JournalKind) -> JournalInput {
        JournalInput { kind, body: "x".into(), entry_id: None }
    }

    #[test]
    fn create_is_created_plus_journal() {
        let e = derive(None, ("new", Open), &[], &[note(JournalKind::Comment)]);
        assert_eq!(e, vec![Event::Created, Event::CommentAdded]);
    }

    #[test]
    fn resolve_is_state_changed_and_resolved() {
        let e = derive(Some(("in_progress", Open)), ("resolved", Resolved), &["state", "resolution_code"], &[]);
        assert_eq!(e, vec![Event::Resolved, Event::StateChanged, Event::Updated]);
    }

    #[test]
    fn reopen_from_resolved() {
        let e = derive(Some(("resolved", Resolved)), ("in_progress", Open), &["state"], &[]);
        assert_eq!(e, vec![Event::Reopened, Event::StateChanged]);
    }

    #[test]
    fn close_and_assign() {
        let e = derive(Some(("resolved", Resolved)), ("closed", Closed), &["state"], &[]);
        assert_eq!(e, vec![Event::Closed, Event::StateChanged]);
        let e = derive(Some(("new", Open)), ("new", Open), &["assignment_group"], &[]);
        assert_eq!(e, vec![Event::Assigned]);
    }

    #[test]
    fn nothing_changed_gives_no_event() {
        assert!(derive(Some(("new", Open)), ("new", Open), &[], &[]).is_empty());
    }

    #[test]
    fn names_round_trip() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
        }
    }
}
