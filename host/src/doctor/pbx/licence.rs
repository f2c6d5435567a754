//! The 3CX licence as the XAPI reports it, and the verdict on whether it
//! lets the API client use the XAPI (an active Enterprise licence).

use super::LICENCE;
use crate::doctor::report::Check;
use serde::Deserialize;
/// `Pbx.License`, the fields the verdict reads (operationId
/// `GetLicenseParameters`, `GET /xapi/v1/Defs/Pbx.GetLicenseParameters()`).
/// The `Is*` edition flags exist from 20.0.10 on.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LicenseParameters {
    /// Licence product code, e.g. "3CXPSENT"; values are not documented.
    pub product_code: Option<String>,
    /// Enterprise edition (20.0.10+).
    pub is_enterprise: Option<bool>,
    /// Professional edition (20.0.10+).
    pub is_professional: Option<bool>,
}

/// `Pbx.LicenseStatus`, the fields the verdict reads (operationId
/// `GetLicenseStatus`, `GET /xapi/v1/LicenseStatus`). `LicenseKey` is never
/// requested: it is not ours to print.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LicenseStatus {
    /// Whether the licence was activated.
    pub activated: Option<bool>,
    /// Whether the licence is currently active (not expired).
    pub license_active: Option<bool>,
    /// When the licence expires.
    pub expiration_date: Option<String>,
}

/// Whether this licence lets the API client use the XAPI.
///
/// [ASSUMED] (3CX NOTES §1 and §6 "Preflight logic"; DESIGN "3CX XAPI needs
/// an Enterprise licence"): the XAPI needs an Enterprise licence (8SC+
/// Enterprise, or the AI edition) that is activated and active.
/// `IsEnterprise` decides when present; 3CX before 20.0.10 lacks it, and
/// then a `ProductCode` containing "ENT" is read as Enterprise (the spec
/// does not document the codes). This is the only function that relies on
/// either reading.
pub fn licence_check(params: &LicenseParameters, status: &LicenseStatus) -> Check {
    const UPGRADE: &str = "3CX serves the XAPI only on an Enterprise licence (8SC+ Enterprise, or the AI edition): upgrade this PBX's licence with your 3CX partner, then run connectzero doctor again";
    if status.activated == Some(false) {
        return Check::fail(
            LICENCE,
            "the licence is not activated",
            "activate the licence in the 3CX Admin Console (Admin > License), then run connectzero doctor again",
        );
    }
    if status.license_active == Some(false) {
        let until = status
            .expiration_date
            .as_deref()
            .map(|d| format!(" (expired {d})"))
            .unwrap_or_default();
        return Check::fail(
            LICENCE,
            format!("the licence is not active{until}"),
            "renew the 3CX licence with your 3CX partner (Admin > License shows its state), then run connectzero doctor again",
        );
    }
    let code = params.product_code.as_deref().unwrap_or("no product code");
    match params.is_enterprise {
        Some(true) => Check::pass(LICENCE, format!("Enterprise ({code}), active")),
        Some(false) => {
            let edition = if params.is_professional == Some(true) {
                "Professional"
            } else {
                "not Enterprise"
            };
            Check::fail(
                LICENCE,
                format!("the edition is {edition} ({code})"),
                UPGRADE,
            )
        }
        None if code.to_ascii_uppercase().contains("ENT") => Check::pass(
            LICENCE,
            format!("Enterprise by its product code ({code}), active"),
        ),
        None => Check::fail(
            LICENCE,
            format!(
                "could not confirm an Enterprise edition (product code {code}; 3CX before 20.0.10 does not report the edition)"
            ),
            format!(
                "{UPGRADE}; if the licence is Enterprise already, update 3CX to 20.0.10 or later so it reports the edition"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Status;
    fn active() -> LicenseStatus {
        LicenseStatus {
            activated: Some(true),
            license_active: Some(true),
            expiration_date: None,
        }
    }

    fn params(code: &str, enterprise: Option<bool>) -> LicenseParameters {
        LicenseParameters {
            product_code: Some(code.into()),
            is_enterprise: enterprise,
            is_professional: enterprise.map(|e| !e),
        }
    }

    #[test]
    fn an_active_enterprise_licence_qualifies() {
        let check = licence_check(&params("3CXPSENT", Some(true)), &active());
        assert_eq!(check.status, Status::Pass, "{check:?}");
        assert!(check.detail.contains("Enterprise"));
    }

    #[test]
    fn professional_does_not_qualify_and_says_to_upgrade() {
        let check = licence_check(&params("3CXPSPRO", Some(false)), &active());
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("Professional"), "{check:?}");
        assert!(check.hint.unwrap().contains("Enterprise licence"));
    }

    #[test]
    fn the_edition_flag_wins_over_the_product_code() {
        let check = licence_check(&params("3CXPSENT", Some(false)), &active());
        assert_eq!(check.status, Status::Fail);
    }

    #[test]
    fn before_20_0_10_the_product_code_decides() {
        let ent = licence_check(&params("3CXPSENT", None), &active());
        assert_eq!(ent.status, Status::Pass, "{ent:?}");
        let pro = licence_check(&params("3CXPSPRO", None), &active());
        assert_eq!(pro.status, Status::Fail);
        assert!(pro.hint.unwrap().contains("20.0.10"));
    }

    #[test]
    fn an_expired_or_unactivated_enterprise_licence_fails() {
        let expired = LicenseStatus {
            license_active: Some(false),
            expiration_date: Some("2026-01-01T00:00:00Z".into()),
            ..active()
        };
        let check = licence_check(&params("3CXPSENT", Some(true)), &expired);
        assert_eq!(check.status, Status::Fail);
        assert!(check.detail.contains("2026-01-01"), "{check:?}");
        assert!(check.hint.unwrap().contains("renew"));
        let unactivated = LicenseStatus {
            activated: Some(false),
            ..active()
        };
        let check = licence_check(&params("3CXPSENT", Some(true)), &unactivated);
        assert!(check.detail.contains("not activated"), "{check:?}");
    }
}
