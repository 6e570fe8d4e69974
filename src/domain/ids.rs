//! Identifiers parsed once, at the edge (contract load, path, CLI argument): past that point
//! the core never sees an unchecked one.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $name::parse(&s)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::parse(s)
            }
        }
    };
}

id_type!(
    /// A partner's id: 1 to 64 characters of a-z, 0-9, `-` and `_` (a contract's `[partner] id`).
    PartnerId
);

id_type!(
    /// A hub ticket number: `EB` and at least seven digits (`EB0000042`).
    TicketNumber
);

id_type!(
    /// What a partner names a ticket by: its own ticket id, or the hub number of a ticket shared
    /// with it. 1 to 255 characters, none of them a control character (NUL included).
    TicketReference
);

impl PartnerId {
    pub fn parse(s: &str) -> Result<PartnerId, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(PartnerId(s.to_string()))
        } else {
            Err("a partner id is 1–64 characters of a-z, 0-9, `-` or `_`".into())
        }
    }
}

impl TicketNumber {
    pub fn parse(s: &str) -> Result<TicketNumber, String> {
        match s.strip_prefix("EB") {
            Some(digits) if digits.len() >= 7 && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(TicketNumber(s.to_string()))
            }
            _ => Err(format!("`{}` is not a hub ticket number such as EB0000042", shown(s))),
        }
    }
}

impl TicketReference {
    pub fn parse(s: &str) -> Result<TicketReference, String> {
        // `.` and `..` would not survive in a URL path (clients normalise them away).
        if s.is_empty() || s == "." || s == ".." || s.chars().count() > 255 || s.chars().any(char::is_control) {
            Err(format!("`{}` is not a ticket id: 1 to 255 characters, no control characters, not . or ..", shown(s)))
        } else {
            Ok(TicketReference(s.to_string()))
        }
    }
}

/// `s` for a message: control characters escaped, at most 80 characters.
fn shown(s: &str) -> String {
    s.chars().take(80).flat_map(char::escape_debug).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_ids() {
        assert!(PartnerId::parse("acme-msp").is_ok() && PartnerId::parse("a_1").is_ok());
        for bad in ["", "Acme", "acme msp", "acme/1", &"a".repeat(65)] {
            assert!(PartnerId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PartnerId::parse("enovia").unwrap(), "enovia");
    }

    #[test]
    fn ticket_numbers() {
        assert!(TicketNumber::parse("EB0000042").is_ok() && TicketNumber::parse("EB12345678").is_ok());
        for bad in ["", "EB12", "eb0000042", "EB00000x2", "INC0000042", "EB\u{0}000000"] {
            assert!(TicketNumber::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TicketNumber::parse("EB\u{0}").unwrap_err().contains("EB\\0"));
    }

    #[test]
    fn ticket_references() {
        for ok in ["INC0010001", "ISS-0000001", "EB0000001", "Ticket 7 / Line 3"] {
            assert!(TicketReference::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a\u{0}b", "line\nbreak", &"x".repeat(256)] {
            assert!(TicketReference::parse(bad).is_err(), "{bad:?}");
        }
        let r: TicketReference = serde_json::from_str("\"INC1\"").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"INC1\"");
        assert!(serde_json::from_str::<TicketReference>("\"\"").is_err());
    }
}
