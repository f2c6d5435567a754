//! Who may call a webhook endpoint (the Update Call Record action, the
//! trigger subscription route): the shared-secret header, and HighLevel's
//! `x-wh-signature` whenever it is present. Shared by the write-back and
//! app components so both runtimes check exactly the same way.
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::PublicKey;
use rsa::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
