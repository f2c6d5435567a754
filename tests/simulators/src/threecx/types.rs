//! The scripting types tests hand to [`ThreeCxSim`](super::ThreeCxSim).
//!
//! The spec gives no enums for the integer codes. The simulator uses these
//! **assumed** conventions, matching the example rows in NOTES.md:
//!
//! - `DnType`: [`DN_TYPE_EXTENSION`] = 0 for an extension,
//!   [`DN_TYPE_EXTERNAL_LINE`] = 1 for an external line (trunk / DID DN),
//!   [`DN_TYPE_RING_GROUP`] = 2, [`DN_TYPE_QUEUE`] = 4,
//!   [`DN_TYPE_VOICEMAIL`] = 5, [`DN_TYPE_IVR`] = 6, [`DN_TYPE_END_CALL`] =
//!   12 and [`DN_TYPE_ROUTING`] = 13 (NOTES.md §8: 3CX's own report SQL
//!   and a v20.0.8 database).
//! - `CallLogData.Reason`: free text, `null` unless a segment sets one
//!   ([`SimSegment::with_reason`]); the spec lists no values.
//! - `SegmentActionId` / `SegmentType`: the helper constructors use 1 / 2 for
//!   an answered segment and 0 / 1 for an unanswered one; any value may be set.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// `DnType` of an extension (assumed; 3CX publishes no enum).
pub const DN_TYPE_EXTENSION: i32 = 0;
/// `DnType` of an external line such as a trunk or DID (assumed).
pub const DN_TYPE_EXTERNAL_LINE: i32 = 1;
/// `DnType` of a ring group (assumed).
pub const DN_TYPE_RING_GROUP: i32 = 2;
/// `DnType` of a call queue (assumed).
pub const DN_TYPE_QUEUE: i32 = 4;
/// `DnType` of a voicemail box (assumed).
pub const DN_TYPE_VOICEMAIL: i32 = 5;
/// `DnType` of an IVR / digital receptionist (assumed).
pub const DN_TYPE_IVR: i32 = 6;
/// `DnType` of an EndCall destination: a rule (typically out of office
/// hours) ends the call there (NOTES.md §8).
pub const DN_TYPE_END_CALL: i32 = 12;
/// `DnType` of inbound/outbound routing, an external side (NOTES.md §8).
pub const DN_TYPE_ROUTING: i32 = 13;
/// The trunk DN the helper constructors use for the external party.
pub const DEFAULT_TRUNK_DN: &str = "10000";

/// A failure injected into the next API requests.
#[derive(Clone, Debug)]
pub enum Fault {
    /// `500` with an ODataError body.
    ServerError,
    /// `429` with an ODataError body and a `Retry-After` header.
    TooManyRequests {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// The request is answered normally, but only after this delay.
    Slow(Duration),
}

/// A 3CX user (extension), served by `ListUser` / `GetUserByNumber`.
#[derive(Clone, Debug)]
pub struct SimUser {
    /// `Id`, the DN's numeric key.
    pub id: i32,
    /// `Number`, the extension number, e.g. `"101"`.
    pub number: String,
    /// `FirstName`.
    pub first_name: String,
    /// `LastName`.
    pub last_name: String,
    /// `EmailAddress`.
    pub email: String,
}

impl SimUser {
    /// A user; `DisplayName` is served as `"{first} {last}"`.
    pub fn new(id: i32, number: &str, first_name: &str, last_name: &str, email: &str) -> Self {
        Self {
            id,
            number: number.to_owned(),
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            email: email.to_owned(),
        }
    }
}

/// One side (source or destination) of a call segment.
#[derive(Clone, Debug)]
pub struct SimParty {
    /// `SrcDn`/`DstDn`: `"101"` for an extension, a trunk DN like `"10000"` for an external party.
    pub dn: String,
    /// `SrcCallerNumber`/`DstCallerNumber`: `"+441234567890"` or `"101"`.
    pub caller_number: String,
    /// `SrcDisplayName`/`DstDisplayName`.
    pub display_name: Option<String>,
    /// `SrcInternal`/`DstInternal`: the extension side. `*External` is its negation.
    pub internal: bool,
    /// `SrcDnType`/`DstDnType`: [`DN_TYPE_EXTENSION`], [`DN_TYPE_EXTERNAL_LINE`],
    /// [`DN_TYPE_IVR`], [`DN_TYPE_QUEUE`], [`DN_TYPE_RING_GROUP`] or
    /// [`DN_TYPE_VOICEMAIL`]; any other code may be set.
    pub dn_type: i32,
    /// `SrcParticipantId`/`DstParticipantId`.
    pub participant_id: i32,
    /// `SrcRecId`/`DstRecId`: the `Recording.Id` of this side's recording.
    pub rec_id: Option<i32>,
}

impl SimParty {
    /// An extension: internal, `dn_type` 0, caller number = `dn`.
    pub fn extension(dn: &str, display_name: &str, participant_id: i32) -> Self {
        Self {
            dn: dn.to_owned(),
            caller_number: dn.to_owned(),
            display_name: Some(display_name.to_owned()),
            internal: true,
            dn_type: DN_TYPE_EXTENSION,
            participant_id,
            rec_id: None,
        }
    }

