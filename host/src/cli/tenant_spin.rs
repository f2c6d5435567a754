//! `connectzero tenant spin …`: the tenants of a Spin deployment, through
//! its admin API (`/admin/tenants`, `components/app/src/tenants.rs`).
//!
//! The admin secret comes from CONNECTZERO_SPIN_ADMIN_SECRET and tenant
//! secrets from the environment or standard input, never from arguments
//! (every user can read a process's arguments with `ps`).

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Environment variable holding the deployment's `admin_secret`.
const ADMIN_SECRET_ENV: &str = "CONNECTZERO_SPIN_ADMIN_SECRET";

/// The tenant secrets and the environment variables they may come from.
const SECRET_ENV: [(&str, &str); 2] = [
    ("pbx_client_secret", "CONNECTZERO_PBX_CLIENT_SECRET"),
    ("crm_refresh_token", "CONNECTZERO_CRM_REFRESH_TOKEN"),
];

/// The longest an admin call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The arguments of `connectzero tenant spin`.
#[derive(clap::Args)]
pub struct SpinTenantArgs {
    /// The Spin deployment's base URL, e.g. https://connectzero.example.com.
    #[arg(long, value_name = "URL", env = "CONNECTZERO_SPIN_URL")]
    url: String,
    /// What to do.
    #[command(subcommand)]
    command: SpinTenantCommand,
}

/// The subcommands of `connectzero tenant spin`.
#[derive(Subcommand)]
enum SpinTenantCommand {
    /// List the tenants kept in the deployment's store.
    List,
    /// Show a tenant's settings (secrets shown as "(set)").
    Show {
        /// Tenant id.
        id: String,
    },
    /// Create a tenant or change its settings.
    ///
    /// Settings are the Spin app's tenant variables (pbx_base_url,
    /// pbx_client_id, crm_location_id, crm_conversation_provider_id,
    /// default_country, policy_json, ...; `""` unsets one). The secrets
    /// come from CONNECTZERO_PBX_CLIENT_SECRET and
    /// CONNECTZERO_CRM_REFRESH_TOKEN, or with --secrets-stdin from
    /// `pbx_client_secret=…` / `crm_refresh_token=…` lines. The OAuth
    /// install at /t/<ID>/oauth/install is kept only for the tenant's
    /// crm_location_id.
    Set {
        /// Tenant id: lower-case letters, digits, `-` and `_`.
        id: String,
        /// A setting, `key=value` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Read the secrets from standard input instead of the environment.
        #[arg(long)]
        secrets_stdin: bool,
    },
    /// Remove a tenant with all its keys (ledger, cursor, tokens).
    Remove {
        /// Tenant id.
        id: String,
        /// Confirm: the tenant's data cannot be recovered.
        #[arg(long)]
        yes: bool,
    },
}

/// `connectzero tenant spin …`.
pub fn run(args: SpinTenantArgs) -> anyhow::Result<()> {
    let secret = std::env::var(ADMIN_SECRET_ENV).map_err(|_| {
        anyhow::anyhow!("set {ADMIN_SECRET_ENV} to the deployment's admin_secret variable")
    })?;
    let base = args.url.trim_end_matches('/').to_string();
    // The admin secret travels with every call: plain http only to this
    // machine.
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| {
            base.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    anyhow::ensure!(
        base.starts_with("https://") || loopback,
        "--url must be the deployment's https:// address, e.g. https://connectzero.example.com (plain http:// only for 127.0.0.1 or localhost)"
    );
    let admin = Admin { base, secret };
    // The CLI's runtime is tokio's (main); the calls are few and short.
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(command(&admin, args.command))
    })
}

