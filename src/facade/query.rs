//! ServiceNow encoded queries (`sysparm_query`) parsed into conditions and orderings: the
//! joiners `^` (and), `^OR` (or, binding to the condition before it) and `^NQ` (a new group
//! or'ed with the others), `ORDERBY` / `ORDERBYDESC`, and the operators the clients generate.
//! Pure: which fields exist and what their values mean is the plan's business.

/// A comparison of one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Like,
    NotLike,
    StartsWith,
    EndsWith,
    In,
    NotIn,
    IsEmpty,
    IsNotEmpty,
    Anything,
    EmptyString,
    Between,
}

impl Op {
    /// Negative operators also match an empty field (a ticket with no value is not equal to,
    /// nor like, nor in anything).
    pub fn negative(self) -> bool {
        matches!(self, Op::Ne | Op::NotLike | Op::NotIn)
    }
}

/// Operators by their spelling, longest first where one is a prefix of another; those that
/// take no value are marked.
const OPERATORS: &[(&str, Op, bool)] = &[
    ("ISNOTEMPTY", Op::IsNotEmpty, false),
    ("ISEMPTY", Op::IsEmpty, false),
    ("ANYTHING", Op::Anything, false),
    ("EMPTYSTRING", Op::EmptyString, false),
    ("NOT LIKE", Op::NotLike, true),
    ("DOES NOT CONTAIN", Op::NotLike, true),
    ("NOT IN", Op::NotIn, true),
    ("STARTSWITH", Op::StartsWith, true),
    ("ENDSWITH", Op::EndsWith, true),
    ("BETWEEN", Op::Between, true),
    ("CONTAINS", Op::Like, true),
    ("LIKE", Op::Like, true),
    ("IN", Op::In, true),
    ("!=", Op::Ne, true),
    (">=", Op::Ge, true),
    ("<=", Op::Le, true),
    ("=", Op::Eq, true),
    (">", Op::Gt, true),
    ("<", Op::Lt, true),
];

/// Operators ServiceNow has that the facade does not answer (named in the refusal).
const UNSUPPORTED: &[&str] = &[
    "SAMEAS",
    "NSAMEAS",
    "DYNAMIC",
    "INSTANCEOF",
    "VALCHANGES",
    "CHANGESFROM",
    "CHANGESTO",
    "ON",
    "NOTON",
    "DATEPART",
    "RELATIVE",
    "MORETHAN",
    "LESSTHAN",
    "GT_FIELD",
    "LT_FIELD",
    "GT_OR_EQUALS_FIELD",
    "LT_OR_EQUALS_FIELD",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    /// As written (empty for the operators that take none).
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub field: String,
    pub desc: bool,
}

/// `groups` are or'ed (`^NQ`); each is a conjunction (`^`) of disjunctions (`^OR`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedQuery {
    pub groups: Vec<Vec<Vec<Condition>>>,
    pub order: Vec<Order>,
}

/// Why a query was refused: the message names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("`{term}` names no field you may read or query{hint}")]
    UnknownField { term: String, field: String, hint: String },
    #[error("`{term}`: {detail}")]
    Unsupported { term: String, detail: String },
    #[error("`{term}`: {detail}")]
    Malformed { term: String, detail: String },
}

