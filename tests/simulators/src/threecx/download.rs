//! operationId `DownloadRecording`:
//! `GET /xapi/v1/Recordings/Pbx.DownloadRecording(recId=N)`.
//!
//! Serves the audio as `audio/x-wav` (the spec's JSON `IActionResult` is an
//! artefact of the server framework, NOTES.md §3) with a `Content-Length`,
//! streamed in chunks (see `audio`): the stored bytes of the recording, or
//! synthetic audio set with `ThreeCxSim::set_synthetic_audio`. A failure
//! injected with `ThreeCxSim::fail_downloads` breaks the body off.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::audio::Audio;
use super::error::ODataError;
use super::functions::{NamedArgs, int_arg, parse_invocation};
use super::state::{Shared, lock};

/// The function's name in the path segment.
const FUNCTION: &str = "Pbx.DownloadRecording";

/// Handles `GET /xapi/v1/Recordings/{function}`; only `DownloadRecording`
/// exists (any other function is a 404).
pub(crate) async fn recordings_function(
    State(shared): State<Shared>,
    Path(segment): Path<String>,
) -> Result<Response, ODataError> {
    let invocation = match parse_invocation(&segment) {
        Some(parsed) => parsed?,
        None => return Err(not_found()),
    };
    if invocation.name != FUNCTION {
        return Err(not_found());
    }
    let mut args = NamedArgs::new(FUNCTION, invocation.args)?;
    let rec_id = int_arg("recId", &args.take("recId")?)?;
    args.finish()?;
    let (audio, fail_after) = {
        let mut st = lock(&shared);
        if st.forbidden || st.recordings_forbidden {
            return Err(ODataError::forbidden());
        }
        let rec = st.recordings.iter().find(|r| r.meta.id == rec_id);
        let rec =
            rec.ok_or_else(|| ODataError::not_found(format!("Recording {rec_id} was not found.")))?;
        let audio = match st.synthetic_audio.get(&rec_id) {
            Some(&len) => Audio::Synthetic { len },
            None => Audio::Stored(rec.audio.clone()),
        };
        (audio, st.take_download_failure(rec_id))
    };
    let len = audio.len();
    let mut resp = audio.into_body(fail_after).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("audio/x-wav"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let disposition = format!("attachment; filename=\"recording-{rec_id}.wav\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(resp)
}

fn not_found() -> ODataError {
    ODataError::not_found("No HTTP resource was found that matches the request URI.")
}

/// The `recId` of a raw (percent-encoded) request path naming
/// `Recordings/Pbx.DownloadRecording(recId=N)`, if it is one.
pub(crate) fn requested_rec_id(raw_path: &str) -> Option<i32> {
    let segment = raw_path.strip_prefix("/xapi/v1/Recordings/")?;
    let segment = urlencoding::decode(segment).ok()?;
    let invocation = parse_invocation(&segment)?.ok()?;
    if invocation.name != FUNCTION {
        return None;
    }
    let (_, raw) = invocation.args.iter().find(|(name, _)| name == "recId")?;
    int_arg("recId", raw).ok()
}

#[cfg(test)]
mod tests {
    use super::requested_rec_id;

    #[test]
    fn rec_id_is_read_from_raw_paths() {
        let path = "/xapi/v1/Recordings/Pbx.DownloadRecording(recId=3301)";
        assert_eq!(requested_rec_id(path), Some(3301));
        let encoded = "/xapi/v1/Recordings/Pbx.DownloadRecording%28recId%3D42%29";
        assert_eq!(requested_rec_id(encoded), Some(42));
        assert_eq!(requested_rec_id("/xapi/v1/Recordings"), None);
        assert_eq!(
            requested_rec_id("/xapi/v1/Recordings/Pbx.Other(recId=1)"),
            None
        );
    }
}
