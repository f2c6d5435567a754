//! `POST /conversations/messages/upload` (operationId `upload-file-attachments`).
//!
//! `multipart/form-data` `UploadFilesDto`: text fields `conversationId`,
//! `contactId`, `locationId`, files under `fileAttachment`. Files are streamed
//! chunk by chunk and only counted, never kept, so arbitrarily large bodies
//! pass through in constant memory (the 2 MB axum default body limit is
//! lifted for this route). Responses:
//! - 200 `{"uploadedFiles": {"<file name>": "<hosted url>"}}` [ASSUMED map,
//!   NOTES.md §4.5]; hosted URLs point at the simulator, which does not serve them;
//! - 400 `BadRequestDTO` for a malformed form, a missing field, or a
//!   conversation that is unknown or not the contact's; 403 for another location;
//! - 413 / 415 `UploadFilesErrorResponseDto` `{"status":413,"message":"Failed
//!   to upload the files"}` for a file over the size cap or with an extension
//!   outside JPG, JPEG, PNG, MP4, MPEG, ZIP, RAR, PDF, DOC, DOCX, TXT, MP3, WAV.
//!
//! `attachmentUrls`, marked required by the spec, is not required [ASSUMED].

use std::collections::HashMap;

use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Extension, Multipart, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::{AppState, Caller};
use crate::highlevel::error::ApiError;
use crate::highlevel::ids;
use crate::highlevel::model::Upload;

const ALLOWED_EXTENSIONS: [&str; 13] = [
    "jpg", "jpeg", "png", "mp4", "mpeg", "zip", "rar", "pdf", "doc", "docx", "txt", "mp3", "wav",
];
/// Text fields are ids; anything longer is truncated.
const MAX_TEXT_FIELD: usize = 4096;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(
        "/conversations/messages/upload",
        post(upload).layer(DefaultBodyLimit::disable()),
    )
}

/// A file part as received: metadata and byte count only.
struct Received {
    file_name: String,
    content_type: Option<String>,
    size: u64,
}

fn malformed(err: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Malformed multipart body: {err}"))
}

/// Counts a part's bytes without keeping them.
async fn drain(field: &mut Field<'_>) -> Result<u64, ApiError> {
    let mut size = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        size += chunk.len() as u64;
    }
    Ok(size)
}

/// Reads a small text part, keeping at most `MAX_TEXT_FIELD` bytes.
async fn text(field: &mut Field<'_>) -> Result<String, ApiError> {
    let mut kept = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        let room = MAX_TEXT_FIELD.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    Ok(String::from_utf8_lossy(&kept).trim().to_owned())
}

fn extension_allowed(file_name: &str) -> bool {
    file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .is_some_and(|ext| ALLOWED_EXTENSIONS.contains(&ext.as_str()))
}

/// operationId `upload-file-attachments`.
async fn upload(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
    let mut multipart = multipart.map_err(|rejection| malformed(rejection.body_text()))?;
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut files: Vec<Received> = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "fileAttachment" {
            let file_name = field.file_name().unwrap_or_default().to_owned();
            let content_type = field.content_type().map(str::to_owned);
            let size = drain(&mut field).await?;
            files.push(Received {
                file_name,
                content_type,
                size,
            });
        } else if ["conversationId", "contactId", "locationId"].contains(&name.as_str()) {
            let value = text(&mut field).await?;
            fields.insert(name, value);
        } else {
            drain(&mut field).await?;
        }
    }

    let field = |name: &str| {
        fields
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| ApiError::bad_request(format!("{name} should not be empty")))
    };
    let conversation_id = field("conversationId")?;
    let contact_id = field("contactId")?;
    let location_id = caller.require(Some(&field("locationId")?))?;
    if files.is_empty() {
        return Err(ApiError::bad_request("fileAttachment should not be empty"));
    }
    let max = app.lock().max_upload_bytes;
    if files.iter().any(|f| f.size > max) {
        return Err(ApiError::Upload(StatusCode::PAYLOAD_TOO_LARGE));
    }
    if !files.iter().all(|f| extension_allowed(&f.file_name)) {
        return Err(ApiError::Upload(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }

    let mut state = app.lock();
    let conversation = state
        .conversation(&conversation_id)
        .filter(|c| c.location_id == location_id)
        .ok_or_else(|| ApiError::bad_request("Conversation not found"))?;
    if conversation.contact_id != contact_id {
        return Err(ApiError::bad_request(
            "The conversation does not belong to this contact",
        ));
    }
    let mut uploaded = Map::new();
    for file in files {
        let url = format!(
            "{}/sim-storage/{location_id}/media/{}/{}",
            app.base_url,
            ids::object_id(),
            urlencoding::encode(&file.file_name)
        );
        uploaded.insert(file.file_name.clone(), Value::String(url.clone()));
        state.uploads.push(Upload {
            file_name: file.file_name,
            content_type: file.content_type,
            size: usize::try_from(file.size).unwrap_or(usize::MAX),
            url,
            conversation_id: conversation_id.clone(),
            contact_id: contact_id.clone(),
            location_id: location_id.clone(),
        });
    }
    Ok(Json(json!({"uploadedFiles": uploaded})))
}

#[cfg(test)]
mod unit {
    use super::extension_allowed;

    #[test]
    fn extensions_follow_the_spec_list() {
        assert!(extension_allowed("call-123.MP3"));
        assert!(extension_allowed("voicemail.wav"));
        assert!(!extension_allowed("script.exe"));
        assert!(!extension_allowed("no-extension"));
    }
}
