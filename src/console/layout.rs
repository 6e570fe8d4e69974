//! The page shell every console page shares: navigation, the stylesheet, the security
//! headers (a strict Content-Security-Policy whose nonce lets only our inline script run),
//! timestamps, numbers, pagers and the small building blocks of forms.

use super::form::CSRF_FIELD;
use super::Viewer;
use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The sections of the console, in the navigation's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    DeadLetters,
    Conflicts,
    Reconcile,
    Tickets,
    Audit,
    AuthEvents,
    Contracts,
}

const NAV: [(Nav, &str, &str); 8] = [
    (Nav::Overview, "/console/", "Overview"),
    (Nav::DeadLetters, "/console/dead-letters", "Dead letters"),
    (Nav::Conflicts, "/console/conflicts", "Conflicts"),
    (Nav::Reconcile, "/console/reconcile", "Reconciliation"),
    (Nav::Tickets, "/console/tickets", "Tickets"),
    (Nav::Audit, "/console/audit", "Audit"),
    (Nav::AuthEvents, "/console/auth-events", "Auth events"),
    (Nav::Contracts, "/console/contracts", "Contracts"),
];

const STYLESHEET: &str = include_str!("console.css");

/// Shows every `<time>` in the viewer's own zone, keeping UTC in its title (hover). Without
/// it the page shows UTC.
const LOCAL_TIME_SCRIPT: &str = r#"document.querySelectorAll("time[datetime]").forEach(function (t) {
  var d = new Date(t.getAttribute("datetime"));
  if (!isNaN(d)) { t.textContent = d.toLocaleString(undefined, {dateStyle: "medium", timeStyle: "medium"}); }
});"#;

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(STYLESHEET)
}

/// A fresh nonce for one response's script.
fn nonce() -> String {
    crate::util::random_token(16).unwrap_or_else(|_| uuid::Uuid::new_v4().simple().to_string())
}

/// The response for a rendered page, with the console's security headers.
fn respond(status: StatusCode, nonce: &str, body: Markup) -> HttpResponse {
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body.into_string())
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · ebond console" }
            link rel="stylesheet" href="/console/static/console.css";
        }
    }
}

/// A page of the signed-in console.
pub fn page(viewer: &Viewer, active: Nav, title: &str, body: Markup) -> HttpResponse {
    page_with(StatusCode::OK, viewer, active, title, body)
}

/// [`page`] with another status (a refused form shown again, say).
pub fn page_with(status: StatusCode, viewer: &Viewer, active: Nav, title: &str, body: Markup) -> HttpResponse {
    let nonce = nonce();
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/" { "ebond" }
                    nav aria-label="Console" {
                        ul {
                            @for (nav, href, label) in NAV {
                                li {
                                    @if nav == active {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/console/sign-out" {
                        (csrf(viewer))
                        span.who {
                            (viewer.client_id)
                            @if viewer.read_only { " (read-only)" }
                        }
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" {
                    @if viewer.read_only {
                        p.notice role="note" { "You are signed in with a read-only credential: you may look at everything, and the gateway refuses every action." }
                    }
                    h1 { (title) }
                    (body)
                }
                script nonce=(nonce) { (PreEscaped(LOCAL_TIME_SCRIPT)) }
            }
        }
    };
    respond(status, &nonce, doc)
}

/// A page outside the session: sign-in, or a refusal.
pub fn bare_page(status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    let nonce = nonce();
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    respond(status, &nonce, doc)
}

/// A refusal: what happened, and the way back.
pub fn bare(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    bare_page(
        status,
        title,
        html! {
            p.error role="alert" { (message) }
            p { a href="/console/" { "Back to the console" } }
        },
    )
}

/// The hidden CSRF field of a form.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(viewer.csrf); }
}

/// A one-button form posting to `action` (with the session's CSRF token).
pub fn button(viewer: &Viewer, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(viewer))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A timestamp: UTC in the markup and on hover, the viewer's zone once the script ran.
pub fn when(ms: i64) -> Markup {
    let iso = crate::util::ms_to_rfc3339(ms);
    let shown = chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| iso.clone());
    html! { time datetime=(iso) title=(format!("{iso} (UTC)")) { (shown) } }
}

/// [`when`] of a time already written as RFC 3339 (the shared operator views carry text).
pub fn when_text(rfc3339: &str) -> Markup {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => when(t.timestamp_millis()),
        Err(_) => html! { (rfc3339) },
    }
}

/// [`when`] of an optional time.
pub fn when_opt(ms: Option<i64>) -> Markup {
    match ms {
        Some(ms) => when(ms),
        None => html! { span.muted { "—" } },
    }
}

/// A duration in the largest unit that reads well.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{:.1} h", s as f64 / 3600.0),
        _ => format!("{:.1} d", s as f64 / 86_400.0),
    }
}

/// A count with thousands separators.
pub fn count(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A status word as a badge (its class gives the colour).
pub fn badge(word: &str) -> Markup {
    let class = match word {
        "delivered" | "succeeded" | "accepted" | "closed" | "resolved" | "success" | "in step" | "ok" => "good",
        "dead" | "failed" | "rejected" | "open" | "failing" | "failure" | "refused" | "error" => "bad",
        "pending" | "in_flight" | "running" | "paused" | "half-open" | "held" | "warning" => "warn",
        _ => "plain",
    };
    html! { span class=(format!("badge {class}")) { (word) } }
}

/// A query string of the non-empty pairs (`?a=1&b=2`, or empty).
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let kept: Vec<(&str, &str)> =
        pairs.iter().filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (*k, v))).collect();
    if kept.is_empty() {
        return String::new();
    }
    format!("?{}", serde_urlencoded::to_string(kept).unwrap_or_default())
}

/// A labelled select of `options` (value, label) with `chosen` selected.
pub fn select(name: &str, label: &str, options: &[(String, String)], chosen: Option<&str>) -> Markup {
    html! {
        label for=(name) { (label) }
        select id=(name) name=(name) {
            @for (value, text) in options {
                option value=(value) selected[chosen == Some(value.as_str())] { (text) }
            }
        }
    }
}

/// "Older" link of a newest-first page.
pub fn pager(base: &str, next: Option<String>) -> Markup {
    html! {
        @if let Some(href) = next {
            nav.pager aria-label="Pages" { a href=(format!("{base}{href}")) rel="next" { "Older →" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ages_read_well() {
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(count(999), "999");
        assert_eq!(count(-12_345), "-12,345");
        assert_eq!(age(59_000), "59 s");
        assert_eq!(age(7_200_000), "2.0 h");
        assert_eq!(age(3 * 86_400_000), "3.0 d");
    }

    #[test]
    fn queries_keep_only_what_is_set() {
        assert_eq!(
            query(&[("partner", Some("acme".into())), ("event", None), ("x", Some(String::new()))]),
            "?partner=acme"
        );
        assert_eq!(query(&[("q", Some("a b&c".into()))]), "?q=a+b%26c");
        assert_eq!(query(&[]), "");
    }

    #[test]
    fn times_carry_utc_for_hover_and_script() {
        let t = when(0).into_string();
        assert!(t.contains(r#"datetime="1970-01-01T00:00:00.000Z""#), "{t}");
        assert!(t.contains("1970-01-01 00:00:00 UTC"), "{t}");
    }
}
