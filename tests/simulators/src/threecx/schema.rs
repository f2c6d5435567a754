//! Field tables of the served entity types, for validating `$filter`,
//! `$orderby` and `$select`. They mirror the structs in `model`; a unit test
//! keeps the two in step.

use super::odata::Kind;
use super::odata::Schema;

/// `Pbx.CallHistoryView` (operationId `ListCallHistoryView`).
pub(crate) const CALL_HISTORY_VIEW: Schema = Schema {
    type_name: "Pbx.CallHistoryView",
    fields: &[
        ("SegmentId", Kind::Number),
        ("SegmentStartTime", Kind::DateTime),
        ("SegmentEndTime", Kind::DateTime),
        ("SegmentActionId", Kind::Number),
        ("SegmentType", Kind::Number),
        ("SrcId", Kind::Number),
        ("SrcExtendedDisplayName", Kind::String),
        ("SrcDisplayName", Kind::String),
        ("SrcInternal", Kind::Bool),
        ("SrcExternal", Kind::Bool),
        ("SrcDnType", Kind::Number),
        ("SrcDn", Kind::String),
        ("SrcCallerNumber", Kind::String),
        ("SrcParticipantId", Kind::Number),
        ("SrcRecId", Kind::Number),
        ("DstId", Kind::Number),
        ("DstExtendedDisplayName", Kind::String),
        ("DstDisplayName", Kind::String),
        ("DstInternal", Kind::Bool),
        ("DstExternal", Kind::Bool),
        ("DstDnType", Kind::Number),
        ("DstDn", Kind::String),
        ("DstCallerNumber", Kind::String),
        ("DstParticipantId", Kind::Number),
        ("DstRecId", Kind::Number),
        ("CallTime", Kind::Duration),
        ("CallAnswered", Kind::Bool),
    ],
};

/// `Pbx.CallLogData` (operationId `GetCallLogData`).
pub(crate) const CALL_LOG_DATA: Schema = Schema {
    type_name: "Pbx.CallLogData",
    fields: &[
        ("CallId", Kind::Number),
        ("CdrId", Kind::String),
        ("CallHistoryId", Kind::String),
        ("MainCallHistoryId", Kind::String),
        ("SegmentId", Kind::Number),
        ("Indent", Kind::Number),
        ("SubrowDescNumber", Kind::Number),
        ("StartTime", Kind::DateTime),
        ("RingingDuration", Kind::Duration),
        ("TalkingDuration", Kind::Duration),
        ("Answered", Kind::Bool),
        ("Status", Kind::String),
        ("Reason", Kind::String),
        ("Direction", Kind::String),
        ("CallType", Kind::String),
        ("SourceType", Kind::Number),
        ("SourceDn", Kind::String),
        ("SourceCallerId", Kind::String),
        ("SourceDisplayName", Kind::String),
        ("DestinationType", Kind::Number),
        ("DestinationDn", Kind::String),
        ("DestinationCallerId", Kind::String),
        ("DestinationDisplayName", Kind::String),
        ("ActionType", Kind::Number),
        ("actionDnDn", Kind::String),
        ("ActionDnType", Kind::Number),
        ("ActionDnCallerId", Kind::String),
        ("ActionDnDisplayName", Kind::String),
        ("SrcRecId", Kind::Number),
        ("DstRecId", Kind::Number),
        ("RecordingUrl", Kind::String),
        ("Recordings", Kind::Collection),
        ("CallCost", Kind::Number),
        ("QualityReport", Kind::Bool),
        ("SentimentScore", Kind::Number),
        ("Summary", Kind::String),
        ("Transcription", Kind::String),
    ],
};

/// `Pbx.User` (operationId `ListUser`).
pub(crate) const USER: Schema = Schema {
    type_name: "Pbx.User",
    fields: &[
        ("Id", Kind::Number),
        ("Number", Kind::String),
        ("FirstName", Kind::String),
        ("LastName", Kind::String),
        ("EmailAddress", Kind::String),
        ("DisplayName", Kind::String),
        ("Mobile", Kind::String),
        ("Enabled", Kind::Bool),
        ("Internal", Kind::Bool),
        ("IsRegistered", Kind::Bool),
        ("PrimaryGroupId", Kind::Number),
        ("OutboundCallerID", Kind::String),
        ("RecordCalls", Kind::Bool),
        ("ForbidRecording", Kind::Bool),
        ("Language", Kind::String),
        ("Tags", Kind::Collection),
    ],
};