/// Parses `q`. `fields` are the names a condition or ordering may use; a condition is split
/// into field and operator by the longest of them that is followed by an operator, since
/// field names and operators are written together (`short_descriptionLIKEdisk`).
pub fn parse(q: &str, fields: &[&str]) -> Result<EncodedQuery, QueryError> {
    let mut sorted: Vec<&str> = fields.to_vec();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let mut out = EncodedQuery::default();
    let mut group: Vec<Vec<Condition>> = Vec::new();
    for raw in q.split('^') {
        let term = raw.trim_start_matches(' ');
        if term.is_empty() || term == "EQ" {
            continue;
        }
        if let Some(f) = term.strip_prefix("ORDERBYDESC") {
            out.order.push(Order { field: order_field(f, term, &sorted)?, desc: true });
            continue;
        }
        if let Some(f) = term.strip_prefix("ORDERBY") {
            out.order.push(Order { field: order_field(f, term, &sorted)?, desc: false });
            continue;
        }
        if term.starts_with("JOIN") || term.starts_with("RLQUERY") || term.starts_with("ENDRLQUERY") {
            return Err(QueryError::Unsupported {
                term: term.to_string(),
                detail: "JOIN and RLQUERY (related-list) queries are not supported by this Table-API facade".into(),
            });
        }
        if let Some(rest) = term.strip_prefix("NQ") {
            if let Ok(c) = condition(rest, &sorted) {
                if !group.is_empty() {
                    out.groups.push(std::mem::take(&mut group));
                }
                group.push(vec![c]);
                continue;
            }
        }
        if let Some(rest) = term.strip_prefix("OR") {
            if let Ok(c) = condition(rest, &sorted) {
                match group.last_mut() {
                    Some(last) => last.push(c),
                    None => group.push(vec![c]),
                }
                continue;
            }
        }
        group.push(vec![condition(term, &sorted)?]);
    }
    if !group.is_empty() {
        out.groups.push(group);
    }
    Ok(out)
}

fn order_field(f: &str, term: &str, fields: &[&str]) -> Result<String, QueryError> {
    match fields.iter().find(|k| **k == f) {
        Some(k) => Ok(k.to_string()),
        None if f.contains('.') => Err(dot_walk(term)),
        None => Err(QueryError::UnknownField { term: term.to_string(), field: f.to_string(), hint: String::new() }),
    }
}

fn dot_walk(term: &str) -> QueryError {
    QueryError::Unsupported {
        term: term.to_string(),
        detail: "dot-walked fields (reference.field) are not supported by this Table-API facade".into(),
    }
}

