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
    let request = ExportRequest {
        format,
        include_denied: false,
        // A traced host command is not a container: allow exactly what it made,
        // even what Docker's default would deny (its conditions are still kept).
        beyond_default: true,
        base: None,
        caps: None,
        name: None,
        namespace: None,
        args: false,
        reachable: None,
    };
    let (exported, text) = export_learned(&learned, &request)?;
    report_left_out(&exported);
    Ok(text)
}
