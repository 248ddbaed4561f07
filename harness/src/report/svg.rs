//! The address plot: each device access as a point, bus address (x) against
//! translated address (y), with the 4 GiB line on both axes. Linear axes
//! with one tick per GiB (or per 2/4/8 GiB when wide): the question the plot
//! answers is "which side of 4 GiB", which a log scale would blur. A page
//! a guest granted is marked above the plot at its guest-physical address
//! in dom0, which is the bus address it would have on a PVH dom0 without a
//! bounce: whether it can reach a 32-bit device at all, even when its
//! mapping failed and the device saw nothing.

use crate::verdict::hex;
use std::fmt::Write;

const GIB: u64 = 1 << 30;
const W: f64 = 860.0;
const H: f64 = 480.0;
const LEFT: f64 = 90.0;
// Room right of the plot for the legend, which must not hide points: bus
// addresses cluster near 0 and translations near the top of memory.
const RIGHT: f64 = 240.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 70.0;

/// One access to plot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub bus: u64,
    /// `None`: no translation known (drawn on a strip under the x axis).
    pub translated: Option<u64>,
    /// The IOMMU refused it (drawn as a red cross on that strip).
    pub fault: bool,
    /// Not an access but a guest's granted page at dom0 guest-physical
    /// `bus` (a purple triangle above the plot).
    pub grant: bool,
    /// Tooltip text.
    pub label: String,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The axis's end (a whole number of GiB, at least 5 so 4 GiB is inside) and tick step.
fn axis(max: u64) -> (u64, u64) {
    let gib = (max / GIB + 1).max(5);
    let step = match gib {
        0..=16 => 1,
        17..=32 => 2,
        33..=64 => 4,
        _ => gib.div_ceil(16),
    };
    (gib.div_ceil(step) * step * GIB, step * GIB)
}

