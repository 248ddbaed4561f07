//! Xen's console lines inside dom0's, taken back out.
//!
//! Xen and dom0 share one serial line: dom0 writes through Xen's console in
//! pieces, and Xen prints its own lines whole, between any two of dom0's
//! characters. A dom0 line can therefore arrive as `head(XEN) xen's line`,
//! then any number of further lines of Xen's, then the rest of dom0's line.
//! Every reader of the console (the live scanner, and the verdict's look at
//! the whole text: guests' report lines, kernel warnings, `expect.log`)
//! wants dom0's lines whole, so the repair is done here once, while
//! `console.log` keeps the bytes as they came.

/// Where Xen's own output starts. At the start of a line it is one of Xen's
/// lines; anywhere else it is one that landed inside a line of dom0's.
const XEN_MARK: &str = "(XEN) ";

/// Streaming repair: raw lines in, whole lines out.
#[derive(Debug, Default)]
pub struct Splices {
    /// The start of a dom0 line that one of Xen's cut, waiting for its rest.
    head: Option<String>,
}

impl Splices {
    /// Take one raw line (without its newline); give the lines it
    /// completes, in the order they were finished: Xen's line first (it was
    /// printed whole before dom0 went on), then dom0's once its rest came.
    pub fn line(&mut self, raw: &str) -> Vec<String> {
        let mut line = match self.head.take() {
            Some(head) if raw.starts_with(XEN_MARK) => {
                // Another whole line of Xen's; dom0's rest is still to come.
                self.head = Some(head);
                return vec![raw.to_string()];
            }
            Some(head) => head + raw,
            None => raw.to_string(),
        };
        // Xen's line runs to the end of the raw line (it ends in its own
        // newline); what precedes it waits for the rest, which may be cut
        // again.
        match line.get(1..).and_then(|l| l.find(XEN_MARK)) {
            Some(i) => {
                let xen = line.split_off(i + 1);
                self.head = Some(line);
                vec![xen]
            }
            None => vec![line],
        }
    }

    /// The console ended: a dom0 line that Xen cut and dom0 never finished,
    /// for the caller to judge as it stands.
    pub fn finish(&mut self) -> Option<String> {
        self.head.take()
    }
}

/// The whole console text with every line of dom0's put back together.
pub fn unsplice(text: &str) -> String {
    let mut s = Splices::default();
    let mut out = String::with_capacity(text.len());
    let mut push = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    for raw in text.split_terminator('\n') {
        s.line(raw).into_iter().for_each(&mut push);
    }
    s.finish().into_iter().for_each(&mut push);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const UART: &str = "(XEN) uart interrupt taking more than 4ms, switched to polling";

    #[test]
    fn lines_without_xens_output_inside_pass_unchanged() {
        let text = "(XEN) Xen version 4.20\n[    0.000] Linux version 6.12\n\nPVHDMA-DONE\n";
        assert_eq!(unsplice(text), text);
    }

    #[test]
    fn xens_line_after_our_last_character_comes_out_first() {
        let text = format!("PVHDMA-GUEST g1 PVHDMA-GUEST-NET {{\"sent\":64}}{UART}\n\nnext\n");
        assert_eq!(
            unsplice(&text),
            format!("{UART}\nPVHDMA-GUEST g1 PVHDMA-GUEST-NET {{\"sent\":64}}\nnext\n")
        );
    }

    #[test]
    fn several_xen_lines_inside_one_of_ours_are_all_kept() {
        let mut s = Splices::default();
        assert_eq!(s.line(&format!("PVHDMA-GUEST g1 PVHDMA-GU{UART}")), [UART]);
        assert_eq!(s.line("(XEN) more"), ["(XEN) more"]);
        assert_eq!(
            s.line("EST-CHECK {}(XEN) third"),
            ["(XEN) third"],
            "a second cut in the rest waits again"
        );
        assert_eq!(s.line(""), ["PVHDMA-GUEST g1 PVHDMA-GUEST-CHECK {}"]);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn a_line_never_finished_is_handed_back_at_the_end() {
        let mut s = Splices::default();
        assert_eq!(s.line(&format!("PVHDMA-RES{UART}")), [UART]);
        assert_eq!(s.finish().as_deref(), Some("PVHDMA-RES"));
        assert_eq!(unsplice(&format!("abc{UART}")), format!("{UART}\nabc\n"));
    }

    #[test]
    fn carriage_returns_stay_where_they_were() {
        assert_eq!(unsplice(&format!("ours{UART}\r\n\r\n")), format!("{UART}\r\nours\r\n"));
    }
}
