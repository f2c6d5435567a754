//! `connectzero init`'s edit of a configuration file: one tenant's 3CX
//! and HighLevel entries and its public URL, everything else of the file
//! (other tenants, settings, the database) kept as it was.
//!
//! The file is read and written as a TOML table, so values survive but
//! comments do not (the command keeps the previous file as `<file>.bak`,
//! without its secrets: [`write_config`]). Client secrets and HighLevel
//! tokens never go into the file: the command seals them in the database
//! ([`crate::secrets`]), and [`apply`] removes any left in clear.

use crate::config::HostConfig;
use anyhow::{Context, bail};
use toml::{Table, Value};

mod file;
pub use file::{
    Backup, SECRET_FIELDS, ensure_owner_kept, owner_keepable, strip_secrets, write_config,
};

/// Tenant id a new file's tenant gets unless another is chosen.
pub const DEFAULT_TENANT: &str = "main";

/// What `init` asks for, as answered (or kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answers {
    /// Tenant id.
    pub tenant: String,
    /// 3CX base URL.
    pub pbx_url: String,
    /// 3CX API client id.
    pub pbx_client_id: String,
    /// HighLevel app client id.
    pub crm_client_id: String,
    /// HighLevel location (sub-account) id.
    pub location_id: String,
    /// The app's Call conversation provider id.
    pub provider_id: String,
    /// This host's public URL (`settings.oauth.public_url`).
    pub public_url: String,
    /// HighLevel API base URL, when not the default.
    pub crm_url: Option<String>,
}

/// The values a file holds for one tenant (empty when it has none), and
/// the client secrets it still holds in clear, if any.
#[derive(Clone, Debug, Default)]
pub struct Current {
    /// The values, as [`Answers`].
    pub answers: Answers,
    /// `pbx.client_secret` in clear in the file.
    pub pbx_secret_in_file: Option<String>,
    /// `crm.client_secret` in clear in the file.
    pub crm_secret_in_file: Option<String>,
    /// `crm.refresh_token` in clear in the file.
    pub refresh_token_in_file: Option<String>,
    /// `crm.access_token` in clear in the file.
    pub access_token_in_file: Option<String>,
    /// Whether the file already has this tenant.
    pub exists: bool,
}

