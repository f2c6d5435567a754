//! The checklist itself: checks, their status and fix hints, and how it is
//! printed. Pure data and formatting, so it is tested without a network.

use std::fmt::Write as _;

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The check passed.
    Pass,
    /// The check failed; its hint says how to fix it.
    Fail,
    /// The check could not run because an earlier one failed (e.g. no 3CX
    /// token, so no permission probe). Not a failure of its own: the
    /// failure that caused it already counts.
    Skipped,
}

impl Status {
    /// The mark printed before the check's name.
    pub fn mark(self) -> char {
        match self {
            Status::Pass => '✓',
            Status::Fail => '✗',
            Status::Skipped => '–',
        }
    }
}

/// One line of the checklist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What is checked, e.g. "3CX licence". Stable: scripts may grep it.
    pub name: &'static str,
    /// Its outcome.
    pub status: Status,
    /// What was found, in a few words (never a secret).
    pub detail: String,
    /// For a failure: exactly what to do about it.
    pub hint: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Pass,
            detail: detail.into(),
            hint: None,
        }
    }

    /// A failed check and its fix.
    pub fn fail(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    /// A check that could not run, and why.
    pub fn skipped(name: &'static str, why: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Skipped,
            detail: format!("not checked: {}", why.into()),
            hint: None,
        }
    }
}

/// Every check of one tenant, in the order they ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantReport {
    /// The tenant's id.
    pub tenant: String,
    /// Its checks.
    pub checks: Vec<Check>,
}

impl TenantReport {
    /// The checks that failed.
    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
    }

    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.failures() == 0
    }
}

/// The checklist of every tenant, as printed by `connectzero doctor`.
pub fn render(reports: &[TenantReport]) -> String {
    let width = reports
        .iter()
        .flat_map(|r| &r.checks)
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for report in reports {
        let _ = writeln!(out, "tenant {}", report.tenant);
        for check in &report.checks {
            let _ = writeln!(
                out,
                "  {} {:<width$}  {}",
                check.status.mark(),
                check.name,
                check.detail
            );
            if let Some(hint) = &check.hint {
                let _ = writeln!(out, "      fix: {hint}");
            }
        }
        let failures = report.failures();
        let total = report.checks.len();
        let _ = if failures == 0 {
            writeln!(out, "  all {total} checks passed\n")
        } else {
            writeln!(out, "  {failures} of {total} checks failed\n")
        };
    }
    out
}

/// `Ok` when every tenant passed, else an error naming the failures (the
/// binary turns it into a non-zero exit).
pub fn verdict(reports: &[TenantReport]) -> anyhow::Result<()> {
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.tenant.as_str())
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "checks failed for tenant {}: fix the ✗ lines above and run connectzero doctor again",
        failed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<Check>) -> TenantReport {
        TenantReport {
            tenant: "acme".into(),
            checks,
        }
    }

    #[test]
    fn a_passing_report_prints_only_ticks_and_no_hints() {
        let r = report(vec![
            Check::pass("3CX licence", "Enterprise"),
            Check::pass("HighLevel token", "refreshed"),
        ]);
        let text = render(std::slice::from_ref(&r));
        assert!(r.passed());
        assert!(text.contains("  ✓ 3CX licence      Enterprise\n"), "{text}");
        assert!(text.contains("  ✓ HighLevel token  refreshed\n"), "{text}");
        assert!(!text.contains('✗') && !text.contains("fix:"), "{text}");
        assert!(text.contains("all 2 checks passed"), "{text}");
        assert!(verdict(&[r]).is_ok());
    }

    #[test]
    fn a_failure_prints_its_hint_under_it_and_fails_the_verdict() {
        let r = report(vec![
            Check::pass("a", "fine"),
            Check::fail("b", "broken", "do this"),
            Check::skipped("c", "needs b"),
        ]);
        assert_eq!(r.failures(), 1);
        let text = render(std::slice::from_ref(&r));
        assert!(
            text.contains("  ✗ b  broken\n      fix: do this\n"),
            "{text}"
        );
        assert!(text.contains("  – c  not checked: needs b\n"), "{text}");
        assert!(text.contains("1 of 3 checks failed"), "{text}");
        let err = verdict(&[r]).unwrap_err().to_string();
        assert!(err.contains("acme"), "{err}");
    }

    #[test]
    fn a_skipped_check_alone_does_not_fail_a_tenant() {
        let r = report(vec![Check::skipped("c", "why")]);
        assert!(r.passed());
    }
}