    /// An external number reached through [`DEFAULT_TRUNK_DN`]: not internal,
    /// `dn_type` 1, no display name.
    pub fn external(number: &str, participant_id: i32) -> Self {
        Self {
            dn: DEFAULT_TRUNK_DN.to_owned(),
            caller_number: number.to_owned(),
            display_name: None,
            internal: false,
            dn_type: DN_TYPE_EXTERNAL_LINE,
            participant_id,
            rec_id: None,
        }
    }

    /// An IVR (digital receptionist) `dn`: internal, `dn_type` 6.
    pub fn ivr(dn: &str, display_name: &str, participant_id: i32) -> Self {
        Self::system(dn, display_name, participant_id, DN_TYPE_IVR)
    }

    /// A call queue `dn`: internal, `dn_type` 4.
    pub fn queue(dn: &str, display_name: &str, participant_id: i32) -> Self {
        Self::system(dn, display_name, participant_id, DN_TYPE_QUEUE)
    }

    /// A ring group `dn`: internal, `dn_type` 2.
    pub fn ring_group(dn: &str, display_name: &str, participant_id: i32) -> Self {
        Self::system(dn, display_name, participant_id, DN_TYPE_RING_GROUP)
    }

    /// A voicemail box `dn`: internal, `dn_type` 5.
    pub fn voicemail(dn: &str, display_name: &str, participant_id: i32) -> Self {
        Self::system(dn, display_name, participant_id, DN_TYPE_VOICEMAIL)
    }

    /// An EndCall destination `dn` (an out-of-hours rule): internal,
    /// `dn_type` 12.
    pub fn end_call(dn: &str, display_name: &str, participant_id: i32) -> Self {
        Self::system(dn, display_name, participant_id, DN_TYPE_END_CALL)
    }

    /// An internal DN that is not a user's extension (served with the
    /// given display name, since no user owns it).
    fn system(dn: &str, display_name: &str, participant_id: i32, dn_type: i32) -> Self {
        Self {
            dn_type,
            ..Self::extension(dn, display_name, participant_id)
        }
    }

    /// The same party with a recording id (`SrcRecId`/`DstRecId`).
    pub fn with_recording(mut self, rec_id: i32) -> Self {
        self.rec_id = Some(rec_id);
        self
    }

    /// The same party with a display name.
    pub fn with_display_name(mut self, name: &str) -> Self {
        self.display_name = Some(name.to_owned());
        self
    }
}

/// One call-history row (a leg of a call).
#[derive(Clone, Debug)]
pub struct SimSegment {
    /// `SegmentId`.
    pub segment_id: i32,
    /// Groups the segments of one call; served as `CallLogData.CallId`.
    pub call_id: i32,
    /// `SegmentStartTime`.
    pub start: DateTime<Utc>,
    /// `SegmentEndTime`.
    pub end: DateTime<Utc>,
    /// The calling side.
    pub src: SimParty,
    /// The called side.
    pub dst: SimParty,
    /// `CallAnswered`. `CallTime` is `end - start` when answered, else `PT0S`.
    pub answered: bool,
    /// `SegmentActionId`.
    pub action_id: i32,
    /// `SegmentType`.
    pub segment_type: i32,
    /// `CallLogData.Reason` of this segment (free text; `None` serves `null`).
    pub reason: Option<String>,
}

impl SimSegment {
    /// A segment between two parties. Action id / segment type are 1 / 2 when
    /// answered and 0 / 1 when not (illustrative values from NOTES.md).
    pub fn new(
        segment_id: i32,
        call_id: i32,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        src: SimParty,
        dst: SimParty,
        answered: bool,
    ) -> Self {
        Self {
            segment_id,
            call_id,
            start,
            end,
            src,
            dst,
            answered,
            action_id: if answered { 1 } else { 0 },
            segment_type: if answered { 2 } else { 1 },
            reason: None,
        }
    }

    /// The same segment with a call log `Reason` text (e.g. `"Busy"`).
    pub fn with_reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// An external caller `from_number` calling extension `to_ext`.
    /// Participant ids are `segment_id * 10 + 1` (source) and `+ 2` (destination).
    pub fn inbound(
        segment_id: i32,
        call_id: i32,
        span: (DateTime<Utc>, DateTime<Utc>),
        from_number: &str,
        to_ext: &str,
        answered: bool,
    ) -> Self {
        let (src_pid, dst_pid) = participant_ids(segment_id);
        let src = SimParty::external(from_number, src_pid);
        let dst = SimParty::extension(to_ext, &format!("Ext {to_ext}"), dst_pid);
        Self::new(segment_id, call_id, span, src, dst, answered)
    }