/// An inline SVG document (no external assets).
pub fn plot(points: &[Point]) -> String {
    let max = points
        .iter()
        .flat_map(|p| [p.bus, p.translated.unwrap_or(0)])
        .max()
        .unwrap_or(0);
    let (end, step) = axis(max);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |a: u64| LEFT + pw * (a as f64 / end as f64);
    let y = |a: u64| TOP + ph - ph * (a as f64 / end as f64);
    let strip = TOP + ph + 22.0; // untranslated / faulting accesses
    let grants = TOP - 12.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#444"/>"##
    );
    let mut t = 0;
    while t <= end {
        let gib = t / GIB;
        let (tx, ty) = (x(t), y(t));
        let _ = write!(
            s,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{gib}G</text>"##,
            TOP + ph,
            TOP + ph + 14.0
        );
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{gib}G</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            ty + 4.0
        );
        t += step;
    }
    // The 4 GiB line on both axes: a 32-bit device's limit.
    let (gx, gy) = (x(4 * GIB), y(4 * GIB));
    let _ = write!(
        s,
        r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{:.1}" stroke="#c00" stroke-dasharray="6 4"/><line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#c00" stroke-dasharray="6 4"/>"##,
        TOP + ph,
        LEFT + pw
    );
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">bus address (what the device was given)</text><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">translated address (where it went)</text>"##,
        LEFT + pw / 2.0,
        H - 8.0,
        TOP + ph / 2.0
    );
    let _ = write!(
        s,
        r#"<text x="8" y="{:.1}" font-size="9">no translation</text>"#,
        strip + 3.0
    );
    for p in points {
        let px = x(p.bus);
        let title = format!("<title>{}</title>", escape(&p.label));
        if p.grant {
            let _ = write!(
                s,
                r##"<path d="M{px:.1} {:.1} l5 -8 h-10 z" fill="#7b2fbf" fill-opacity="0.8">{title}</path>"##,
                grants + 4.0
            );
            continue;
        }
        match (p.fault, p.translated) {
            (true, _) => {
                let _ = write!(
                    s,
                    r##"<g stroke="#c00" stroke-width="2">{title}<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/></g>"##,
                    px - 4.0,
                    strip - 4.0,
                    px + 4.0,
                    strip + 4.0,
                    px - 4.0,
                    strip + 4.0,
                    px + 4.0,
                    strip - 4.0
                );
            }
            (false, Some(t)) => {
                let _ = write!(
                    s,
                    r##"<circle cx="{px:.1}" cy="{:.1}" r="3.5" fill="#1f5fbf" fill-opacity="0.7">{title}</circle>"##,
                    y(t)
                );
            }
            (false, None) => {
                let _ = write!(
                    s,
                    r##"<circle cx="{px:.1}" cy="{strip:.1}" r="3" fill="none" stroke="#777">{title}</circle>"##
                );
            }
        }
    }
    // Legend.
    let lx = LEFT + pw + 26.0;
    let ly = TOP + 12.0;
    let _ = write!(
        s,
        r##"<g><rect x="{:.1}" y="{:.1}" width="200" height="78" fill="white" stroke="#aaa"/><circle cx="{:.1}" cy="{ly:.1}" r="3.5" fill="#1f5fbf"/><text x="{:.1}" y="{:.1}">access (translation known)</text><circle cx="{:.1}" cy="{:.1}" r="3" fill="none" stroke="#777"/><text x="{:.1}" y="{:.1}">access, translation unknown</text><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#c00" stroke-width="2"/><text x="{:.1}" y="{:.1}">IOMMU fault</text><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}">4 GiB</text><path d="M{:.1} {:.1} l5 -8 h-10 z" fill="#7b2fbf"/><text x="{:.1}" y="{:.1}">granted page (dom0 phys)</text></g>"##,
        lx - 6.0,
        ly - 10.0,
        lx,
        lx + 10.0,
        ly + 4.0,
        lx,
        ly + 14.0,
        lx + 10.0,
        ly + 18.0,
        lx - 4.0,
        ly + 28.0,
        lx + 4.0,
        ly + 28.0,
        lx + 10.0,
        ly + 32.0,
        lx - 5.0,
        ly + 42.0,
        lx + 5.0,
        ly + 42.0,
        lx + 10.0,
        ly + 46.0,
        lx,
        ly + 60.0,
        lx + 10.0,
        ly + 60.0
    );
    let _ = write!(
        s,
        "<desc>axes 0 to {}, ticks every {}</desc></svg>",
        hex(end),
        hex(step)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_always_shows_4g() {
        assert_eq!(axis(0), (5 * GIB, GIB));
        assert_eq!(axis(9 * GIB + 5), (10 * GIB, GIB));
        assert_eq!(axis(20 * GIB), (22 * GIB, 2 * GIB));
    }

    #[test]
    fn plot_draws_points_lines_and_legend() {
        let pts = vec![
            Point {
                bus: 0x54e_2000,
                translated: Some(0x2_6d4e_2000),
                fault: false,
                grant: false,
                label: "seq 1 <a&b>".into(),
            },
            Point {
                bus: 0x7000_0000,
                translated: None,
                fault: true,
                grant: false,
                label: "seq 2".into(),
            },
            Point {
                bus: 0x1000,
                translated: None,
                fault: false,
                grant: false,
                label: "seq 3".into(),
            },
            Point {
                bus: 0x2_7cdc_2000,
                translated: None,
                fault: false,
                grant: true,
                label: "guest page".into(),
            },
        ];
        let svg = plot(&pts);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("stroke-dasharray=\"6 4\"").count(),
            3,
            "two 4 GiB lines and the legend's"
        );
        assert!(svg.contains("seq 1 &lt;a&amp;b&gt;"), "labels are escaped");
        assert!(svg.contains("IOMMU fault") && svg.contains(">4 GiB<"));
        assert!(svg.contains(">10G<"), "ticks reach the highest translation");
        assert_eq!(
            svg.matches("fill=\"#7b2fbf\"").count(),
            2,
            "the granted page and its legend"
        );
        assert!(svg.contains("<title>guest page</title>"));
        assert!(!svg.contains("href"), "no external assets");
    }
}