fn condition(term: &str, fields: &[&str]) -> Result<Condition, QueryError> {
    for field in fields {
        let Some(rest) = term.strip_prefix(field) else { continue };
        if let Some((spelling, op, takes_value)) = OPERATORS.iter().find(|(s, _, _)| rest.starts_with(s)) {
            let value = &rest[spelling.len()..];
            if !takes_value && !value.is_empty() {
                // `stateISEMPTYx` is not `state` ISEMPTY: try a longer reading, else refuse.
                continue;
            }
            return Ok(Condition { field: field.to_string(), op: *op, value: value.to_string() });
        }
        if let Some(op) = UNSUPPORTED.iter().find(|u| rest.starts_with(*u)) {
            return Err(QueryError::Unsupported {
                term: term.to_string(),
                detail: format!("the operator {op} is not supported by this Table-API facade"),
            });
        }
    }
    // Name what the caller meant: the text before the first operator.
    let cut = OPERATORS
        .iter()
        .map(|(s, _, _)| *s)
        .chain(UNSUPPORTED.iter().copied())
        .filter_map(|s| term.find(s))
        .filter(|i| *i > 0)
        .min()
        .unwrap_or(term.len());
    let field = &term[..cut];
    if field.contains('.') {
        return Err(dot_walk(term));
    }
    if cut == term.len() {
        return Err(QueryError::Malformed {
            term: term.to_string(),
            detail: "a condition is field, operator and value, e.g. `active=true` or `short_descriptionLIKEdisk`"
                .into(),
        });
    }
    let hint = match fields.iter().find(|f| f.eq_ignore_ascii_case(field)) {
        Some(f) => format!(" (field names are case-sensitive: did you mean `{f}`?)"),
        None => String::new(),
    };
    Err(QueryError::UnknownField { term: term.to_string(), field: field.to_string(), hint })
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &[&str] = &["state", "short_description", "priority", "sys_id", "sys_updated_on", "number", "in"];

    fn c(field: &str, op: Op, value: &str) -> Condition {
        Condition { field: field.into(), op, value: value.into() }
    }

    #[test]
    fn every_operator_is_read() {
        let cases = [
            ("state=2", Op::Eq, "2"),
            ("state!=2", Op::Ne, "2"),
            ("priority>2", Op::Gt, "2"),
            ("priority>=2", Op::Ge, "2"),
            ("priority<2", Op::Lt, "2"),
            ("priority<=2", Op::Le, "2"),
            ("short_descriptionLIKEdisk", Op::Like, "disk"),
            ("short_descriptionNOT LIKEdisk", Op::NotLike, "disk"),
            ("short_descriptionSTARTSWITHdisk", Op::StartsWith, "disk"),
            ("short_descriptionENDSWITHfull", Op::EndsWith, "full"),
            ("stateIN1,2", Op::In, "1,2"),
            ("stateNOT IN1,2", Op::NotIn, "1,2"),
            ("stateISEMPTY", Op::IsEmpty, ""),
            ("stateISNOTEMPTY", Op::IsNotEmpty, ""),
            ("stateANYTHING", Op::Anything, ""),
            ("short_descriptionEMPTYSTRING", Op::EmptyString, ""),
            ("priorityBETWEEN1@3", Op::Between, "1@3"),
            ("short_descriptionCONTAINSdisk", Op::Like, "disk"),
        ];
        for (q, op, v) in cases {
            let parsed = parse(q, F).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(parsed.groups[0][0][0].op, op, "{q}");
            assert_eq!(parsed.groups[0][0][0].value, v, "{q}");
        }
    }

    #[test]
    fn joiners_bind_as_servicenow_does() {
        let q = parse("state=1^ORstate=2^priority=1^NQnumber=EB1^EQ", F).unwrap();
        assert_eq!(
            q.groups,
            vec![
                vec![vec![c("state", Op::Eq, "1"), c("state", Op::Eq, "2")], vec![c("priority", Op::Eq, "1")]],
                vec![vec![c("number", Op::Eq, "EB1")]],
            ]
        );
    }

    #[test]
    fn orderings_repeat_and_values_keep_operators() {
        let q = parse("short_description=a=b^ORDERBYDESCsys_updated_on^ORDERBYsys_id", F).unwrap();
        assert_eq!(q.groups[0][0][0], c("short_description", Op::Eq, "a=b"));
        assert_eq!(
            q.order,
            vec![Order { field: "sys_updated_on".into(), desc: true }, Order { field: "sys_id".into(), desc: false }]
        );
        assert_eq!(parse("", F).unwrap(), EncodedQuery::default());
        // A field called `in` is not the IN operator of another field.
        assert_eq!(parse("in=1", F).unwrap().groups[0][0][0], c("in", Op::Eq, "1"));
    }

    #[test]
    fn refusals_name_the_part_at_fault() {
        let e = parse("caller_id=abc", F).unwrap_err();
        assert!(matches!(&e, QueryError::UnknownField { field, .. } if field == "caller_id"), "{e:?}");
        let e = parse("State=1", F).unwrap_err();
        assert!(e.to_string().contains("did you mean `state`"), "{e}");
        assert!(matches!(parse("caller_id.name=x", F), Err(QueryError::Unsupported { .. })));
        assert!(matches!(parse("JOINincident.sys_id=task.sys_id!state=1", F), Err(QueryError::Unsupported { .. })));
        assert!(matches!(parse("RLQUERYtask.parent,>=1^ENDRLQUERY", F), Err(QueryError::Unsupported { .. })));
        assert!(matches!(parse("stateSAMEASpriority", F), Err(QueryError::Unsupported { .. })));
        assert!(matches!(parse("garbage", F), Err(QueryError::Malformed { .. })));
        assert!(matches!(parse("ORDERBYnope", F), Err(QueryError::UnknownField { .. })));
        // Injection attempts are just unknown field names.
        // The whole rest is the value of `state`, bound as a parameter later.
        assert_eq!(
            parse("state=1 OR 1=1; DROP TABLE tickets--", F).unwrap().groups[0][0][0].value,
            "1 OR 1=1; DROP TABLE tickets--"
        );
        assert!(matches!(parse("1=1", F), Err(QueryError::UnknownField { .. })));
    }
}
