//! `upload-file-attachments` (multipart, streamed).

use reqwest::multipart::{Form, Part};

use super::{Fixture, Reply};

/// Larger than axum's 2 MB default body limit, to prove it is lifted.
const BIG: usize = 8 * 1024 * 1024 + 17;

async fn upload(fx: &Fixture, form: Form) -> Reply {
    let response = fx
        .http
        .post(fx.url("/conversations/messages/upload"))
        .bearer_auth(&fx.token)
        .header("Version", "2021-04-15")
        .multipart(form)
        .send()
        .await
        .expect("send");
    Reply::read(response).await
}

fn form(fx: &Fixture, contact_id: &str, conversation_id: &str) -> Form {
    Form::new()
        .text("conversationId", conversation_id.to_owned())
        .text("contactId", contact_id.to_owned())
        .text("locationId", fx.location())
}

#[tokio::test]
async fn upload_streams_the_file_and_records_its_size() {
    let fx = Fixture::new().await;
    let (contact_id, conversation_id) = fx.contact_with_conversation("5550100020").await;
    let file = Part::bytes(vec![0x5a; BIG])
        .file_name("call-123.mp3")
        .mime_str("audio/mpeg")
        .unwrap();
    let reply = upload(
        &fx,
        form(&fx, &contact_id, &conversation_id).part("fileAttachment", file),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let url = reply.body["uploadedFiles"]["call-123.mp3"]
        .as_str()
        .unwrap();

    let uploads = fx.sim.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].size, BIG);
    assert_eq!(uploads[0].file_name, "call-123.mp3");
    assert_eq!(uploads[0].content_type.as_deref(), Some("audio/mpeg"));
    assert_eq!(uploads[0].conversation_id, conversation_id);
    assert_eq!(uploads[0].url, url);
}

#[tokio::test]
async fn upload_rejects_bad_type_oversize_and_missing_fields() {
    let fx = Fixture::new().await;
    let (contact_id, conversation_id) = fx.contact_with_conversation("5550100021").await;
    let exe = Part::bytes(b"MZ".to_vec()).file_name("tool.exe");
    let reply = upload(
        &fx,
        form(&fx, &contact_id, &conversation_id).part("fileAttachment", exe),
    )
    .await;
    assert_eq!(reply.status, 415);
    assert_eq!(
        reply.body,
        serde_json::json!({"status": 415, "message": "Failed to upload the files"})
    );

    fx.sim.set_max_upload_bytes(1024);
    let big = Part::bytes(vec![0; 4096]).file_name("rec.wav");
    let reply = upload(
        &fx,
        form(&fx, &contact_id, &conversation_id).part("fileAttachment", big),
    )
    .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.body["status"], 413);

    let no_conversation = Form::new()
        .text("contactId", contact_id.clone())
        .text("locationId", fx.location())
        .part("fileAttachment", Part::bytes(vec![1]).file_name("a.txt"));
    assert_eq!(upload(&fx, no_conversation).await.status, 400);
    assert!(fx.sim.uploads().is_empty());
}
