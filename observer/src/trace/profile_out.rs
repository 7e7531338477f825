//! The profile `observer trace --profile-out` writes: the same exporter as
//! `observer profile export`, fed from the trace report.

use super::report::Report;
use crate::learned::{ExportRequest, export_learned, learned_from_trace, report_left_out};

pub fn trace_profile(
    report: &Report,
    format: observer_contract::views::ExportFormat,
    command: &[String],
) -> anyhow::Result<String> {
    let learned = learned_from_trace(report, command);
    // A traced host command is not a container: allow exactly what it made,
    // even what Docker's default would deny (its conditions are still kept).
    let request = ExportRequest { beyond_default: true, ..ExportRequest::plain(format) };
    let (exported, text) = export_learned(&learned, &request)?;
    report_left_out(&exported);
    Ok(text)
}
