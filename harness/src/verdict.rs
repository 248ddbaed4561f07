//! Judging a run: every assertion of a scenario against a [`RunOutcome`],
//! then the `expect_failure` rule for negative twins.
//!
//! Entry point: [`evaluate`]. A [`Verdict`] is `passed()` or not, prints one
//! line per failed assertion (`Display`), and serializes to `verdict.json`.

mod checks;
mod corroborate;
pub mod join;
pub(crate) use checks::guest_check;

#[cfg(test)]
mod tests;

use crate::machine::RamLayout;
use crate::outcome::{EndKind, RunOutcome};
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
pub enum Judgement {
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

impl Judgement {
    /// The one spelling (what serde writes).
    pub fn word(self) -> &'static str {
        match self {
            Judgement::Pass => "pass",
            Judgement::Fail => "fail",
            Judgement::ExpectedFailure => "expected_failure",
            Judgement::UnexpectedPass => "unexpected_pass",
            Judgement::WrongFailure => "wrong_failure",
        }
    }
}

/// Why a verdict failed, in one word for tables, JUnit and verdict.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The run did not end as the scenario expects: the way it ended.
    Ended(EndKind),
    /// The run ended as expected, but an assertion did not hold.
    Assertion,
    /// A negative twin in which nothing failed.
    UnexpectedPass,
    /// A negative twin in which something other than the named assertion failed.
    WrongFailure,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Ended(k) => k.name(),
            FailureKind::Assertion => "assertion",
            FailureKind::UnexpectedPass => "unexpected_pass",
            FailureKind::WrongFailure => "wrong_failure",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for FailureKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Everything the verdict says; written as `verdict.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub scenario: String,
    pub outcome: Judgement,
    /// How the run ended.
    pub run_end: EndKind,
    pub run_end_detail: Option<String>,
    /// For a failed verdict: why.
    pub failure_kind: Option<FailureKind>,
    /// The negative twin's named assertion and reason.
    pub expect_failure: Option<(String, String)>,
    /// The twin's pinned cause: what the named assertion's failure must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_failure_message: Option<String>,
    /// The end of a first try that was run again (only a TCG triple fault is).
    pub retried_after: Option<String>,
    pub assertions: Vec<AssertionResult>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Judgement::Pass | Judgement::ExpectedFailure)
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
            None => self.run_end.to_string(),
        };
        match self.outcome {
            Judgement::Pass => write!(f, "{}: pass", self.scenario)?,
            Judgement::ExpectedFailure => {
                let (id, reason) = self.expect_failure.clone().unwrap_or_default();
                write!(f, "{}: pass (expected failure of `{id}`: {reason})", self.scenario)?;
            }
            Judgement::UnexpectedPass => {
                let (id, reason) = self.expect_failure.clone().unwrap_or_default();
                return write!(
                    f,
                    "{}: FAIL: unexpected pass: `{id}` must fail ({reason}) but every assertion held",
                    self.scenario
                );
            }
            Judgement::WrongFailure => {
                let (id, _) = self.expect_failure.clone().unwrap_or_default();
                let others = self.failed_assertions().any(|a| !id_matches(&id, &a.id));
                match &self.expect_failure_message {
                    Some(m) if !others => write!(
                        f,
                        "{}: FAIL: `{id}` must fail for the stated cause (matching /{m}/), but failed otherwise \
                         (run ended: {end})",
                        self.scenario
                    )?,
                    _ => write!(
                        f,
                        "{}: FAIL: only `{id}` may fail, but other assertions did (run ended: {end})",
                        self.scenario
                    )?,
                }
            }
            Judgement::Fail => {
                if matches!(self.failure_kind, None | Some(FailureKind::Assertion)) {
                    write!(f, "{}: FAIL (run ended: {end})", self.scenario)?;
                } else {
                    write!(f, "{}: FAIL: {end}", self.scenario)?;
                }
            }
        }
        if let Some(first) = &self.retried_after {
            write!(f, "\n  (run twice: the first try ended {first})")?;
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
    let assertions = checks::evaluate_all(&scenario.expect, judged, &corroborate::Scope::of(scenario));
    judge(scenario, outcome, assertions)
}

/// The `expect_failure` rule, separate from the checks so it can be tested on its own.
pub fn judge(scenario: &Scenario, outcome: &RunOutcome, assertions: Vec<AssertionResult>) -> Verdict {
    let run_end = outcome.end.kind;
    let run_end_detail = Some(outcome.end.detail.clone()).filter(|d| !d.is_empty());
    let failed: Vec<&AssertionResult> = assertions.iter().filter(|a| a.status == Status::Fail).collect();
    let boot_failed = failed
        .iter()
        .any(|a| a.id == crate::scenario::Check::Boot(&scenario.expect.boot).id());
    let expect_failure = scenario
        .expect_failure
        .as_ref()
        .map(|f| (f.assertion.value.clone(), f.reason.clone()));
    let message = scenario.expect_failure.as_ref().and_then(|f| f.message.as_ref());
    // The named assertion failing is not enough when the twin pins its
    // cause: one of its failures must say so.
    let for_the_cause = failed.iter().any(|a| message.is_none_or(|m| m.is_match(&a.detail)));
    let outcome_kind = match &expect_failure {
        None if failed.is_empty() => Judgement::Pass,
        None => Judgement::Fail,
        Some(_) if failed.is_empty() => Judgement::UnexpectedPass,
        Some((id, _)) if failed.iter().all(|a| id_matches(id, &a.id)) && for_the_cause => Judgement::ExpectedFailure,
        Some(_) => Judgement::WrongFailure,
    };
    let failure_kind = match outcome_kind {
        Judgement::Pass | Judgement::ExpectedFailure => None,
        // The way the run ended comes first when it is what went wrong.
        _ if boot_failed => Some(FailureKind::Ended(run_end)),
        Judgement::UnexpectedPass => Some(FailureKind::UnexpectedPass),
        Judgement::WrongFailure => Some(FailureKind::WrongFailure),
        Judgement::Fail => Some(FailureKind::Assertion),
    };
    Verdict {
        scenario: scenario.name.clone(),
        outcome: outcome_kind,
        run_end,
        run_end_detail,
        failure_kind,
        expect_failure,
        expect_failure_message: message.map(|m| m.as_str().to_string()),
        retried_after: None,
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
