//! The overview's small chart, drawn on the server as SVG: one partner's delivery attempts
//! per hour over the last 24 hours, successes and failures stacked. Presentation attributes
//! only (the console's Content-Security-Policy allows no inline style).

use crate::store::console::HourCount;
use maud::{html, Markup};

const HOURS: usize = 24;
const WIDTH: f64 = 288.0;
const HEIGHT: f64 = 64.0;
const BAR: f64 = WIDTH / HOURS as f64;

/// Per hour, oldest first, ending with the hour that holds `now`: (delivered, failed).
pub fn buckets(counts: &[HourCount], now_ms: i64) -> [(i64, i64); HOURS] {
    let mut out = [(0, 0); HOURS];
    let this_hour = now_ms / 3_600_000;
    for c in counts {
        let back = this_hour - c.hour;
        if (0..HOURS as i64).contains(&back) {
            let slot = HOURS - 1 - back as usize;
            out[slot] = (c.attempts - c.failures, c.failures);
        }
    }
    out
}

/// The chart of `partner`'s last 24 hours.
pub fn deliveries(partner: &str, counts: &[HourCount], now_ms: i64) -> Markup {
    let b = buckets(counts, now_ms);
    let peak = b.iter().map(|(ok, bad)| ok + bad).max().unwrap_or(0).max(1) as f64;
    let (delivered, failed): (i64, i64) = b.iter().fold((0, 0), |(a, f), (ok, bad)| (a + ok, f + bad));
    let label = format!("{partner}: {delivered} delivered and {failed} failed attempts in the last 24 hours");
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {}", HEIGHT + 14.0))
            width=(WIDTH) height=(HEIGHT + 14.0) role="img" aria-label=(label) {
            title { (label) }
            line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) stroke="#c5ccd6" stroke-width="1" {}
            @for (i, (ok, bad)) in b.iter().enumerate() {
                @let x = i as f64 * BAR + 1.0;
                @let h_ok = *ok as f64 / peak * (HEIGHT - 4.0);
                @let h_bad = *bad as f64 / peak * (HEIGHT - 4.0);
                @if *ok > 0 {
                    rect x=(fmt(x)) y=(fmt(HEIGHT - h_ok)) width=(fmt(BAR - 2.0)) height=(fmt(h_ok)) fill="#2f7d4f" {
                        title { (format!("{} h ago: {ok} delivered", HOURS - 1 - i)) }
                    }
                }
                @if *bad > 0 {
                    rect x=(fmt(x)) y=(fmt(HEIGHT - h_ok - h_bad)) width=(fmt(BAR - 2.0)) height=(fmt(h_bad)) fill="#c0392b" {
                        title { (format!("{} h ago: {bad} failed", HOURS - 1 - i)) }
                    }
                }
            }
            text x="0" y=(HEIGHT + 12.0) font-size="10" fill="#5b6574" { "24 h ago" }
            text x=(WIDTH) y=(HEIGHT + 12.0) font-size="10" fill="#5b6574" text-anchor="end" { "now" }
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_land_in_their_slots() {
        let now = 100 * 3_600_000 + 5;
        let counts = vec![
            HourCount { hour: 100, attempts: 5, failures: 2 },
            HourCount { hour: 77, attempts: 1, failures: 1 },
            HourCount { hour: 76, attempts: 9, failures: 0 }, // 24 h back: off the chart
        ];
        let b = buckets(&counts, now);
        assert_eq!(b[23], (3, 2));
        assert_eq!(b[0], (0, 1));
        assert_eq!(b.iter().map(|(a, f)| a + f).sum::<i64>(), 6);
        let svg = deliveries("acme", &counts, now).into_string();
        assert!(svg.contains("3 delivered and 3 failed"), "{svg}");
        assert!(!svg.contains("style="), "no inline style under the CSP");
    }
}
