//! `[pull]` → the list endpoint, how the window's start is sent, where records and their change
//! times are, how pages continue, page size, interval and overlap.

use super::outbound::check_url;
use super::*;

/// Most records one page may ask for: what keeps a run's memory bounded.
pub const MAX_BATCH: i64 = 1000;

pub(super) fn compile_pull(loc: &mut Locator, p: &raw::RawPull) -> Pull {
    check_url(loc, &p.list_url);
    let list_url = p.list_url.get_ref().clone();
    let in_url = list_url.contains("{since}");
    let since_param = p.since_param.as_ref().map(|s| s.get_ref().clone());
    match (&p.since_param, in_url) {
        (None, false) => loc.at(
            &p.list_url,
            "[pull] needs `since_param` (the query parameter carrying the window's start) or `{since}` in list_url",
        ),
        (Some(s), true) => {
            loc.at(s, "give the window's start either as `{since}` in list_url or as since_param, not both")
        }
        _ => {}
    }
    let format = |loc: &mut Locator, f: &Option<Spanned<String>>| -> Option<TimeFormat> {
        let f = f.as_ref()?;
        let parsed = TimeFormat::parse(f.get_ref());
        if let TimeFormat::Pattern(pattern) = &parsed {
            // Checked before anything formats with it: chrono panics on an invalid item.
            let items = chrono::format::StrftimeItems::new(pattern);
            if items.into_iter().any(|i| matches!(i, chrono::format::Item::Error)) || !pattern.contains('%') {
                loc.at(f, format!("`{pattern}` is not a time format: use rfc3339, unix, unix_ms or a chrono format such as %Y-%m-%d %H:%M:%S"));
                return Some(TimeFormat::Rfc3339);
            }
        }
        Some(parsed)
    };
    let since_format = format(loc, &p.since_format).unwrap_or(TimeFormat::Rfc3339);
    let updated_format = format(loc, &p.updated_format).unwrap_or_else(|| since_format.clone());
    let pointer = |loc: &mut Locator, raw: &Spanned<String>| match Pointer::parse(raw.get_ref()) {
        Ok(p) => Some(p),
        Err(e) => {
            loc.at(raw, e);
            None
        }
    };
    let updated_pointer = pointer(loc, &p.updated_pointer);
    let records_pointer = p.records_pointer.as_ref().and_then(|r| pointer(loc, r));
    let paging = match p.paging.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("offset") => Paging::Offset { param: p.offset_param.clone().unwrap_or_else(|| "offset".into()) },
        Some("cursor") => match &p.cursor_pointer {
            Some(c) => match pointer(loc, c) {
                Some(ptr) => {
                    Paging::Cursor { pointer: ptr, param: p.cursor_param.clone().unwrap_or_else(|| "cursor".into()) }
                }
                None => Paging::Link,
            },
            None => {
                if let Some(s) = &p.paging {
                    loc.at(s, "cursor paging needs `cursor_pointer`: where the next page's cursor is in a page");
                }
                Paging::Link
            }
        },
        Some("link") => Paging::Link,
        Some(other) => {
            if let Some(s) = &p.paging {
                loc.at(s, format!("unknown paging `{other}`: use offset, cursor or link"));
            }
            Paging::Link
        }
    };
    let batch_size = match &p.batch_size {
        Some(b) if (1..=MAX_BATCH).contains(b.get_ref()) => *b.get_ref() as u32,
        Some(b) => {
            loc.at(b, format!("batch_size must be between 1 and {MAX_BATCH}"));
            100
        }
        None => 100,
    };
    let duration = |loc: &mut Locator, d: &Option<Spanned<String>>, default: Duration, what: &str| match d {
        Some(d) => parse_duration(d.get_ref()).unwrap_or_else(|| {
            loc.at(d, format!("{what} is not a duration; write e.g. 30s, 5m, 1h"));
            default
        }),
        None => default,
    };
    let backfill = match &p.backfill {
        Some(b) if b.get_ref() == "all" => None,
        Some(b) => Some(parse_duration(b.get_ref()).unwrap_or_else(|| {
            loc.at(b, "backfill is how far back the first run reaches: a duration (e.g. 1d) or \"all\"");
            Duration::from_secs(86_400)
        })),
        None => Some(Duration::from_secs(86_400)),
    };
    let interval = duration(loc, &p.interval, Duration::from_secs(300), "interval");
    let overlap = duration(loc, &p.overlap, Duration::from_secs(60), "overlap");
    if interval.is_zero() {
        if let Some(i) = &p.interval {
            loc.at(i, "interval must be longer than 0");
        }
    }
    Pull {
        list_url,
        since_param,
        since_format,
        // A refused pointer was reported; the placeholder is never used (the contract fails).
        updated_pointer: updated_pointer.unwrap_or_else(|| Pointer::parse("/updated").expect("valid pointer")),
        updated_format,
        records_pointer,
        paging,
        limit_param: p.limit_param.clone().unwrap_or_else(|| "limit".into()),
        batch_size,
        interval,
        overlap,
        backfill,
    }
}
