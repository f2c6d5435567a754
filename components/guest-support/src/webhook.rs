//! Who may call a webhook endpoint (the Update Call Record action, the
//! trigger subscription route): the shared-secret header, and HighLevel's
//! `x-wh-signature` whenever it is present; and what a trigger
//! subscription call must hold ([`parse_subscription`]). Shared by the
//! write-back and app components and the bundled host's subscription route,
//! so both runtimes check exactly the same way.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::PublicKey;
use rsa::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::triggers::TriggerKind;

/// Header HighLevel signs webhooks with.
pub const SIGNATURE_HEADER: &str = "x-wh-signature";

/// HighLevel's webhook signing key, copied verbatim from
/// `docs/oauth/WebhookAuthentication.md` of the HighLevel API docs.
pub const HIGHLEVEL_WEBHOOK_KEY: &str = include_str!("highlevel_webhook_key.pem");

/// Why a call is refused: an HTTP status and a message saying what is
/// wrong and how to fix it. Messages never contain secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status code: 401 for the caller, 500 for a set-up problem.
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// Check the shared-secret header. Fails closed: with no secret configured
/// every call is refused (500, so the operator sees it is a set-up problem).
pub fn check_secret(
    header_name: &str,
    presented: Option<&str>,
    configured: Option<&str>,
) -> Result<(), Refusal> {
    let Some(configured) = configured else {
        return Err(Refusal::new(
            500,
            "no shared secret is configured, so every call is refused: set the `secret` configuration value and send it in the call's headers",
        ));
    };
    let Some(presented) = presented else {
        return Err(Refusal::new(
            401,
            format!(
                "missing the {header_name} header: add it to the action's headers in the marketplace app settings"
            ),
        ));
    };
    // Comparing digests keeps the comparison constant-time in the secret's
    // length as well as its content.
    let equal = Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(configured.as_bytes()));
    if bool::from(equal) {
        Ok(())
    } else {
        Err(Refusal::new(
            401,
            format!("the {header_name} header does not match this tenant's secret"),
        ))
    }
}

/// The `x-wh-signature` rule of every endpoint HighLevel calls: a
/// signature present is verified (against `configured_key`, else
/// HighLevel's published key); with a key configured, a signature is
/// required, since configuring one says calls are signed. [ASSUMED]
/// (HighLevel NOTES: whether every action call and subscription is signed
/// is not documented): without a configured key, unsigned calls pass on
/// the shared secret alone.
pub fn check_signature(
    configured_key: Option<&str>,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), Refusal> {
    match (signature, configured_key) {
        (Some(signature), key) => {
            verify_signature(key.unwrap_or(HIGHLEVEL_WEBHOOK_KEY), body, signature)
        }
        (None, Some(_)) => Err(Refusal::new(
            401,
            format!(
                "missing the {SIGNATURE_HEADER} header: a public key is configured for this endpoint, so every call must be signed (remove the key setting to accept unsigned calls)"
            ),
        )),
        (None, None) => Ok(()),
    }
}

/// Verify `signature` (base64 RSASSA-PKCS1-v1_5 with SHA-256) over the raw
/// `body` with the PEM public key `public_key_pem`.
pub fn verify_signature(public_key_pem: &str, body: &[u8], signature: &str) -> Result<(), Refusal> {
    let key = PublicKey::from_public_key_pem(public_key_pem.trim()).map_err(|e| {
        Refusal::new(
            500,
            format!(
                "the configured signature public key (signature_public_key) is not a PEM public key (-----BEGIN PUBLIC KEY-----): {e}"
            ),
        )
    })?;
    let refused = |why: &str| {
        Refusal::new(
            401,
            format!(
                "{SIGNATURE_HEADER} {why}: the call was not signed by HighLevel, or the body was changed"
            ),
        )
    };
    let signature = STANDARD
        .decode(signature.trim())
        .map_err(|_| refused("is not base64"))?;
    key.pkcs1v15_verify::<Sha256>(body, &signature)
        .map_err(|_| refused("does not verify"))
}

