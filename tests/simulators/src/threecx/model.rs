//! Wire types, field for field from `swagger.yaml` (`components.schemas`).
//! Nullable fields are `Option` and serialise as `null`; nothing is skipped,
//! so every row carries every key. Date-times and durations are pre-formatted
//! strings (see `duration`).

use serde::Serialize;

/// `Pbx.CallHistoryView`: every field of the spec.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CallHistoryView {
    pub segment_id: i32,
    pub segment_start_time: String,
    pub segment_end_time: String,
    pub segment_action_id: i32,
    pub segment_type: i32,
    pub src_id: i32,
    pub src_extended_display_name: Option<String>,
    pub src_display_name: Option<String>,
    pub src_internal: bool,
    pub src_external: bool,
    pub src_dn_type: i32,
    pub src_dn: Option<String>,
    pub src_caller_number: Option<String>,
    pub src_participant_id: i32,
    pub src_rec_id: Option<i32>,
    pub dst_id: i32,
    pub dst_extended_display_name: Option<String>,
    pub dst_display_name: Option<String>,
    pub dst_internal: bool,
    pub dst_external: bool,
    pub dst_dn_type: i32,
    pub dst_dn: Option<String>,
    pub dst_caller_number: Option<String>,
    pub dst_participant_id: i32,
    pub dst_rec_id: Option<i32>,
    /// ISO 8601 duration.
    pub call_time: String,
    pub call_answered: Option<bool>,
}

/// `Pbx.XReportRecording` (`CallLogData.Recordings[]`, 20.0.10).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct XReportRecording {
    pub id: i32,
    pub sentiment_score: Option<i32>,
    pub summary: Option<String>,
    pub transcription: Option<String>,
}

/// `Pbx.CallLogData`: every field of the spec (note `actionDnDn`).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CallLogData {
    pub call_id: i32,
    pub cdr_id: String,
    pub call_history_id: Option<String>,
    pub main_call_history_id: Option<String>,
    pub segment_id: Option<i32>,
    pub indent: Option<i32>,
    pub subrow_desc_number: Option<i32>,
    pub start_time: Option<String>,
    pub ringing_duration: Option<String>,
    pub talking_duration: Option<String>,
    pub answered: Option<bool>,
    pub status: Option<String>,
    pub reason: Option<String>,
    pub direction: Option<String>,
    pub call_type: Option<String>,
    pub source_type: Option<i32>,
    pub source_dn: Option<String>,
    pub source_caller_id: Option<String>,
    pub source_display_name: Option<String>,
    pub destination_type: Option<i32>,
    pub destination_dn: Option<String>,
    pub destination_caller_id: Option<String>,
    pub destination_display_name: Option<String>,
    pub action_type: Option<i32>,
    #[serde(rename = "actionDnDn")]
    pub action_dn_dn: Option<String>,
    pub action_dn_type: Option<i32>,
    pub action_dn_caller_id: Option<String>,
    pub action_dn_display_name: Option<String>,
    pub src_rec_id: Option<i32>,
    pub dst_rec_id: Option<i32>,
    pub recording_url: Option<String>,
    pub recordings: Vec<XReportRecording>,
    /// `type: integer, format: decimal`.
    pub call_cost: Option<f64>,
    pub quality_report: Option<bool>,
    pub sentiment_score: Option<i32>,
    pub summary: Option<String>,
    pub transcription: Option<String>,
}

/// `Pbx.User`: the `Pbx.DN` keys plus the user fields a client reads.
/// (The real entity has ~70 more settings; they are not modelled.)
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct User {
    pub id: i32,
    pub number: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email_address: Option<String>,
    pub display_name: Option<String>,
    pub mobile: Option<String>,
    pub enabled: Option<bool>,
    pub internal: Option<bool>,
    pub is_registered: Option<bool>,
    pub primary_group_id: Option<i32>,
    #[serde(rename = "OutboundCallerID")]
    pub outbound_caller_id: Option<String>,
    pub record_calls: Option<bool>,
    pub forbid_recording: Option<bool>,
    pub language: Option<String>,
    pub tags: Vec<String>,
}

/// `Pbx.Recording`: every field of the spec.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Recording {
    pub id: i32,
    pub recording_url: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// `Pbx.RecordingCallType`: `Local | InboundExternal | OutboundExternal`.
    pub call_type: Option<String>,
    pub ref_participant_id: Option<i32>,
    pub from_id_participant: Option<i32>,
    pub from_dn_type: Option<i32>,
    pub from_dn: Option<String>,
    pub from_caller_number: Option<String>,
    pub from_display_name: Option<String>,
    pub from_did_number: Option<String>,
    pub from_crm_contact: Option<String>,
    pub to_id_participant: Option<i32>,
    pub to_dn_type: Option<i32>,
    pub to_dn: Option<String>,
    pub to_caller_number: Option<String>,
    pub to_display_name: Option<String>,
    pub to_did_number: Option<String>,
    pub to_crm_contact: Option<String>,
    pub is_archived: Option<bool>,
    pub archived_url: Option<String>,
    pub can_be_transcribed: Option<bool>,
    pub is_transcribed: Option<bool>,
    pub transcription_result: Option<i32>,
    pub transcription: Option<String>,
    pub summary: Option<String>,
    pub sentiment_score: Option<i32>,
}

/// `Pbx.ActiveCall`: every field of the spec.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ActiveCall {
    pub id: i32,
    pub caller: Option<String>,
    pub callee: Option<String>,
    pub status: Option<String>,
    pub established_at: Option<String>,
    pub last_change_status: Option<String>,
    pub server_now: Option<String>,
}

/// `Pbx.License` (20.0.10, with the `Is*` edition flags).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct License {
    pub product_code: Option<String>,
    pub max_sim_calls: Option<i32>,
    pub is_enterprise: Option<bool>,
    pub is_professional: Option<bool>,
    /// The spec's spelling.
    pub is_maintaince_expired: Option<bool>,
    pub is_branding_enabled: Option<bool>,
    pub is_cfd_enabled: Option<bool>,
    pub country_code: Option<String>,
}

/// `Pbx.LicenseStatus`: every field of the spec.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LicenseStatus {
    pub license_key: String,
    pub product_code: Option<String>,
    pub version: Option<String>,
    pub activated: Option<bool>,
    pub license_active: Option<bool>,
    pub expiration_date: Option<String>,
    pub maintenance_expires_at: Option<String>,
    pub max_sim_calls: Option<i32>,
    pub sim_meeting_participants: Option<i32>,
    pub support: Option<bool>,
    pub reseller_name: Option<String>,
    pub active_modules: Vec<String>,
    pub admin_e_mail: Option<String>,
    pub e_mail: Option<String>,
    pub contact_name: Option<String>,
    pub company_name: Option<String>,
    pub country_name: Option<String>,
    pub country_code: Option<String>,
    pub telephone: Option<String>,
}
