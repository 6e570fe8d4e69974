//! The canonical workflow (`contracts/workflow.toml`): states, allowed transitions, the fields
//! each state requires, and the default impact × urgency → priority lookup.

use crate::domain::events::StateCategory;
use std::collections::BTreeSet;

#[derive(Debug)]
pub struct StateDef {
    pub name: String,
    pub label: String,
    pub category: StateCategory,
    pub requires: Vec<String>,
}

#[derive(Debug)]
pub struct Workflow {
    pub initial: Vec<String>,
    /// In file order.
    pub states: Vec<StateDef>,
    pub transitions: BTreeSet<(String, String)>,
    pub priority_matrix: [[i64; 3]; 3],
}

/// Why a state change is refused by the workflow itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowViolation {
    NotInitial { state: String, initial: Vec<String> },
    NoSuchTransition { from: String, to: String, allowed: Vec<String> },
}

/// The priority lookup of ServiceNow's default instance.
pub const DEFAULT_PRIORITY_MATRIX: [[i64; 3]; 3] = [[1, 2, 3], [2, 3, 4], [3, 4, 5]];

impl Workflow {
    pub fn state(&self, name: &str) -> Option<&StateDef> {
        self.states.iter().find(|s| s.name == name)
    }

    pub fn category(&self, name: &str) -> StateCategory {
        self.state(name).map(|s| s.category).unwrap_or(StateCategory::Open)
    }

    pub fn state_names(&self) -> Vec<&str> {
        self.states.iter().map(|s| s.name.as_str()).collect()
    }

    /// Checks the state a ticket is created in.
    pub fn check_initial(&self, state: &str) -> Result<(), WorkflowViolation> {
        if self.initial.iter().any(|s| s == state) {
            Ok(())
        } else {
            Err(WorkflowViolation::NotInitial { state: state.into(), initial: self.initial.clone() })
        }
    }

    /// Checks a state change `from → to` (callers skip this when the state is unchanged).
    pub fn check_transition(&self, from: &str, to: &str) -> Result<(), WorkflowViolation> {
        if self.transitions.contains(&(from.to_string(), to.to_string())) {
            return Ok(());
        }
        let allowed = self.transitions.iter().filter(|(f, _)| f == from).map(|(_, t)| t.clone()).collect();
        Err(WorkflowViolation::NoSuchTransition { from: from.into(), to: to.into(), allowed })
    }

    /// Canonical fields `state` requires that are unset in `values`.
    pub fn missing_required(&self, state: &str, values: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
        self.state(state)
            .map(|s| {
                s.requires
                    .iter()
                    .filter(|f| values.get(f.as_str()).is_none_or(|v| v.is_null() || v == ""))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Priority from impact and urgency (both 1–3) through `matrix`.
pub fn derive_priority(matrix: &[[i64; 3]; 3], impact: i64, urgency: i64) -> Option<i64> {
    let i = usize::try_from(impact.checked_sub(1)?).ok()?;
    let u = usize::try_from(urgency.checked_sub(1)?).ok()?;
    matrix.get(i)?.get(u).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wf() -> Workflow {
        Workflow {
            initial: vec!["new".into()],
            states: vec![
                StateDef { name: "new".into(), label: "New".into(), category: StateCategory::Open, requires: vec![] },
                StateDef {
                    name: "resolved".into(),
                    label: "Resolved".into(),
                    category: StateCategory::Resolved,
                    requires: vec!["resolution_code".into()],
                },
            ],
            transitions: [("new".to_string(), "resolved".to_string())].into_iter().collect(),
            priority_matrix: DEFAULT_PRIORITY_MATRIX,
        }
    }

    #[test]
    fn transitions_and_requirements() {
        let w = wf();
        assert!(w.check_transition("new", "resolved").is_ok());
        assert_eq!(
            w.check_transition("resolved", "new"),
            Err(WorkflowViolation::NoSuchTransition { from: "resolved".into(), to: "new".into(), allowed: vec![] })
        );
        assert!(w.check_initial("resolved").is_err());
        let vals = json!({"resolution_code": ""}).as_object().unwrap().clone();
        assert_eq!(w.missing_required("resolved", &vals), vec!["resolution_code"]);
        let vals = json!({"resolution_code": "fixed"}).as_object().unwrap().clone();
        assert!(w.missing_required("resolved", &vals).is_empty());
    }

    #[test]
    fn priority_lookup() {
        assert_eq!(derive_priority(&DEFAULT_PRIORITY_MATRIX, 1, 1), Some(1));
        assert_eq!(derive_priority(&DEFAULT_PRIORITY_MATRIX, 2, 3), Some(4));
        assert_eq!(derive_priority(&DEFAULT_PRIORITY_MATRIX, 3, 3), Some(5));
        assert_eq!(derive_priority(&DEFAULT_PRIORITY_MATRIX, 0, 3), None);
        assert_eq!(derive_priority(&DEFAULT_PRIORITY_MATRIX, 4, 1), None);
    }
}
