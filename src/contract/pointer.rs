//! JSON Pointer (RFC 6901): addresses partner fields inside nested payloads, including keys
//! with spaces (`/data/Estimated End Date`).

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    raw: String,
    tokens: Vec<String>,
}

impl Pointer {
    /// Parses a pointer; the whole document (`""`) is not a field and is refused.
    pub fn parse(raw: &str) -> Result<Pointer, String> {
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(format!("JSON Pointer `{raw}` must start with `/`"));
        };
        let mut tokens = Vec::new();
        for token in rest.split('/') {
            if token.is_empty() {
                return Err(format!("JSON Pointer `{raw}` has an empty segment"));
            }
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(format!("JSON Pointer `{raw}`: `~` must be followed by 0 or 1")),
                    }
                } else {
                    out.push(c);
                }
            }
            tokens.push(out);
        }
        Ok(Pointer { raw: raw.to_string(), tokens })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// How a partner developer recognises the field: the key itself at the top level, the
    /// pointer when nested.
    pub fn display(&self) -> String {
        if self.tokens.len() == 1 {
            self.tokens[0].clone()
        } else {
            self.raw.clone()
        }
    }

    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        let mut cur = doc;
        for t in &self.tokens {
            cur = cur.as_object()?.get(t)?;
        }
        Some(cur)
    }

    /// Sets the value, creating intermediate objects. Returns false when a non-object stands
    /// in the way.
    pub fn set(&self, doc: &mut Value, value: Value) -> bool {
        let mut cur = doc;
        let (last, parents) = match self.tokens.split_last() {
            Some(split) => split,
            None => return false,
        };
        for t in parents {
            let Some(obj) = cur.as_object_mut() else {
                return false;
            };
            cur = obj.entry(t.clone()).or_insert_with(|| Value::Object(Map::new()));
        }
        match cur.as_object_mut() {
            Some(obj) => {
                obj.insert(last.clone(), value);
                true
            }
            None => false,
        }
    }

    /// True when `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &[String]) -> bool {
        self.tokens.len() >= other.len() && self.tokens[..other.len()] == *other
    }
}

/// Escapes one key as a pointer segment.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Members of `doc` that no declared pointer covers, as pointers. A declared pointer covers its
/// whole subtree; an object on the way to a declared pointer is walked into.
pub fn undeclared_members(doc: &Value, declared: &[&Pointer]) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk(doc, declared, &mut path, &mut out);
    out
}

fn walk(node: &Value, declared: &[&Pointer], path: &mut Vec<String>, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else { return };
    for (key, child) in obj {
        path.push(key.clone());
        if declared.iter().any(|p| p.tokens() == path.as_slice()) {
            // declared leaf: covered
        } else if declared.iter().any(|p| p.starts_with(path)) {
            walk(child, declared, path, out);
        } else {
            out.push(path.iter().map(|t| format!("/{}", escape(t))).collect());
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_with_spaces_and_escapes() {
        let p = Pointer::parse("/data/Estimated End Date").unwrap();
        let doc = json!({"data": {"Estimated End Date": "2026-01-01"}});
        assert_eq!(p.get(&doc), Some(&json!("2026-01-01")));
        assert_eq!(p.display(), "/data/Estimated End Date");
        let q = Pointer::parse("/a~1b/c~0d").unwrap();
        assert_eq!(q.tokens(), &["a/b".to_string(), "c~d".to_string()]);
        assert!(Pointer::parse("nope").is_err());
        assert!(Pointer::parse("/a//b").is_err());
        assert!(Pointer::parse("/a~2").is_err());
    }

    #[test]
    fn set_builds_nested_objects() {
        let mut doc = json!({});
        Pointer::parse("/data/title").unwrap().set(&mut doc, json!("x"));
        Pointer::parse("/data/Priority").unwrap().set(&mut doc, json!("high"));
        assert_eq!(doc, json!({"data": {"title": "x", "Priority": "high"}}));
    }

    #[test]
    fn finds_undeclared_members() {
        let a = Pointer::parse("/data/title").unwrap();
        let b = Pointer::parse("/name").unwrap();
        let doc = json!({"name": "n", "extra": 1, "data": {"title": "t", "oops": 2}});
        assert_eq!(undeclared_members(&doc, &[&a, &b]), vec!["/extra", "/data/oops"]);
    }
}