async fn command(admin: &Admin, command: SpinTenantCommand) -> anyhow::Result<()> {
    match command {
        SpinTenantCommand::List => {
            let list = admin.call(reqwest::Method::GET, "", None).await?;
            let ids = list["tenants"].as_array().cloned().unwrap_or_default();
            if ids.is_empty() {
                println!("no tenants: add one with `connectzero tenant spin set <ID> --set ...`");
            }
            for id in ids {
                println!("{}", id.as_str().unwrap_or_default());
            }
        }
        SpinTenantCommand::Show { id } => {
            let shown = admin.call(reqwest::Method::GET, &id, None).await?;
            if let Some(settings) = shown["settings"].as_object() {
                for (key, value) in settings {
                    println!("{key} = {}", value.as_str().unwrap_or_default());
                }
            }
        }
        SpinTenantCommand::Set {
            id,
            sets,
            secrets_stdin,
        } => {
            let stdin = if secrets_stdin {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("reading the secrets from standard input")?;
                Some(text)
            } else {
                None
            };
            let settings = settings(&sets, stdin.as_deref(), |n| std::env::var(n).ok())?;
            let answer = admin
                .call(
                    reqwest::Method::PUT,
                    &id,
                    Some(json!({ "settings": settings })),
                )
                .await?;
            let verb = if answer["created"] == true {
                "created"
            } else {
                "updated"
            };
            println!("{verb} tenant {id}; it is ticked from the next POST /tick");
        }
        SpinTenantCommand::Remove { id, yes } => {
            if !yes {
                anyhow::bail!(
                    "removing tenant {id} deletes its ledger, cursor and tokens for good: run again with --yes to confirm"
                );
            }
            let answer = admin.call(reqwest::Method::DELETE, &id, None).await?;
            if answer["removed"] == true {
                println!("removed tenant {id} and its keys");
            } else {
                println!("there was no tenant {id}");
            }
        }
    }
    Ok(())
}

/// The settings a `set` sends: `--set` pairs, then the secrets from
/// standard input (when given) or the environment. A secret given with
/// `--set` is refused: it would show in `ps`.
fn settings(
    sets: &[String],
    stdin: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Map<String, Value>> {
    let mut settings = Map::new();
    for pair in sets {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--set {pair:?}: write key=value"))?;
        let key = key.trim();
        anyhow::ensure!(
            !SECRET_ENV.iter().any(|(name, _)| *name == key),
            "--set {key}=… would show the secret to every user of this machine (ps): give it in {} or with --secrets-stdin",
            SECRET_ENV
                .iter()
                .find(|(name, _)| *name == key)
                .map_or("", |(_, var)| var)
        );
        settings.insert(key.to_string(), Value::String(value.trim().to_string()));
    }
    match stdin {
        Some(text) => {
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let (key, value) = line
                    .split_once('=')
                    .context("a secrets line is name=value")?;
                let key = key.trim();
                anyhow::ensure!(
                    SECRET_ENV.iter().any(|(name, _)| *name == key),
                    "standard input takes only {} (got a line for {key:?})",
                    SECRET_ENV.map(|(n, _)| n).join(" and ")
                );
                settings.insert(key.to_string(), Value::String(value.trim().to_string()));
            }
        }
        None => {
            for (name, var) in SECRET_ENV {
                if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
                    settings.insert(name.to_string(), Value::String(value.trim().to_string()));
                }
            }
        }
    }
    Ok(settings)
}

/// The deployment's admin API.
struct Admin {
    base: String,
    secret: String,
}

impl Admin {
    /// Call `/admin/tenants[/<id>]`; a refusal is an error with the app's
    /// words.
    async fn call(
        &self,
        method: reqwest::Method,
        id: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = if id.is_empty() {
            format!("{}/admin/tenants", self.base)
        } else {
            format!("{}/admin/tenants/{id}", self.base)
        };
        let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        let mut request = client.request(method, &url).bearer_auth(&self.secret);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let said = answer["error"].as_str().unwrap_or("no explanation");
            anyhow::bail!("{url} answered {status}: {said}");
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_come_from_arguments() {
        let refused = settings(&["pbx_client_secret=x".into()], None, |_| None).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("CONNECTZERO_PBX_CLIENT_SECRET")
        );
    }

    #[test]
    fn secrets_come_from_the_environment_or_standard_input() {
        let env = |name: &str| (name == "CONNECTZERO_PBX_CLIENT_SECRET").then(|| "s3".to_string());
        let from_env = settings(&["pbx_client_id=cz".into()], None, env).unwrap();
        assert_eq!(from_env["pbx_client_id"], "cz");
        assert_eq!(from_env["pbx_client_secret"], "s3");
        assert!(from_env.get("crm_refresh_token").is_none());
        let from_stdin = settings(&[], Some("crm_refresh_token = r1\n\n"), env).unwrap();
        assert_eq!(from_stdin["crm_refresh_token"], "r1");
        assert!(from_stdin.get("pbx_client_secret").is_none(), "stdin wins");
        assert!(settings(&[], Some("token_key=x"), env).is_err());
        assert!(settings(&["no-equals".into()], None, env).is_err());
    }
}
