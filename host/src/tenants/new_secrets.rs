//! The secrets `tenant add` stores, read from `name=value` lines on
//! standard input or from environment variables, never from arguments.

use super::{ACTION_SECRET, TenantsError};
use crate::config::Secret;
use crate::credentials::names::{CRM_CLIENT_SECRET, PBX_CLIENT_SECRET};
/// The secrets `tenant add` stores, read from the environment or stdin.
#[derive(Clone, Debug, Default)]
pub struct NewSecrets {
    /// The 3CX API client's key.
    pub pbx_client_secret: Secret,
    /// The HighLevel app's OAuth client secret.
    pub crm_client_secret: Secret,
    /// The action/subscription secret header value, if any.
    pub action_secret: Option<Secret>,
}

/// Environment variables `tenant add` reads the secrets from.
pub const SECRET_ENV: [(&str, &str); 3] = [
    (PBX_CLIENT_SECRET, "CONNECTZERO_PBX_CLIENT_SECRET"),
    (CRM_CLIENT_SECRET, "CONNECTZERO_CRM_CLIENT_SECRET"),
    (ACTION_SECRET, "CONNECTZERO_ACTION_SECRET"),
];

impl NewSecrets {
    /// Secrets from `name=value` lines (`stdin`, when given) and else the
    /// [`SECRET_ENV`] variables read by `env`. The 3CX and HighLevel client
    /// secrets are required.
    pub fn read(
        stdin: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TenantsError> {
        let mut from_stdin = std::collections::HashMap::new();
        if let Some(text) = stdin {
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let Some((name, value)) = line.split_once('=') else {
                    return Err(TenantsError::Invalid(
                        "a line on standard input is not `name=value`: give lines `pbx.client_secret=…`, `crm.client_secret=…` and optionally `actions.secret=…`".into(),
                    ));
                };
                let name = name.trim();
                if !SECRET_ENV.iter().any(|(n, _)| *n == name) {
                    return Err(TenantsError::Invalid(format!(
                        "unknown secret {name:?} on standard input: the names are pbx.client_secret, crm.client_secret and actions.secret"
                    )));
                }
                from_stdin.insert(name.to_string(), value.trim().to_string());
            }
        }
        let get = |name: &str| -> Option<Secret> {
            let env_name = SECRET_ENV.iter().find(|(n, _)| *n == name)?.1;
            from_stdin
                .get(name)
                .cloned()
                .or_else(|| env(env_name))
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        };
        let required = |name: &'static str| {
            get(name).ok_or(TenantsError::MissingSecret {
                name,
                env: SECRET_ENV
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("", |(_, e)| e),
            })
        };
        Ok(Self {
            pbx_client_secret: required(PBX_CLIENT_SECRET)?,
            crm_client_secret: required(CRM_CLIENT_SECRET)?,
            action_secret: get(ACTION_SECRET),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_stdin_lines_or_the_environment() {
        let env = |name: &str| (name == "CONNECTZERO_CRM_CLIENT_SECRET").then(|| "env-crm".into());
        let read = NewSecrets::read(Some("pbx.client_secret = in-pbx\n"), env).unwrap();
        assert_eq!(read.pbx_client_secret.expose(), "in-pbx");
        assert_eq!(read.crm_client_secret.expose(), "env-crm");
        assert!(read.action_secret.is_none());
        let missing = NewSecrets::read(None, |_| None).unwrap_err().to_string();
        assert!(
            missing.contains("CONNECTZERO_PBX_CLIENT_SECRET"),
            "{missing}"
        );
        assert!(NewSecrets::read(Some("password=x"), |_| None).is_err());
    }
}
