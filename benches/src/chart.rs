//! The chart of the ratios: an SVG image written with plain string formatting, one
//! group of bars per timed row (hatchery / raw, and hatchery / reference where the row
//! has one), each with its range over the processes and the row's target.

use std::fmt::Write as _;

use crate::harness::{Line, Spread, Target, RAW, REFERENCE};

const WIDTH: f64 = 960.0;
/// Left edge of the plot; the row labels end left of it.
const X0: f64 = 330.0;
const X1: f64 = WIDTH - 50.0;
const TOP: f64 = 104.0;
const BAR: f64 = 8.0;
const RAW_COLOUR: &str = "#8c96a3";
const REF_COLOUR: &str = "#2b6cb0";
const TARGET_COLOUR: &str = "#c53030";

/// The chart of the timed rows of `lines`, with `subtitle` under its title.
pub(crate) fn svg(lines: &[Line], subtitle: &str) -> String {
    let timed: Vec<&Line> = lines
        .iter()
        .filter(|l| !l.is_bytes() && !l.is_stack() && l.ratio(RAW).is_some())
        .collect();
    let highest = timed
        .iter()
        .flat_map(|l| [l.ratio(RAW), l.ratio(REFERENCE)])
        .flatten()
        .map(|s| s.hi)
        .fold(1.5_f64, f64::max);
    // The scale ends at a multiple of 0.25, at most 3x; longer bars are cut with their
    // value written at the end.
    let max = ((highest.min(3.0)) * 4.0).ceil() / 4.0;
    let x = |r: f64| X0 + (X1 - X0) * r.clamp(0.0, max) / max;

    let mut body = String::new();
    let mut y = TOP;
    let mut group = "";
    for line in &timed {
        let name = line.workload.split(' ').next().unwrap_or("");
        if name != group {
            if !group.is_empty() {
                y += 6.0;
                let _ = writeln!(
                    body,
                    r##"<line x1="10" y1="{y:.1}" x2="{WIDTH}" y2="{y:.1}" stroke="#e2e8f0"/>"##
                );
                y += 6.0;
            }
            group = name;
        }
        let bars: Vec<(Spread, &str, bool)> = [
            line.ratio(RAW).map(|s| (s, RAW_COLOUR, false)),
            line.ratio(REFERENCE).map(|s| (s, REF_COLOUR, true)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let height = bars.len() as f64 * (BAR + 3.0);
        let _ = writeln!(
            body,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{} · {}</text>"#,
            X0 - 8.0,
            y + height / 2.0 + 4.0,
            escape(&line.workload),
            line.backend
        );
        for (spread, colour, is_ref) in bars {
            bar(&mut body, &x, max, y, spread, colour);
            if let Target::Ratio { reference, max: t } = line.target() {
                if reference == is_ref {
                    let _ = writeln!(
                        body,
                        r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{TARGET_COLOUR}" stroke-width="2"/>"#,
                        x(t),
                        y - 2.0,
                        y + BAR + 2.0
                    );
                }
            }
            y += BAR + 3.0;
        }
        y += 5.0;
    }
    let bottom = y + 4.0;
    let height = bottom + 24.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11" fill="#1a202c">"##
    );
    let _ = writeln!(
        s,
        r#"<rect width="{WIDTH}" height="{height:.0}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">hatchery's time per operation over the raw executor's (lower is better)</text>"#
    );
    let _ = writeln!(s, r#"<text x="10" y="40">{}</text>"#, escape(subtitle));
    legend(&mut s);
    // The grid: a line every 0.25, labelled every 0.5, and 1x darker.
    let mut r = 0.0;
    while r <= max + 1e-9 {
        let major = (r * 2.0).fract() == 0.0;
        let colour = if r == 1.0 { "#4a5568" } else { "#e2e8f0" };
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{colour}"/>"#,
            x(r),
            TOP - 6.0,
            bottom
        );
        if major {
            for ty in [TOP - 10.0, bottom + 14.0] {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{ty:.1}" text-anchor="middle">{r}x</text>"#,
                    x(r)
                );
            }
        }
        r += 0.25;
    }
    s.push_str(&body);
    s.push_str("</svg>\n");
    s
}

/// One bar: the median, a whisker over the range, and the median written after it.
fn bar(s: &mut String, x: &impl Fn(f64) -> f64, max: f64, y: f64, spread: Spread, colour: &str) {
    let mid = y + BAR / 2.0;
    let _ = writeln!(
        s,
        r#"<rect x="{X0:.1}" y="{y:.1}" width="{:.1}" height="{BAR}" fill="{colour}"/>"#,
        x(spread.median) - X0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="#1a202c"/>"##,
        x(spread.lo),
        x(spread.hi)
    );
    for end in [spread.lo, spread.hi] {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#1a202c"/>"##,
            x(end),
            y + 1.0,
            y + BAR - 1.0
        );
    }
    let cut = if spread.hi > max { " ›" } else { "" };
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="10">{:.2}x{cut}</text>"#,
        x(spread.hi) + 4.0,
        y + BAR,
        spread.median
    );
}

fn legend(s: &mut String) {
    let y = 56.0;
    let items = [
        (RAW_COLOUR, "hatchery / raw"),
        (
            REF_COLOUR,
            "hatchery / reference (raw + one allocation per child, a fair semaphore, \
             a hand-off by hand, a second crate)",
        ),
    ];
    let mut x = 10.0;
    for (colour, text) in items {
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{y}" width="14" height="{BAR}" fill="{colour}"/><text x="{:.0}" y="{:.0}">{text}</text>"#,
            x + 18.0,
            y + BAR
        );
        x += 26.0 + 6.2 * text.len() as f64;
    }
    let _ = writeln!(
        s,
        r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{TARGET_COLOUR}" stroke-width="2"/><text x="{}" y="{}">target</text>"#,
        y - 2.0,
        y + BAR + 2.0,
        x + 6.0,
        y + BAR
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="{}">whiskers: lowest to highest process; › : cut at the scale's end</text>"#,
        y + BAR + 14.0
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
