//! Per-run reports (verdict.json, report.html) and the many-scenario summary table.