    /// Extension `from_ext` calling the external number `to_number`.
    pub fn outbound(
        segment_id: i32,
        call_id: i32,
        span: (DateTime<Utc>, DateTime<Utc>),
        from_ext: &str,
        to_number: &str,
        answered: bool,
    ) -> Self {
        let (src_pid, dst_pid) = participant_ids(segment_id);
        let src = SimParty::extension(from_ext, &format!("Ext {from_ext}"), src_pid);
        let dst = SimParty::external(to_number, dst_pid);
        Self::new(segment_id, call_id, span, src, dst, answered)
    }

    /// Extension `from_ext` calling extension `to_ext`.
    pub fn internal(
        segment_id: i32,
        call_id: i32,
        span: (DateTime<Utc>, DateTime<Utc>),
        from_ext: &str,
        to_ext: &str,
        answered: bool,
    ) -> Self {
        let (src_pid, dst_pid) = participant_ids(segment_id);
        let src = SimParty::extension(from_ext, &format!("Ext {from_ext}"), src_pid);
        let dst = SimParty::extension(to_ext, &format!("Ext {to_ext}"), dst_pid);
        Self::new(segment_id, call_id, span, src, dst, answered)
    }
}

fn participant_ids(segment_id: i32) -> (i32, i32) {
    let base = segment_id.wrapping_mul(10);
    (base.wrapping_add(1), base.wrapping_add(2))
}

/// A call recording, served by `ListRecording` and `DownloadRecording`.
#[derive(Clone, Debug)]
pub struct SimRecording {
    /// `Id`; referenced by `SrcRecId`/`DstRecId`.
    pub id: i32,
    /// `StartTime`.
    pub start: DateTime<Utc>,
    /// `EndTime`; `None` while the recording is still being written (not final).
    pub end: Option<DateTime<Utc>>,
    /// `FromDn`.
    pub from_dn: String,
    /// `ToDn`.
    pub to_dn: String,
    /// `FromCallerNumber`.
    pub from_caller_number: String,
    /// `ToCallerNumber`.
    pub to_caller_number: String,
    /// `FromDidNumber`: the DID an outbound call left on, bare digits
    /// (e.g. `61881234567`, NOTES.md §8).
    pub from_did_number: Option<String>,
    /// `ToDidNumber`: the DID an inbound call dialled, bare digits. The
    /// only place 3CX's API shows a DID (NOTES.md §8).
    pub to_did_number: Option<String>,
    /// The body `DownloadRecording` serves as `audio/x-wav`.
    pub audio: Vec<u8>,
}

impl SimRecording {
    /// A final recording of `segment` (its parties, start and end).
    pub fn from_segment(id: i32, segment: &SimSegment, audio: Vec<u8>) -> Self {
        Self {
            id,
            start: segment.start,
            end: Some(segment.end),
            from_dn: segment.src.dn.clone(),
            to_dn: segment.dst.dn.clone(),
            from_caller_number: segment.src.caller_number.clone(),
            to_caller_number: segment.dst.caller_number.clone(),
            from_did_number: None,
            to_did_number: None,
            audio,
        }
    }

    /// The same recording of a call that dialled `did` (bare digits, as
    /// 3CX writes `ToDidNumber`).
    pub fn dialled(mut self, did: &str) -> Self {
        self.to_did_number = Some(did.to_owned());
        self
    }

    /// The same recording, still being written (`EndTime` null).
    pub fn in_progress(mut self) -> Self {
        self.end = None;
        self
    }
}

/// A call in progress, served by `ListActiveCall`.
#[derive(Clone, Debug)]
pub struct SimActiveCall {
    /// `Id`.
    pub id: i32,
    /// `Caller`, free text such as `"101 Alice Smith"`.
    pub caller: String,
    /// `Callee`.
    pub callee: String,
    /// `Status`, e.g. `"Talking"`, `"Ringing"`, `"Routing"`.
    pub status: String,
    /// `EstablishedAt` (also served as `LastChangeStatus`).
    pub established_at: DateTime<Utc>,
}

/// A valid WAV file (8 kHz, mono, 16-bit PCM) of `millis` milliseconds of silence.
pub fn silent_wav(millis: u32) -> Vec<u8> {
    let data_len = 8000 / 1000 * millis * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(&super::audio::wav_header(data_len));
    out.resize(44 + data_len as usize, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_wav_has_riff_header_and_length() {
        let wav = silent_wav(100);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
        assert_eq!(wav.len(), 44 + 1600);
    }

    #[test]
    fn helper_constructors_set_sides() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let s = SimSegment::inbound(7, 70, (t, t), "+441234567890", "101", true);
        assert!(!s.src.internal && s.dst.internal);
        assert_eq!(s.src.dn_type, DN_TYPE_EXTERNAL_LINE);
        assert_eq!(s.dst.dn_type, DN_TYPE_EXTENSION);
        assert_eq!((s.src.participant_id, s.dst.participant_id), (71, 72));
        assert_eq!((s.action_id, s.segment_type), (1, 2));
    }
}