/// `Pbx.Recording` (operationId `ListRecording`).
pub(crate) const RECORDING: Schema = Schema {
    type_name: "Pbx.Recording",
    fields: &[
        ("Id", Kind::Number),
        ("RecordingUrl", Kind::String),
        ("StartTime", Kind::DateTime),
        ("EndTime", Kind::DateTime),
        ("CallType", Kind::String),
        ("RefParticipantId", Kind::Number),
        ("FromIdParticipant", Kind::Number),
        ("FromDnType", Kind::Number),
        ("FromDn", Kind::String),
        ("FromCallerNumber", Kind::String),
        ("FromDisplayName", Kind::String),
        ("FromDidNumber", Kind::String),
        ("FromCrmContact", Kind::String),
        ("ToIdParticipant", Kind::Number),
        ("ToDnType", Kind::Number),
        ("ToDn", Kind::String),
        ("ToCallerNumber", Kind::String),
        ("ToDisplayName", Kind::String),
        ("ToDidNumber", Kind::String),
        ("ToCrmContact", Kind::String),
        ("IsArchived", Kind::Bool),
        ("ArchivedUrl", Kind::String),
        ("CanBeTranscribed", Kind::Bool),
        ("IsTranscribed", Kind::Bool),
        ("TranscriptionResult", Kind::Number),
        ("Transcription", Kind::String),
        ("Summary", Kind::String),
        ("SentimentScore", Kind::Number),
    ],
};

/// `Pbx.ActiveCall` (operationId `ListActiveCall`).
pub(crate) const ACTIVE_CALL: Schema = Schema {
    type_name: "Pbx.ActiveCall",
    fields: &[
        ("Id", Kind::Number),
        ("Caller", Kind::String),
        ("Callee", Kind::String),
        ("Status", Kind::String),
        ("EstablishedAt", Kind::DateTime),
        ("LastChangeStatus", Kind::DateTime),
        ("ServerNow", Kind::DateTime),
    ],
};

/// `Pbx.LicenseStatus` (operationId `GetLicenseStatus ($select only)`).
pub(crate) const LICENSE_STATUS: Schema = Schema {
    type_name: "Pbx.LicenseStatus",
    fields: &[
        ("LicenseKey", Kind::String),
        ("ProductCode", Kind::String),
        ("Version", Kind::String),
        ("Activated", Kind::Bool),
        ("LicenseActive", Kind::Bool),
        ("ExpirationDate", Kind::DateTime),
        ("MaintenanceExpiresAt", Kind::DateTime),
        ("MaxSimCalls", Kind::Number),
        ("SimMeetingParticipants", Kind::Number),
        ("Support", Kind::Bool),
        ("ResellerName", Kind::String),
        ("ActiveModules", Kind::Collection),
        ("AdminEMail", Kind::String),
        ("EMail", Kind::String),
        ("ContactName", Kind::String),
        ("CompanyName", Kind::String),
        ("CountryName", Kind::String),
        ("CountryCode", Kind::String),
        ("Telephone", Kind::String),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threecx::model;
    use serde::Serialize;

    fn assert_matches<T: Default + Serialize>(schema: &Schema) {
        let value = serde_json::to_value(T::default()).unwrap();
        let mut wire: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut table: Vec<&str> = schema.fields.iter().map(|(name, _)| *name).collect();
        wire.sort_unstable();
        table.sort_unstable();
        assert_eq!(wire, table, "{}", schema.type_name);
    }

    #[test]
    fn tables_list_exactly_the_serialised_fields() {
        assert_matches::<model::CallHistoryView>(&CALL_HISTORY_VIEW);
        assert_matches::<model::CallLogData>(&CALL_LOG_DATA);
        assert_matches::<model::User>(&USER);
        assert_matches::<model::Recording>(&RECORDING);
        assert_matches::<model::ActiveCall>(&ACTIVE_CALL);
        assert_matches::<model::LicenseStatus>(&LICENSE_STATUS);
    }

    #[test]
    fn call_history_view_has_all_27_spec_fields() {
        assert_eq!(CALL_HISTORY_VIEW.fields.len(), 27);
        assert_eq!(CALL_HISTORY_VIEW.kind_of("CallTime"), Ok(Kind::Duration));
        assert_eq!(CALL_LOG_DATA.kind_of("actionDnDn"), Ok(Kind::String));
    }
}
