//! The plot of added cost per syscall against the number of busy cgroups, drawn as
//! SVG text by hand (a log x axis, a linear y axis, the measured line and the
//! target's limit): one small picture needs no plotting crate.

use std::fmt::Write as _;

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// `points` are (busy cgroups, added ns per syscall); `limit` is the target's line
/// (1.1x the one-cgroup figure), if known.
pub fn scale_svg(points: &[(f64, f64)], limit: Option<f64>) -> String {
    let points: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| *x >= 1.0 && y.is_finite()).collect();
    let decades = points.iter().map(|(x, _)| x.log10().ceil()).fold(1.0, f64::max);
    let top = points.iter().map(|&(_, y)| y).chain(limit).fold(1.0, f64::max);
    let y_max = nice_ceiling(top * 1.15);
    let bottom = points.iter().map(|&(_, y)| y).fold(0.0, f64::min);
    let y_min = if bottom < 0.0 { -nice_ceiling(-bottom * 1.15) } else { 0.0 };
    let px = |x: f64| LEFT + x.log10() / decades * (W - LEFT - RIGHT);
    let py = |y: f64| TOP + (y_max - y) / (y_max - y_min) * (H - TOP - BOTTOM);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">observer agent: added cost per syscall against busy cgroups</text>"#,
        W / 2.0
    );
    // Axes, with a grid line per decade and per y step.
    for d in 0..=decades as u32 {
        let x = px(10f64.powi(d as i32));
        let _ = writeln!(s, r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##, H - BOTTOM);
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            H - BOTTOM + 18.0,
            group_thousands(10u64.pow(d))
        );
    }
    let step = (y_max - y_min) / 5.0;
    let mut y = y_min;
    while y <= y_max + step / 2.0 {
        let yy = py(y);
        let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/>"##, W - RIGHT);
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{y:.0}</text>"#, LEFT - 6.0, yy + 4.0);
        y += step;
    }
    let _ = writeln!(
        s,
        r#"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="black"/>"#,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">busy cgroups (log scale)</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 16.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">added ns per syscall</text>"#,
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0
    );
    if let Some(l) = limit {
        let yy = py(l);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#c33" stroke-dasharray="6 4"/>"##,
            W - RIGHT
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#c33">target: 1.1x the one-cgroup figure ({l:.0} ns)</text>"##,
            W - RIGHT - 6.0,
            yy - 6.0
        );
    }
    let line: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
    let _ = writeln!(s, r##"<polyline points="{}" fill="none" stroke="#2266cc" stroke-width="2"/>"##, line.join(" "));
    for &(x, y) in &points {
        let (cx, cy) = (px(x), py(y));
        let _ = writeln!(s, r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="4" fill="#2266cc"/>"##);
        let _ = writeln!(s, r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle">{y:.0}</text>"#, cy - 9.0);
    }
    s.push_str("</svg>\n");
    s
}

/// The smallest of 1, 2, 2.5, 5 times a power of ten at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * p).find(|&c| c >= v).unwrap_or(10.0 * p)
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_point_and_the_limit() {
        let svg = scale_svg(&[(1.0, 100.0), (10.0, 101.0), (10_000.0, 120.0)], Some(110.0));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("10,000"));
        assert!(svg.contains("target: 1.1x"));
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(138.0), 200.0);
        assert_eq!(nice_ceiling(230.0), 250.0);
        assert_eq!(nice_ceiling(9.0), 10.0);
    }
}
