//! Strict JSON for request bodies: a syntax error points at its line and column; a body nested
//! deeper than the limit, an object with a duplicate member, or a NUL character anywhere is
//! refused, naming where. (A proxy that reads the first of two duplicate members and ebond
//! reading the last could disagree; PostgreSQL cannot store NUL in text.)

use super::problem::ApiError;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// Parses a request body under every rule above.
pub fn parse(body: &[u8], max_depth: usize) -> Result<Value, ApiError> {
    if depth(body) > max_depth {
        return Err(ApiError::BadRequest {
            code: "json-too-deep",
            detail: format!("the body nests JSON more than {max_depth} levels deep"),
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson {
            line: 1,
            column: 1,
            message: "the body is empty; send a JSON object".into(),
        });
    }
    let refusal = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Strict { at: &Path::Root, refusal: &refusal }.deserialize(&mut de).and_then(|v| de.end().map(|_| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => Err(match refusal.into_inner() {
            Some(Refusal::Duplicate(path)) => ApiError::BadRequest {
                code: "duplicate-key",
                detail: format!(
                    "the member `{path}` appears more than once (line {}, column {}); send each member once",
                    e.line(),
                    e.column()
                ),
            },
            Some(Refusal::Nul(path)) => ApiError::BadRequest {
                code: "nul-character",
                detail: format!(
                    "`{}` contains a NUL character (\\u0000), which no field accepts",
                    if path.is_empty() { "/" } else { &path }
                ),
            },
            None => ApiError::MalformedJson {
                line: e.line(),
                column: e.column(),
                message: e.to_string().split(" at line").next().unwrap_or_default().to_string(),
            },
        }),
    }
}

/// Nesting depth of a JSON text (brackets outside strings), without parsing it.
fn depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Why a well-formed body was refused, with the JSON Pointer of the place.
enum Refusal {
    Duplicate(String),
    Nul(String),
}

/// Where the parser is, built on the stack (rendered only for an error).
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            // JSON Pointer escapes; a NUL is shown as the JSON escape that sent it.
            Path::Key(parent, key) => {
                write!(f, "{parent}/{}", key.replace('~', "~0").replace('/', "~1").replace('\0', "\\u0000"))
            }
            Path::Index(parent, i) => write!(f, "{parent}/{i}"),
        }
    }
}

/// A `serde_json::Value` deserializer that refuses duplicate members and NUL characters.
struct Strict<'a> {
    at: &'a Path<'a>,
    refusal: &'a RefCell<Option<Refusal>>,
}

impl Strict<'_> {
    fn refuse<E: de::Error>(&self, r: Refusal) -> E {
        let msg = match &r {
            Refusal::Duplicate(p) => format!("duplicate member {p}"),
            Refusal::Nul(p) => format!("NUL character at {p}"),
        };
        *self.refusal.borrow_mut() = Some(r);
        E::custom(msg)
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        if v.contains('\0') {
            return Err(self.refuse(Refusal::Nul(self.at.to_string())));
        }
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        if v.contains('\0') {
            return Err(self.refuse(Refusal::Nul(self.at.to_string())));
        }
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let at = Path::Index(self.at, items.len());
            match seq.next_element_seed(Strict { at: &at, refusal: self.refusal })? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = Path::Key(self.at, &key);
            if key.contains('\0') {
                return Err(self.refuse(Refusal::Nul(at.to_string())));
            }
            if members.contains_key(&key) {
                return Err(self.refuse(Refusal::Duplicate(at.to_string())));
            }
            let value = map.next_value_seed(Strict { at: &at, refusal: self.refusal })?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> String {
        match parse(body.as_bytes(), 32) {
            Ok(_) => "ok".into(),
            Err(e) => format!("{}: {}", e.code(), e),
        }
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(depth(br#"{"a": [1, {"b": "[[[{{{"}]}"#), 3);
        assert_eq!(depth(br#"{"a": "\"{"}"#), 1);
        assert_eq!(depth(b"[[[[[]]]]]"), 5);
    }

    #[test]
    fn parses_what_serde_json_parses() {
        let body = r#"{"data": {"name": "ISS-1", "n": [1, -2, 3.5, true, null], "s/l~": "é"}}"#;
        assert_eq!(parse(body.as_bytes(), 32).unwrap(), serde_json::from_str::<Value>(body).unwrap());
    }

    #[test]
    fn duplicate_members_are_named() {
        let got = code(r#"{"data": {"title": "a", "x": [{"k": 1, "k": 2}]}}"#);
        assert!(got.starts_with("duplicate-key: the member `/data/x/0/k` appears more than once"), "{got}");
        assert!(code(r#"{"a": 1, "a": 1}"#).starts_with("duplicate-key: the member `/a`"));
    }

    #[test]
    fn nul_characters_are_named() {
        let got = code(r#"{"data": {"title": "a\u0000b"}}"#);
        assert!(got.starts_with("nul-character: `/data/title` contains a NUL"), "{got}");
        assert!(code(r#"{"a\u0000": 1}"#).starts_with("nul-character: `/a\\u0000`"), "{}", code(r#"{"a\u0000": 1}"#));
        assert!(code(r#"["x", "\u0000"]"#).starts_with("nul-character: `/1`"));
    }

    #[test]
    fn syntax_errors_keep_line_and_column() {
        let got = parse(b"{\n  \"a\": x\n}", 32).unwrap_err();
        assert!(matches!(got, ApiError::MalformedJson { line: 2, .. }), "{got:?}");
        assert!(matches!(parse(b"  ", 32), Err(ApiError::MalformedJson { .. })));
        assert!(matches!(parse(b"{} x", 32), Err(ApiError::MalformedJson { .. })));
        assert_eq!(parse(b"[[[1]]]", 2).unwrap_err().code(), "json-too-deep");
    }
}