fn text(table: Option<&Table>, key: &str) -> Option<String> {
    table
        .and_then(|t| t.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn tenants(file: &Table) -> impl Iterator<Item = &Table> {
    file.get("tenants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_table)
}

/// The id `init` offers: `wanted`, else the file's first tenant, else
/// [`DEFAULT_TENANT`].
pub fn tenant_id(file: &Table, wanted: Option<&str>) -> String {
    wanted
        .map(str::to_owned)
        .or_else(|| tenants(file).find_map(|t| text(Some(t), "id")))
        .unwrap_or_else(|| DEFAULT_TENANT.to_string())
}

/// What `file` holds for tenant `id`.
pub fn current(file: &Table, id: &str) -> Current {
    let Some(tenant) = tenants(file).find(|t| text(Some(t), "id").as_deref() == Some(id)) else {
        return Current {
            answers: Answers {
                tenant: id.to_string(),
                ..Answers::default()
            },
            ..Current::default()
        };
    };
    let sub = |name: &str| tenant.get(name).and_then(Value::as_table);
    let oauth = sub("settings")
        .and_then(|s| s.get("oauth"))
        .and_then(Value::as_table);
    Current {
        answers: Answers {
            tenant: id.to_string(),
            pbx_url: text(sub("pbx"), "base_url").unwrap_or_default(),
            pbx_client_id: text(sub("pbx"), "client_id").unwrap_or_default(),
            crm_client_id: text(sub("crm"), "client_id").unwrap_or_default(),
            location_id: text(sub("crm"), "location_id").unwrap_or_default(),
            provider_id: text(sub("crm"), "conversation_provider_id").unwrap_or_default(),
            public_url: text(oauth, "public_url").unwrap_or_default(),
            crm_url: text(sub("crm"), "base_url"),
        },
        pbx_secret_in_file: text(sub("pbx"), "client_secret"),
        crm_secret_in_file: text(sub("crm"), "client_secret"),
        refresh_token_in_file: text(sub("crm"), "refresh_token"),
        access_token_in_file: text(sub("crm"), "access_token"),
        exists: true,
    }
}

/// Write `answers` into `file`'s tenant (added when missing), remove its
/// client secrets and HighLevel tokens from the file (the caller seals
/// them), and check the result as `run` would.
pub fn apply(file: &mut Table, answers: &Answers) -> anyhow::Result<()> {
    let list = file
        .entry("tenants")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .context("`tenants` in the file is not a list of [[tenants]]")?;
    let at = list
        .iter()
        .position(|t| t.get("id").and_then(Value::as_str) == Some(answers.tenant.as_str()));
    let at = at.unwrap_or_else(|| {
        let mut new = Table::new();
        new.insert("id".into(), Value::String(answers.tenant.clone()));
        list.push(Value::Table(new));
        list.len() - 1
    });
    let tenant = list[at]
        .as_table_mut()
        .context("a [[tenants]] entry is not a table")?;
    let set = |table: &mut Table, key: &str, value: &str| {
        table.insert(key.into(), Value::String(value.to_string()));
    };
    let pbx = section(tenant, "pbx")?;
    set(pbx, "base_url", &answers.pbx_url);
    set(pbx, "client_id", &answers.pbx_client_id);
    pbx.remove("client_secret");
    let crm = section(tenant, "crm")?;
    if let Some(url) = &answers.crm_url {
        set(crm, "base_url", url);
    }
    set(crm, "location_id", &answers.location_id);
    set(crm, "conversation_provider_id", &answers.provider_id);
    set(crm, "client_id", &answers.crm_client_id);
    crm.remove("client_secret");
    crm.remove("refresh_token");
    crm.remove("access_token");
    let oauth = section(section(tenant, "settings")?, "oauth")?;
    set(
        oauth,
        "public_url",
        answers.public_url.trim_end_matches('/'),
    );
    let parsed: HostConfig =
        toml::from_str(&toml::to_string(file)?).context("the configuration would not be valid")?;
    parsed.validate()
}

/// `table[key]` as a table, created when missing.
fn section<'a>(table: &'a mut Table, key: &str) -> anyhow::Result<&'a mut Table> {
    let entry = table
        .entry(key)
        .or_insert_with(|| Value::Table(Table::new()));
    match entry.as_table_mut() {
        Some(t) => Ok(t),
        None => bail!("`{key}` in the file is not a table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
database = "other.db"

[[tenants]]
id = "first"
[tenants.pbx]
base_url = "https://one.example.com"
client_id = "one"
[tenants.crm]
location_id = "L1"
conversation_provider_id = "P1"
client_id = "C1"
[tenants.settings]
default_country = "GB"

[[tenants]]
id = "second"
[tenants.pbx]
base_url = "https://two.example.com"
client_id = "two"
client_secret = "clear-secret"
[tenants.crm]
refresh_token = "clear-refresh"
access_token = "clear-access"
location_id = "L2"
conversation_provider_id = "P2"
client_id = "C2"
[tenants.settings]
log_internal_calls = true
"#;

    #[test]
    fn one_tenant_changes_and_the_rest_of_the_file_stays() {
        let mut file: Table = toml::from_str(FILE).unwrap();
        assert_eq!(tenant_id(&file, None), "first");
        let now = current(&file, "second");
        assert!(now.exists);
        assert_eq!(now.pbx_secret_in_file.as_deref(), Some("clear-secret"));
        let mut answers = now.answers.clone();
        answers.pbx_url = "https://new.example.com".into();
        answers.public_url = "https://cz.example.com/".into();
        apply(&mut file, &answers).unwrap();
        let text = toml::to_string(&file).unwrap();
        assert_eq!(now.refresh_token_in_file.as_deref(), Some("clear-refresh"));
        assert_eq!(now.access_token_in_file.as_deref(), Some("clear-access"));
        for secret in ["clear-secret", "clear-refresh", "clear-access"] {
            assert!(!text.contains(secret), "{text}");
        }
        let config: HostConfig = toml::from_str(&text).unwrap();
        assert_eq!(config.database, "other.db");
        assert_eq!(config.tenants.len(), 2);
        assert_eq!(config.tenants[0].pbx.base_url, "https://one.example.com");
        assert_eq!(config.tenants[0].settings.default_country, "GB");
        assert_eq!(config.tenants[1].pbx.base_url, "https://new.example.com");
        assert!(config.tenants[1].settings.log_internal_calls);
        assert_eq!(
            config.tenants[1].settings.oauth.public_url.as_deref(),
            Some("https://cz.example.com")
        );
    }

    #[test]
    fn a_new_tenant_is_added_and_bad_answers_are_refused() {
        let mut file = Table::new();
        assert_eq!(tenant_id(&file, None), DEFAULT_TENANT);
        let answers = Answers {
            tenant: "acme".into(),
            pbx_url: "https://pbx.example.com".into(),
            pbx_client_id: "cz".into(),
            crm_client_id: "app".into(),
            location_id: "L".into(),
            provider_id: "P".into(),
            public_url: "https://cz.example.com".into(),
            crm_url: None,
        };
        apply(&mut file, &answers).unwrap();
        assert_eq!(current(&file, "acme").answers, answers);
        let mut plain = answers.clone();
        plain.pbx_url = "http://pbx.example.com".into();
        assert!(apply(&mut file.clone(), &plain).is_err());
    }
}
