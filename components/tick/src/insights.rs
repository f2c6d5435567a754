//! 3CX's own call insights around the posted calls: which calls get an
//! insights job (the tenant's settings, the logging policy's
//! `skip_insights`), and working the due jobs: each call whose insights
//! were written gets its `call.insights` event queued, once, before the
//! attach stage lets its job go.

use crate::connectzero::pipeline::attach::{self, InsightsJob, InsightsOutcome};
use crate::connectzero::pipeline::call_log::{self, InsightsUpdate};
use crate::connectzero::pipeline::trigger;
use crate::describe;
use crate::events::{insights_event, outside_number};
use crate::exports::connectzero::pipeline::tick::TickReport;
use crate::history::Handled;
use crate::options::Options;
use crate::timing::time;
use guest_support::bindings::connectzero::pipeline::types::{Call, StageError};
use guest_support::insights::InsightsState;

/// Whether the tenant wants insights for this posted call: some insight
/// is on, it has a recording, and the policy does not skip its kind.
pub fn wanted(options: &Options, call: &Call) -> bool {
    let s = &options.settings.insights;
    if !(s.summary || s.sentiment || s.transcript)
        || guest_support::recordings::of_call(call).is_empty()
    {
        return false;
    }
    options
        .policy
        .as_ref()
        .is_none_or(|policy| !policy.skips_insights(crate::facts::facts_with(call, None).kind()))
}

/// Queue insights jobs for the posted calls that want them. Returns the
/// calls whose job could not be queued, with the error: they are retried
/// rather than completed.
pub fn after_post(
    options: &Options,
    posted: &[(&Handled, &String)],
    report: &mut TickReport,
) -> Vec<(String, StageError)> {
    let jobs: Vec<InsightsJob> = posted
        .iter()
        .filter(|(h, _)| wanted(options, &h.call))
        .map(|(h, id)| InsightsJob {
            call_key: h.call.key.clone(),
            message_id: (*id).clone(),
            contact_id: h.contact_id.clone().unwrap_or_default(),
            conversation_id: h.conversation_id.clone().unwrap_or_default(),
            recording_ids: guest_support::recordings::of_call(&h.call),
            direction: h.call.direction,
            phone: outside_number(&h.call),
            started_at: h.call.start_time,
            crm_user_id: h.user_id.clone(),
        })
        .collect();
    if jobs.is_empty() {
        return Vec::new();
    }
    let s = &options.settings;
    if let Err(error) = time("attach", "enqueue-insights", || {
        attach::enqueue_insights(s, &jobs)
    }) {
        report.warnings.push(format!(
            "could not queue call insights; the calls are retried: {}",
            describe(&error)
        ));
        return jobs
            .iter()
            .map(|j| (j.call_key.clone(), error.clone()))
            .collect();
    }
    let pending: Vec<InsightsUpdate> = jobs
        .iter()
        .map(|j| InsightsUpdate {
            call_key: j.call_key.clone(),
            status: InsightsState::Pending.into(),
        })
        .collect();
    note(report, call_log::record_insights(&pending));
    Vec::new()
}

/// Work the due insights jobs: queue `call.insights` for the written ones
/// (then let their jobs go), and tell the call log where each stands.
/// True when any job was worked.
pub fn work(options: &Options, max_jobs: u32, report: &mut TickReport) -> bool {
    let s = &options.settings;
    let reports = match time("attach", "process-insights-due", || {
        attach::process_insights_due(s, max_jobs)
    }) {
        Ok(reports) => reports,
        Err(error) => {
            report
                .warnings
                .push(format!("insights queue unavailable: {}", describe(&error)));
            return false;
        }
    };
    let worked = !reports.is_empty();
    let mut updates = Vec::new();
    let mut events = Vec::new();
    for r in reports {
        let key = r.job.call_key.clone();
        let state = match r.outcome {
            InsightsOutcome::Written(insights) => {
                events.push(insights_event(r.job, insights));
                continue;
            }
            InsightsOutcome::None => InsightsState::None,
            InsightsOutcome::GaveUp(reason) => {
                report.insights_gave_up += 1;
                report.warnings.push(format!(
                    "gave up on 3CX's insights of {key}; the call stays posted without them: {reason}"
                ));
                InsightsState::GaveUp(reason)
            }
            InsightsOutcome::Pending(_) => {
                report.insights_pending += 1;
                if let Some(error) = &r.last_error {
                    report.warnings.push(format!(
                        "insights of {key} not written yet, retrying: {}",
                        describe(error)
                    ));
                }
                continue;
            }
        };
        updates.push(InsightsUpdate {
            call_key: key,
            status: state.into(),
        });
    }
    if !events.is_empty() {
        let keys: Vec<String> = events.iter().map(|e| e.call_key.clone()).collect();
        // Queued first, acknowledged after: a crash in between reports the
        // written job again, and the trigger queue ignores a repeat.
        let queued = time("trigger", "enqueue", || trigger::enqueue(s, &events)).and_then(|()| {
            time("attach", "insights-queued", || {
                attach::insights_queued(&keys)
            })
        });
        match queued {
            Ok(()) => {
                report.insights_written += keys.len() as u32;
                updates.extend(keys.into_iter().map(|call_key| InsightsUpdate {
                    call_key,
                    status: InsightsState::Written.into(),
                }));
            }
            Err(error) => report.warnings.push(format!(
                "could not queue call.insights; tried again next tick: {}",
                describe(&error)
            )),
        }
    }
    if !updates.is_empty() {
        note(report, call_log::record_insights(&updates));
    }
    worked
}

/// A call log that could not take the insights' state: the work is done
/// (the queue records it), only the call log's column lags; say so.
fn note(report: &mut TickReport, written: Result<(), StageError>) {
    if let Err(error) = written {
        report.warnings.push(format!(
            "the call log did not take the insights: {}",
            describe(&error)
        ));
    }
}
