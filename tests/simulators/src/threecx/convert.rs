//! Renders the scripted state as wire rows (`model`).
//!
//! Values the spec leaves open are **assumed** and documented per function.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::duration::{format_duration, format_time};
use super::model::{
    ActiveCall, CallHistoryView, CallLogData, License, LicenseStatus, Recording, User,
    XReportRecording,
};
use super::state::StoredRecording;
use super::types::{
    DN_TYPE_EXTENSION, DN_TYPE_EXTERNAL_LINE, SimActiveCall, SimParty, SimSegment, SimUser,
};

fn user_by_dn<'a>(users: &'a [SimUser], dn: &str) -> Option<&'a SimUser> {
    users.iter().find(|u| u.number == dn)
}

fn full_name(user: &SimUser) -> String {
    format!("{} {}", user.first_name, user.last_name)
}

/// The fields of one side of a `CallHistoryView` row:
/// `(Id, ExtendedDisplayName, DisplayName)`. `Id` is the matching user's `Id`
/// for an internal party, else the DN parsed as a number (0 if not numeric);
/// the extended name is `"Name (dn)"` for internal parties and the display
/// name or caller number for external ones.
fn party_names(party: &SimParty, users: &[SimUser]) -> (i32, Option<String>, Option<String>) {
    let user = party
        .internal
        .then(|| user_by_dn(users, &party.dn))
        .flatten();
    let id = user.map_or_else(|| party.dn.parse().unwrap_or(0), |u| u.id);
    let display = party.display_name.clone().or_else(|| user.map(full_name));
    let extended = if party.internal {
        match &display {
            Some(name) => format!("{name} ({})", party.dn),
            None => party.dn.clone(),
        }
    } else {
        display
            .clone()
            .unwrap_or_else(|| party.caller_number.clone())
    };
    (id, Some(extended), display)
}

/// A `Pbx.CallHistoryView` row. `CallTime` is `end - start` when answered,
/// `PT0S` otherwise.
pub(crate) fn history_row(seg: &SimSegment, users: &[SimUser]) -> CallHistoryView {
    let (src_id, src_ext, src_name) = party_names(&seg.src, users);
    let (dst_id, dst_ext, dst_name) = party_names(&seg.dst, users);
    CallHistoryView {
        segment_id: seg.segment_id,
        segment_start_time: format_time(seg.start),
        segment_end_time: format_time(seg.end),
        segment_action_id: seg.action_id,
        segment_type: seg.segment_type,
        src_id,
        src_extended_display_name: src_ext,
        src_display_name: src_name,
        src_internal: seg.src.internal,
        src_external: !seg.src.internal,
        src_dn_type: seg.src.dn_type,
        src_dn: Some(seg.src.dn.clone()),
        src_caller_number: Some(seg.src.caller_number.clone()),
        src_participant_id: seg.src.participant_id,
        src_rec_id: seg.src.rec_id,
        dst_id,
        dst_extended_display_name: dst_ext,
        dst_display_name: dst_name,
        dst_internal: seg.dst.internal,
        dst_external: !seg.dst.internal,
        dst_dn_type: seg.dst.dn_type,
        dst_dn: Some(seg.dst.dn.clone()),
        dst_caller_number: Some(seg.dst.caller_number.clone()),
        dst_participant_id: seg.dst.participant_id,
        dst_rec_id: seg.dst.rec_id,
        call_time: talk_time(seg),
        call_answered: Some(seg.answered),
    }
}

fn talk_time(seg: &SimSegment) -> String {
    let span = if seg.answered {
        seg.end - seg.start
    } else {
        chrono::TimeDelta::zero()
    };
    format_duration(span)
}

/// Assumed `Direction`: `Internal` when both sides are internal, `Inbound`
/// when the source is external, `Outbound` otherwise.
pub(crate) fn direction(seg: &SimSegment) -> &'static str {
    match (seg.src.internal, seg.dst.internal) {
        (true, true) => "Internal",
        (false, _) => "Inbound",
        (true, false) => "Outbound",
    }
}

/// A GUID-shaped id derived from two numbers (stable across requests).
fn guid(high: i32, low: i32) -> String {
    format!(
        "00000000-0000-{:04x}-{:04x}-{:012x}",
        (high as u32) >> 16,
        high as u32 & 0xffff,
        low as u32
    )
}