/// Hex SHA-256 of the raw body: the call's idempotency key.
pub fn body_digest(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The workflow trigger keys ConnectZero offers ([`TriggerKind::key`]).
pub const TRIGGER_KEYS: [&str; 5] = [
    TriggerKind::CallStarted.key(),
    TriggerKind::CallEnded.key(),
    TriggerKind::MissedCall.key(),
    TriggerKind::MissedCallRecovered.key(),
    TriggerKind::CallInsights.key(),
];

/// How a trigger registration changed (`triggerData.eventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionChange {
    /// `CREATED`.
    Created,
    /// `UPDATED`.
    Updated,
    /// `DELETED`.
    Deleted,
}

/// A checked trigger subscription call (HighLevel NOTES §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRequest {
    /// What happened to the registration.
    pub change: SubscriptionChange,
    /// `triggerData.id`.
    pub id: String,
    /// `triggerData.key`: which trigger.
    pub kind: TriggerKind,
    /// `triggerData.targetUrl` (may be empty for `DELETED`).
    pub target_url: String,
    /// `extras.workflowId`, when it is not blank.
    pub workflow_id: Option<String>,
}

/// HighLevel's subscription call body.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionCall {
    trigger_data: TriggerData,
    extras: Extras,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TriggerData {
    id: String,
    key: String,
    event_type: String,
    /// Absent on some DELETED calls.
    #[serde(default)]
    target_url: String,
    // `filters` is accepted and not used: the workflow applies its own.
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Extras {
    location_id: String,
    #[serde(default)]
    workflow_id: Option<String>,
}

/// Read and check a subscription call for the location `location_id`:
/// 400 for a body that is not one, 403 for another location, 422 naming
/// the field for a bad key, event type, id or target URL. Both runtimes'
/// subscription routes use it after [`check_secret`] and
/// [`verify_signature`].
pub fn parse_subscription(body: &[u8], location_id: &str) -> Result<SubscriptionRequest, Refusal> {
    let call: SubscriptionCall = serde_json::from_slice(body).map_err(|e| {
        Refusal::new(
            400,
            format!("not a HighLevel trigger subscription ({{triggerData, extras}}): {e}"),
        )
    })?;
    let (data, extras) = (call.trigger_data, call.extras);
    if extras.location_id != location_id {
        return Err(Refusal::new(
            403,
            format!(
                "extras.locationId {:?} is not this tenant's location: each location has its own subscription URL",
                extras.location_id
            ),
        ));
    }
    let Some(kind) = TriggerKind::from_key(&data.key) else {
        return Err(Refusal::new(
            422,
            format!(
                "triggerData.key {:?} is not a ConnectZero trigger: use one of {}",
                data.key,
                TRIGGER_KEYS.join(", ")
            ),
        ));
    };
    let change = match data.event_type.as_str() {
        "CREATED" => SubscriptionChange::Created,
        "UPDATED" => SubscriptionChange::Updated,
        "DELETED" => SubscriptionChange::Deleted,
        other => {
            return Err(Refusal::new(
                422,
                format!("triggerData.eventType {other:?} must be CREATED, UPDATED or DELETED"),
            ));
        }
    };
    if data.id.trim().is_empty() {
        return Err(Refusal::new(422, "triggerData.id is empty"));
    }
    if change != SubscriptionChange::Deleted && data.target_url.trim().is_empty() {
        return Err(Refusal::new(422, "triggerData.targetUrl is empty"));
    }
    Ok(SubscriptionRequest {
        change,
        id: data.id,
        kind,
        target_url: data.target_url,
        workflow_id: extras.workflow_id.filter(|w| !w.trim().is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::{Generate, PrivateKey};
    use std::sync::OnceLock;

    /// One generated test key pair for all tests: (private key, public PEM).
    fn keypair() -> &'static (PrivateKey, String) {
        static KEY: OnceLock<(PrivateKey, String)> = OnceLock::new();
        KEY.get_or_init(|| {
            let private = PrivateKey::generate();
            let pem = private
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap();
            (private, pem)
        })
    }

    fn sign(body: &[u8]) -> String {
        STANDARD.encode(keypair().0.pkcs1v15_sign::<Sha256>(body).unwrap())
    }

    #[test]
    fn a_valid_signature_verifies() {
        let body = br#"{"data":{"notes":"hi"}}"#;
        assert_eq!(verify_signature(&keypair().1, body, &sign(body)), Ok(()));
    }

    #[test]
    fn a_changed_body_or_signature_is_refused() {
        let body = br#"{"data":{"notes":"hi"}}"#;
        let signature = sign(body);
        let e =
            verify_signature(&keypair().1, br#"{"data":{"notes":"ho"}}"#, &signature).unwrap_err();
        assert_eq!(e.status, 401);
        assert!(e.message.contains("does not verify"));
        let mut bytes = STANDARD.decode(&signature).unwrap();
        bytes[10] ^= 1;
        let e = verify_signature(&keypair().1, body, &STANDARD.encode(bytes)).unwrap_err();
        assert_eq!(e.status, 401);
        let e = verify_signature(&keypair().1, body, "not base64!").unwrap_err();
        assert!(e.message.contains("not base64"));
    }

    #[test]
    fn highlevels_published_key_parses_and_refuses_our_signature() {
        let body = b"{}";
        let e = verify_signature(HIGHLEVEL_WEBHOOK_KEY, body, &sign(body)).unwrap_err();
        assert_eq!(e.status, 401, "{}", e.message);
    }

    #[test]
    fn a_broken_configured_key_is_a_500_naming_the_setting() {
        let e = verify_signature(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            b"{}",
            "AA==",
        )
        .unwrap_err();
        assert_eq!(e.status, 500);
        assert!(e.message.contains("signature_public_key"));
    }

    #[test]
    fn the_secret_must_match_and_must_be_configured() {
        assert_eq!(check_secret("x-s", Some("right"), Some("right")), Ok(()));
        let wrong = check_secret("x-s", Some("wrong"), Some("right")).unwrap_err();
        assert_eq!(wrong.status, 401);
        assert!(!wrong.message.contains("right"), "the secret must not leak");
        let prefix = check_secret("x-s", Some("righ"), Some("right")).unwrap_err();
        assert_eq!(prefix.status, 401);
        let missing = check_secret("x-s", None, Some("right")).unwrap_err();
        assert_eq!(missing.status, 401);
        assert!(missing.message.contains("missing the x-s header"));
        assert_eq!(
            check_secret("x-s", Some("any"), None).unwrap_err().status,
            500
        );
    }

    #[test]
    fn the_digest_is_lower_case_hex_sha256() {
        assert_eq!(
            body_digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn subscription(location: &str, key: &str, event: &str, target: &str) -> Vec<u8> {
        serde_json::json!({
            "triggerData": {"id": "t1", "key": key, "eventType": event, "targetUrl": target},
            "extras": {"locationId": location, "workflowId": " "},
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_subscription_is_checked_field_by_field() {
        let ok = parse_subscription(
            &subscription("loc", "call.ended", "CREATED", "https://x"),
            "loc",
        )
        .unwrap();
        assert_eq!(ok.change, SubscriptionChange::Created);
        assert_eq!((ok.id.as_str(), ok.kind), ("t1", TriggerKind::CallEnded));
        assert_eq!(ok.workflow_id, None, "a blank workflow id is dropped");
        let status = |body: Vec<u8>| parse_subscription(&body, "loc").unwrap_err().status;
        assert_eq!(status(b"not json".to_vec()), 400);
        assert_eq!(
            status(subscription("other", "call.ended", "CREATED", "https://x")),
            403
        );
        assert_eq!(
            status(subscription("loc", "sms.sent", "CREATED", "https://x")),
            422
        );
        assert_eq!(
            status(subscription("loc", "call.ended", "MOVED", "https://x")),
            422
        );
        assert_eq!(
            status(subscription("loc", "call.ended", "CREATED", " ")),
            422
        );
        let deleted =
            parse_subscription(&subscription("loc", "call.ended", "DELETED", ""), "loc").unwrap();
        assert_eq!(deleted.change, SubscriptionChange::Deleted);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Any body verifies with its own signature, and flipping any one
        /// byte of the body is refused.
        #[test]
        fn signatures_bind_every_byte_of_the_body(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..512), flip in proptest::prelude::any::<proptest::sample::Index>()) {
            let signature = sign(&body);
            proptest::prop_assert_eq!(verify_signature(&keypair().1, &body, &signature), Ok(()));
            let mut changed = body.clone();
            let at = flip.index(changed.len());
            changed[at] ^= 0x01;
            proptest::prop_assert_eq!(verify_signature(&keypair().1, &changed, &signature).map_err(|e| e.status), Err(401));
        }
    }
}
