//! Judging a run: every assertion of a scenario against a [`RunOutcome`],
//! then the `expect_failure` rule for negative twins.
//!
//! Entry point: [`evaluate`]. A [`Verdict`] is `passed()` or not, prints one
//! line per failed assertion (`Display`), and serializes to `verdict.json`.

mod checks;
pub mod join;

#[cfg(test)]
mod tests;

use crate::machine::RamLayout;
use crate::outcome::{RunEnd, RunOutcome};
use crate::scenario::{id_matches, Scenario};
use serde::Serialize;
use std::fmt;

/// How one assertion came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// Not judged: the run ended before there was anything to judge.
    Skipped,
}

/// One assertion's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssertionResult {
    /// Stable id, e.g. `device_addrs.below` or `ops.high-single.map_error`.
    pub id: String,
    pub status: Status,
    /// What the scenario asked for, e.g. `every bus address < 0x1_0000_0000`.
    pub expected: String,
    /// What was seen; for a failure, the record that broke it.
    pub detail: String,
}

impl fmt::Display for AssertionResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: expected {}, {}", self.id, self.expected, self.detail)
    }
}

/// The scenario's result as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every assertion held.
    Pass,
    /// Some assertion failed (no `expect_failure`).
    Fail,
    /// Negative twin: the named assertion failed, nothing else did. A pass.
    ExpectedFailure,
    /// Negative twin: nothing failed, so the rig missed what it must catch.
    UnexpectedPass,
    /// Negative twin: something other than the named assertion failed.
    WrongFailure,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::ExpectedFailure => "expected-failure",
            Outcome::UnexpectedPass => "unexpected-pass",
            Outcome::WrongFailure => "wrong-failure",
        }
    }
}

/// Everything the verdict says; written as `verdict.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub scenario: String,
    pub outcome: Outcome,
    /// How the run ended, as `RunEnd` serializes its kind (`finished`, `xen_panic`, ...).
    pub run_end: String,
    pub run_end_detail: Option<String>,
    /// For a failed verdict: the run's end kind when the run did not finish
    /// as expected, else `assertion`, `unexpected_pass` or `wrong_failure`.
    pub failure_kind: Option<String>,
    /// The negative twin's named assertion and reason.
    pub expect_failure: Option<(String, String)>,
    pub assertions: Vec<AssertionResult>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Pass | Outcome::ExpectedFailure)
    }

    pub fn failed_assertions(&self) -> impl Iterator<Item = &AssertionResult> {
        self.assertions.iter().filter(|a| a.status == Status::Fail)
    }
}

impl fmt::Display for Verdict {
    /// A headline, then one line per failed assertion.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match &self.run_end_detail {
            Some(d) => format!("{} ({d})", self.run_end),
            None => self.run_end.clone(),
        };
        match self.outcome {
            Outcome::Pass => write!(f, "{}: pass", self.scenario)?,
            Outcome::ExpectedFailure => {
                let (id, reason) = self.expect_failure.clone().unwrap_or_default();
                write!(f, "{}: pass (expected failure of `{id}`: {reason})", self.scenario)?;
            }
            Outcome::UnexpectedPass => {
                let (id, reason) = self.expect_failure.clone().unwrap_or_default();
                return write!(
                    f,
                    "{}: FAIL: unexpected pass: `{id}` must fail ({reason}) but every assertion held",
                    self.scenario
                );
            }
            Outcome::WrongFailure => {
                let (id, _) = self.expect_failure.clone().unwrap_or_default();
                write!(
                    f,
                    "{}: FAIL: only `{id}` may fail, but other assertions did (run ended: {end})",
                    self.scenario
                )?;
            }
            Outcome::Fail => {
                let kind = self.failure_kind.as_deref().unwrap_or("assertion");
                if kind == "assertion" {
                    write!(f, "{}: FAIL (run ended: {end})", self.scenario)?;
                } else {
                    write!(f, "{}: FAIL: {end}", self.scenario)?;
                }
            }
        }
        for a in self.failed_assertions() {
            let named = self
                .expect_failure
                .as_ref()
                .is_some_and(|(id, _)| id_matches(id, &a.id));
            let mark = if named { "  (expected) " } else { "  " };
            write!(f, "\n{mark}{a}")?;
        }
        Ok(())
    }
}

/// `RunEnd`'s kind and detail as it serializes them: robust to new variants.
pub fn run_end_kind(end: &RunEnd) -> (String, Option<String>) {
    let v = serde_json::to_value(end).unwrap_or_default();
    let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("unknown").to_string();
    let detail = v.get("detail").and_then(|d| d.as_str()).map(str::to_string);
    (kind, detail)
}

/// Judge `outcome` against every assertion of `scenario`, and apply its
/// `expect_failure`, if any.
pub fn evaluate(scenario: &Scenario, outcome: &RunOutcome) -> Verdict {
    let injected;
    let judged = match scenario.inject.and_then(|i| i.ram_below_4g) {
        // A negative twin's wrong RAM layout: only the judging sees it.
        Some(below) => {
            let mut o = outcome.clone();
            o.ram_layout = Some(RamLayout::with_below_4g(
                scenario.machine.memory.mib << 20,
                below.mib << 20,
            ));
            injected = o;
            &injected
        }
        None => outcome,
    };
    let assertions = checks::evaluate_all(&scenario.expect, judged);
    judge(scenario, outcome, assertions)
}

/// The `expect_failure` rule, separate from the checks so it can be tested on its own.
pub fn judge(scenario: &Scenario, outcome: &RunOutcome, assertions: Vec<AssertionResult>) -> Verdict {
    let (run_end, run_end_detail) = run_end_kind(&outcome.end);
    let failed: Vec<&AssertionResult> = assertions.iter().filter(|a| a.status == Status::Fail).collect();
    let boot_failed = failed
        .iter()
        .any(|a| a.id == crate::scenario::Check::Boot(&scenario.expect.boot).id());
    let expect_failure = scenario
        .expect_failure
        .as_ref()
        .map(|f| (f.assertion.value.clone(), f.reason.clone()));
    let outcome_kind = match &expect_failure {
        None if failed.is_empty() => Outcome::Pass,
        None => Outcome::Fail,
        Some(_) if failed.is_empty() => Outcome::UnexpectedPass,
        Some((id, _)) if failed.iter().all(|a| id_matches(id, &a.id)) => Outcome::ExpectedFailure,
        Some(_) => Outcome::WrongFailure,
    };
    let failure_kind = match outcome_kind {
        Outcome::Pass | Outcome::ExpectedFailure => None,
        // The way the run ended comes first when it is what went wrong.
        _ if boot_failed => Some(run_end.clone()),
        Outcome::UnexpectedPass => Some("unexpected_pass".into()),
        Outcome::WrongFailure => Some("wrong_failure".into()),
        Outcome::Fail => Some("assertion".into()),
    };
    Verdict {
        scenario: scenario.name.clone(),
        outcome: outcome_kind,
        run_end,
        run_end_detail,
        failure_kind,
        expect_failure,
        assertions,
    }
}

/// `0x1_2345_6000`: hex in groups of four digits, so addresses around 4 GiB
/// are told apart at a glance.
pub fn hex(v: u64) -> String {
    let digits = format!("{v:x}");
    let mut out = String::with_capacity(digits.len() + digits.len() / 4 + 2);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 4 == 0 {
            out.push('_');
        }
        out.push(c);
    }
    format!("0x{out}")
}