/// `Pbx.CallLogData` rows, grouped by call: calls in order of their first
/// segment's start, segments in start order inside a call. Assumed values:
/// `CdrId` is a GUID per segment, `CallHistoryId`/`MainCallHistoryId` a GUID
/// per call; `Indent` is 0 for a call's first segment and 1 for the rest,
/// `SubrowDescNumber` the segment's position in its call; `TalkingDuration`
/// is the span when answered, `RingingDuration` the span when not; `Status`
/// is `Answered`/`Unanswered`; `Reason` is the segment's scripted text or
/// `null`; the `ActionDn*` fields describe the destination party.
pub(crate) fn call_log_rows(
    mut segments: Vec<&SimSegment>,
    recordings: &[StoredRecording],
) -> Vec<CallLogData> {
    let mut first_start: HashMap<i32, DateTime<Utc>> = HashMap::new();
    for s in &segments {
        let t = first_start.entry(s.call_id).or_insert(s.start);
        *t = (*t).min(s.start);
    }
    segments.sort_by_key(|s| (first_start[&s.call_id], s.call_id, s.start, s.segment_id));
    let mut rows = Vec::with_capacity(segments.len());
    let mut position = 0;
    for (i, seg) in segments.iter().enumerate() {
        let same_call = i > 0 && segments[i - 1].call_id == seg.call_id;
        position = if same_call { position + 1 } else { 0 };
        rows.push(call_log_row(seg, position, recordings));
    }
    rows
}

fn call_log_row(seg: &SimSegment, position: i32, recordings: &[StoredRecording]) -> CallLogData {
    let span = seg.end - seg.start;
    let zero = format_duration(chrono::TimeDelta::zero());
    let rec_ids = [seg.src.rec_id, seg.dst.rec_id];
    CallLogData {
        call_id: seg.call_id,
        cdr_id: guid(seg.call_id, seg.segment_id),
        call_history_id: Some(guid(seg.call_id, 0)),
        main_call_history_id: Some(guid(seg.call_id, 0)),
        segment_id: Some(seg.segment_id),
        indent: Some(i32::from(position > 0)),
        subrow_desc_number: Some(position),
        start_time: Some(format_time(seg.start)),
        ringing_duration: Some(if seg.answered {
            zero.clone()
        } else {
            format_duration(span)
        }),
        talking_duration: Some(if seg.answered {
            format_duration(span)
        } else {
            zero
        }),
        answered: Some(seg.answered),
        status: Some(
            if seg.answered {
                "Answered"
            } else {
                "Unanswered"
            }
            .to_owned(),
        ),
        reason: seg.reason.clone(),
        direction: Some(direction(seg).to_owned()),
        source_type: Some(seg.src.dn_type),
        source_dn: Some(seg.src.dn.clone()),
        source_caller_id: Some(seg.src.caller_number.clone()),
        source_display_name: seg.src.display_name.clone(),
        destination_type: Some(seg.dst.dn_type),
        destination_dn: Some(seg.dst.dn.clone()),
        destination_caller_id: Some(seg.dst.caller_number.clone()),
        destination_display_name: seg.dst.display_name.clone(),
        action_type: Some(seg.action_id),
        action_dn_dn: Some(seg.dst.dn.clone()),
        action_dn_type: Some(seg.dst.dn_type),
        action_dn_caller_id: Some(seg.dst.caller_number.clone()),
        action_dn_display_name: seg.dst.display_name.clone(),
        src_rec_id: seg.src.rec_id,
        dst_rec_id: seg.dst.rec_id,
        recordings: rec_ids
            .into_iter()
            .flatten()
            .map(|id| {
                // The same texts `ListRecording` serves, once transcribed.
                let t = recordings
                    .iter()
                    .find(|r| r.meta.id == id)
                    .map(transcription_fields)
                    .unwrap_or_default();
                XReportRecording {
                    id,
                    sentiment_score: t.sentiment_score,
                    summary: t.summary,
                    transcription: t.transcription,
                }
            })
            .collect(),
        quality_report: Some(false),
        ..Default::default()
    }
}

/// A `Pbx.User`. `DisplayName` is `"First Last"`.
pub(crate) fn user(u: &SimUser) -> User {
    User {
        id: u.id,
        number: Some(u.number.clone()),
        first_name: Some(u.first_name.clone()),
        last_name: Some(u.last_name.clone()),
        email_address: Some(u.email.clone()),
        display_name: Some(full_name(u)),
        enabled: Some(true),
        internal: Some(false),
        is_registered: Some(true),
        record_calls: Some(false),
        forbid_recording: Some(false),
        language: Some("EN".to_owned()),
        ..Default::default()
    }
}

