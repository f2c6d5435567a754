//! Finding out whether 3CX has finalised a recording, and moving its audio.

use guest_support::StageError;
use guest_support::api::ApiClient;
use guest_support::bindings::connectzero::pipeline::types::{Service, TenantSettings};
use guest_support::http::{self, HttpMethod, StreamError};
use serde::Deserialize;

/// `Version` header of the conversations API.
const CONVERSATIONS_VERSION: &str = "2021-04-15";

/// The two APIs a recording moves between.
pub struct Apis {
    pbx: ApiClient,
    crm: ApiClient,
    location_id: String,
}

impl Apis {
    /// Clients for the tenant.
    pub fn new(settings: &TenantSettings) -> Self {
        Self {
            pbx: ApiClient::new(
                Service::Pbx,
                &format!("{}/xapi/v1", settings.pbx_base_url.trim_end_matches('/')),
            ),
            crm: ApiClient::new(Service::Crm, &settings.crm_base_url)
                .with_header("Version", CONVERSATIONS_VERSION),
            location_id: settings.crm_location_id.clone(),
        }
    }

    /// Whether recording `id` is final (operationId `ListRecording`).
    ///
    /// [ASSUMED] (3CX NOTES §3): nothing in the API marks a recording as
    /// final; it counts as final once `EndTime` is set. A recording 3CX has
    /// not listed yet is not final either. This is the one place to change
    /// when the real signal is known.
    pub fn is_final(&self, id: i32) -> Result<bool, StageError> {
        #[derive(Deserialize)]
        struct Row {
            #[serde(rename = "EndTime")]
            end_time: Option<String>,
        }
        #[derive(Deserialize)]
        struct Rows {
            value: Vec<Row>,
        }
        let filter = urlencoding::encode(&format!("Id eq {id}")).into_owned();
        let rows: Rows = self.pbx.get_json(&format!(
            "/Recordings?$filter={filter}&$select=Id,EndTime&$top=1"
        ))?;
        Ok(rows.value.first().is_some_and(|r| r.end_time.is_some()))
    }

    /// Recording `id`'s transcription fields (`ListRecording`); `None`
    /// when 3CX does not list it.
    pub fn transcription(&self, id: i32) -> Result<Option<crate::transcripts::Row>, StageError> {
        #[derive(Deserialize)]
        struct Rows {
            value: Vec<crate::transcripts::Row>,
        }
        let filter = urlencoding::encode(&format!("Id eq {id}")).into_owned();
        let rows: Rows = self.pbx.get_json(&format!(
            "/Recordings?$filter={filter}&$select={}&$top=1",
            crate::transcripts::SELECT
        ))?;
        Ok(rows.value.into_iter().next())
    }

    /// Stream recording `id` from 3CX (operationId `DownloadRecording`) into
    /// a HighLevel upload (operationId `upload-file-attachments`); returns
    /// the hosted URL.
    pub fn transfer(
        &self,
        id: i32,
        file_name: &str,
        contact_id: &str,
        conversation_id: &str,
    ) -> Result<String, StageError> {
        let (download, pbx_token) = self.pbx.authorized(
            HttpMethod::Get,
            &format!("/Recordings/Pbx.DownloadRecording(recId={id})"),
            None,
        )?;
        let boundary = format!("connectzero-{id}-{}", guest_support::time::now_ms());
        let (upload, crm_token) = self.crm.authorized(
            HttpMethod::Post,
            "/conversations/messages/upload",
            Some(&format!("multipart/form-data; boundary={boundary}")),
        )?;
        let (prefix, suffix) = multipart_envelope(
            &boundary,
            &[
                ("conversationId", conversation_id),
                ("contactId", contact_id),
                ("locationId", &self.location_id),
            ],
            file_name,
            "audio/x-wav",
        );
        match http::stream_to_upload(&download, &upload, &prefix, &suffix) {
            Ok((response, _bytes)) => {
                if response.status == 401 {
                    self.crm.reject_token(&crm_token);
                }
                let response = self.crm.check(response)?;
                uploaded_url(&self.crm, &response, file_name)
            }
            Err(StreamError::DownloadStatus(response)) => {
                if response.status == 401 {
                    self.pbx.reject_token(&pbx_token);
                }
                Err(self.pbx.check(response).err().unwrap_or_else(|| {
                    StageError::InvalidData("3CX answered the download without audio".into())
                }))
            }
            Err(StreamError::Transport(reason)) => {
                Err(guest_support::budget::request_error(reason))
            }
        }
    }

    /// Set the message's attachments (operationId `add-message-attachments`;
    /// replaces the list, so repeating it never duplicates).
    pub fn attach(&self, message_id: &str, urls: &[String]) -> Result<(), StageError> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            attachments: &'a [String],
        }
        self.crm.put_json(
            &format!(
                "/conversations/messages/{}/attachments",
                urlencoding::encode(message_id)
            ),
            &Body { attachments: urls },
        )
    }
}

/// The multipart text before and after the file's bytes.
pub fn multipart_envelope(
    boundary: &str,
    fields: &[(&str, &str)],
    file_name: &str,
    content_type: &str,
) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = String::new();
    for (name, value) in fields {
        prefix.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    prefix.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"fileAttachment\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    ));
    // The body ends with the close delimiter itself (RFC 2046 makes the
    // CRLF after it optional). A parser stops reading at the close
    // delimiter and the server may answer at once: bytes still in flight
    // after it made the connection fail after the file was stored, and the
    // retry uploaded the file again.
    (
        prefix.into_bytes(),
        format!("\r\n--{boundary}--").into_bytes(),
    )
}

/// The hosted URL from `{"uploadedFiles": {"<file name>": "<url>"}}`
/// ([ASSUMED] map shape, HighLevel NOTES §4.5).
pub fn uploaded_url(
    crm: &ApiClient,
    response: &http::Response,
    file_name: &str,
) -> Result<String, StageError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Uploaded {
        uploaded_files: std::collections::BTreeMap<String, String>,
    }
    let uploaded: Uploaded = crm.decode_json("/conversations/messages/upload", response)?;
    uploaded
        .uploaded_files
        .get(file_name)
        .or_else(|| uploaded.uploaded_files.values().next())
        .cloned()
        .ok_or_else(|| {
            StageError::InvalidData("HighLevel accepted the upload but returned no URL".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_carries_the_fields_and_the_file_part() {
        let (prefix, suffix) =
            multipart_envelope("b", &[("contactId", "c1")], "call.wav", "audio/x-wav");
        let prefix = String::from_utf8(prefix).unwrap();
        assert!(prefix.starts_with(
            "--b\r\nContent-Disposition: form-data; name=\"contactId\"\r\n\r\nc1\r\n"
        ));
        assert!(prefix.ends_with("filename=\"call.wav\"\r\nContent-Type: audio/x-wav\r\n\r\n"));
        assert_eq!(
            suffix, b"\r\n--b--",
            "nothing may follow the close delimiter"
        );
    }
}