/// A `Pbx.Recording`. A side is internal when its caller number equals its
/// DN (an extension); `CallType` follows. Participant ids are joined from the
/// first segment whose `SrcRecId`/`DstRecId` is this recording.
pub(crate) fn recording<'a>(
    rec: &StoredRecording,
    mut segments: impl Iterator<Item = &'a SimSegment>,
    users: &[SimUser],
) -> Recording {
    let m = &rec.meta;
    let from_internal = m.from_caller_number == m.from_dn;
    let to_internal = m.to_caller_number == m.to_dn;
    let call_type = match (from_internal, to_internal) {
        (true, true) => "Local",
        (false, _) => "InboundExternal",
        (true, false) => "OutboundExternal",
    };
    let dn_type = |internal| {
        if internal {
            DN_TYPE_EXTENSION
        } else {
            DN_TYPE_EXTERNAL_LINE
        }
    };
    let name = |internal: bool, dn: &str| {
        internal
            .then(|| user_by_dn(users, dn).map(full_name))
            .flatten()
    };
    let seg = segments.find(|s| s.src.rec_id == Some(m.id) || s.dst.rec_id == Some(m.id));
    let ref_participant = seg.map(|s| {
        if s.src.rec_id == Some(m.id) {
            s.src.participant_id
        } else {
            s.dst.participant_id
        }
    });
    let stamp = m.start.format("%Y%m%d%H%M%S");
    let t = transcription_fields(rec);
    Recording {
        id: m.id,
        recording_url: Some(format!(
            "{}/[{}]_{}-{}_{stamp}({}).wav",
            m.from_dn, m.from_caller_number, m.from_dn, m.to_caller_number, m.id
        )),
        start_time: Some(format_time(m.start)),
        end_time: m.end.map(format_time),
        call_type: Some(call_type.to_owned()),
        ref_participant_id: ref_participant,
        from_id_participant: seg.map(|s| s.src.participant_id),
        from_dn_type: Some(dn_type(from_internal)),
        from_dn: Some(m.from_dn.clone()),
        from_caller_number: Some(m.from_caller_number.clone()),
        from_display_name: name(from_internal, &m.from_dn),
        to_id_participant: seg.map(|s| s.dst.participant_id),
        to_dn_type: Some(dn_type(to_internal)),
        to_dn: Some(m.to_dn.clone()),
        to_caller_number: Some(m.to_caller_number.clone()),
        to_display_name: name(to_internal, &m.to_dn),
        from_did_number: m.from_did_number.clone(),
        to_did_number: m.to_did_number.clone(),
        is_archived: Some(false),
        can_be_transcribed: Some(rec.transcription.is_some()),
        is_transcribed: Some(t.is_transcribed),
        transcription_result: t.result,
        transcription: t.transcription,
        summary: t.summary,
        sentiment_score: t.sentiment_score,
        ..Default::default()
    }
}

/// Where a recording's transcription stands now, as its fields.
#[derive(Default)]
pub(crate) struct TranscriptionFields {
    pub is_transcribed: bool,
    pub result: Option<i32>,
    pub transcription: Option<String>,
    pub summary: Option<String>,
    pub sentiment_score: Option<i32>,
}

/// `rec`'s transcription fields at this moment (its plan, evaluated
/// lazily: no timer runs).
pub(crate) fn transcription_fields(rec: &StoredRecording) -> TranscriptionFields {
    use super::transcription::SimTranscription;
    let Some((since, plan)) = &rec.transcription else {
        return TranscriptionFields::default();
    };
    let passed = |after: &std::time::Duration| since.elapsed() >= *after;
    match plan {
        SimTranscription::Transcribed {
            after,
            summary,
            transcription,
            sentiment_score,
        } if passed(after) => TranscriptionFields {
            is_transcribed: true,
            result: Some(0),
            transcription: transcription.clone(),
            summary: summary.clone(),
            sentiment_score: *sentiment_score,
        },
        SimTranscription::Fails { after, result } if passed(after) => TranscriptionFields {
            result: Some(*result),
            ..TranscriptionFields::default()
        },
        _ => TranscriptionFields::default(),
    }
}

/// A `Pbx.ActiveCall`; `LastChangeStatus` is `EstablishedAt`.
pub(crate) fn active_call(call: &SimActiveCall, now: DateTime<Utc>) -> ActiveCall {
    ActiveCall {
        id: call.id,
        caller: Some(call.caller.clone()),
        callee: Some(call.callee.clone()),
        status: Some(call.status.clone()),
        established_at: Some(format_time(call.established_at)),
        last_change_status: Some(format_time(call.established_at)),
        server_now: Some(format_time(now)),
    }
}

/// Illustrative product codes (the spec documents no values).
fn product_code(enterprise: bool) -> &'static str {
    if enterprise { "3CXPSENT" } else { "3CXPSPRO" }
}

/// `Pbx.License` for the edition chosen by `set_enterprise`.
pub(crate) fn license(enterprise: bool) -> License {
    License {
        product_code: Some(product_code(enterprise).to_owned()),
        max_sim_calls: Some(16),
        is_enterprise: Some(enterprise),
        is_professional: Some(!enterprise),
        is_maintaince_expired: Some(false),
        is_branding_enabled: Some(false),
        is_cfd_enabled: Some(true),
        country_code: Some("GB".to_owned()),
    }
}

/// A minimal, active `Pbx.LicenseStatus`.
pub(crate) fn license_status(enterprise: bool) -> LicenseStatus {
    LicenseStatus {
        license_key: "SIMU-LATE-D3CX-0000".to_owned(),
        product_code: Some(product_code(enterprise).to_owned()),
        version: Some("20.0.10.000".to_owned()),
        activated: Some(true),
        license_active: Some(true),
        max_sim_calls: Some(16),
        company_name: Some("ConnectZero Simulator".to_owned()),
        country_code: Some("GB".to_owned()),
        ..Default::default()
    }
}
