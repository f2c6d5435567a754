//! `connectzero init`: guided set-up of one tenant. Asks for the 3CX
//! address and API client, the HighLevel app and location, writes the
//! configuration file (client secrets sealed in the database, never in the
//! file), runs doctor's checks and prints the install link.
//!
//! Safe to re-run: every question offers the file's current value (Enter
//! keeps it), a secret left empty keeps the stored one, and the rest of
//! the file (other tenants, settings, the database) is kept. Answers are
//! read line by line from standard input, so a script can pipe them;
//! secrets typed at a terminal are not echoed (a terminal whose echo
//! cannot be turned off is refused). The database is `run`'s: `--db` or
//! CONNECTZERO_DB, else the file's `database`. The previous file is kept
//! as `<file>.bak` (mode 0600) without any secret in clear.

use anyhow::{Context, bail};
use connectzero::config::Secret;
use connectzero::credentials::names::{CRM_CLIENT_SECRET, PBX_ACCESS_TOKEN, PBX_CLIENT_SECRET};
use connectzero::location::{DB_ENV, DEFAULT_CONFIG, Location, same_file};
use connectzero::secrets;
use connectzero::setup::{self, Answers};
use connectzero::storage::Storage;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The arguments of `connectzero init`.
#[derive(clap::Args)]
pub struct InitArgs {
    /// The configuration file to create or update.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The database to seal the secrets in, as `run --db` (the file then
    /// names it). Default: the file's `database`, else one beside the file.
    #[arg(long, value_name = "FILE", env = DB_ENV)]
    db: Option<PathBuf>,
    /// HighLevel API base URL (default: the file's, else HighLevel's own).
    #[arg(long, value_name = "URL")]
    crm_url: Option<String>,
    /// Write the file and secrets, but skip doctor's checks.
    #[arg(long)]
    no_check: bool,
}

/// Default public URL offered: where `connectzero run` listens by default.
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8787";

/// Answers read one line at a time: from a terminal with prompts (and
/// secrets unechoed), or piped.
struct Prompter {
    input: std::io::StdinLock<'static>,
    terminal: bool,
}

impl Prompter {
    /// Ask `label`, offering `default` (Enter keeps it), until the answer
    /// passes `check`; piped input gets one try.
    fn ask(
        &mut self,
        label: &str,
        default: &str,
        check: impl Fn(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<String> {
        loop {
            if default.is_empty() {
                print!("{label}: ");
            } else {
                print!("{label} [{default}]: ");
            }
            let answer = self.line(label)?;
            let answer = if answer.is_empty() {
                default.to_string()
            } else {
                answer
            };
            match check(&answer) {
                Ok(()) => return Ok(answer),
                Err(error) if self.terminal => println!("  {error:#}; try again"),
                Err(error) => return Err(error.context(format!("answer to {label:?}"))),
            }
        }
    }

    /// Ask for a secret without echoing it at a terminal; empty keeps
    /// what `kept` describes (`None`: nothing to keep, an answer needed).
    fn secret(&mut self, label: &str, kept: Option<&str>) -> anyhow::Result<Option<String>> {
        loop {
            match kept {
                Some(kept) => print!("{label} (hidden; Enter keeps the {kept}): "),
                None => print!("{label} (hidden): "),
            }
            let answer = {
                let _quiet = if self.terminal {
                    Some(Echo::off()?)
                } else {
                    None
                };
                self.line(label)?
            };
            if self.terminal {
                println!();
            }
            match (answer.is_empty(), kept) {
                (false, _) => return Ok(Some(answer)),
                (true, Some(_)) => return Ok(None),
                (true, None) if self.terminal => println!("  an answer is needed"),
                (true, None) => bail!("{label} is needed: none is stored yet"),
            }
        }
    }

    fn line(&mut self, label: &str) -> anyhow::Result<String> {
        std::io::stdout().flush()?;
        let mut line = String::new();
        let read = self
            .input
            .read_line(&mut line)
            .context("reading standard input")?;
        if read == 0 {
            bail!("standard input ended before {label:?} was answered");
        }
        if !self.terminal {
            // Piped answers are not echoed: end the prompt's line here.
            println!();
        }
        Ok(line.trim().to_string())
    }
}

/// Terminal echo off while held (termios on standard input, through
/// rustix: no `stty` needed and no unsafe code), back as it was when
/// dropped. A terminal whose echo cannot be turned off is refused: the
/// secret would be shown.
struct Echo(rustix::termios::Termios);

impl Echo {
    fn off() -> anyhow::Result<Self> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let refused = "cannot turn off the terminal's echo to read a secret: pipe the answers to `connectzero init` instead (one a line)";
        let was = tcgetattr(&stdin).context(refused)?;
        let mut quiet = was.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(&stdin, OptionalActions::Now, &quiet).context(refused)?;
        Ok(Self(was))
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.0,
        );
    }
}

/// Echo back on (after Ctrl-C at a secret's question).
fn echo_on() {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    if let Ok(mut mode) = tcgetattr(&stdin) {
        mode.local_modes.insert(LocalModes::ECHO);
        let _ = tcsetattr(&stdin, OptionalActions::Now, &mode);
    }
}

/// `connectzero init`.
pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    let InitArgs {
        config,
        db,
        crm_url,
        no_check,
    } = args;
    let stdin = std::io::stdin();
    let mut ask = Prompter {
        terminal: stdin.is_terminal(),
        input: stdin.lock(),
    };
    if ask.terminal {
        // Ctrl-C at a secret's question must not leave the terminal
        // without echo: the prompts block this thread, so another task
        // restores it and ends the process.
        tokio::spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                echo_on();
                println!();
                std::process::exit(130);
            }
        });
    }
    setup::ensure_owner_kept(&config)?; // before any question is asked
    let mut file: toml::Table = match std::fs::read_to_string(&config) {
        Ok(text) => toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", config.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", config.display())),
    };
    println!(
        "Setting up {} (Enter keeps the value in brackets).",
        config.display()
    );
    let offered = setup::tenant_id(&file, None);
    let id = ask.ask("Tenant id (letters, digits, - and _)", &offered, |id| {
        let ok = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        anyhow::ensure!(ok, "use letters, digits, - and _");
        Ok(())
    })?;
    // The database the file names, where the secrets are sealed.
    let database = database_of(&mut file, &config, db.as_deref())?;
    if let Some(dir) = config.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let storage = Storage::open(&database)?;
    // `run` refuses an id both in the file and the database: say so now.
    if connectzero::tenants::stored(&storage)?
        .iter()
        .any(|t| t.id == id)
    {
        bail!(
            "tenant {id:?} is kept in the database {} (connectzero tenant add): change it with `connectzero tenant settings`, or give init another id",
            database.display()
        );
    }
    let (store, host_lock) = secrets::open_store_held(&storage, &database, None)
        .with_context(|| format!("opening the secrets of {}", database.display()))?;
    let current = setup::current(&file, &id);
    let was = &current.answers;
    let url = |u: &str| connectzero::config::check_base_url(u);
    let some = |v: &str| {
        anyhow::ensure!(!v.is_empty(), "an answer is needed");
        Ok(())
    };
    let pbx_url = ask.ask("3CX address (https://<pbx-fqdn>[:port])", &was.pbx_url, url)?;
    let pbx_client_id = ask.ask(
        "3CX API client id (Admin > Integrations > API)",
        &was.pbx_client_id,
        some,
    )?;
    // The file's secret replaces the stored one, as `run` takes it.
    let kept = |name: &str, in_file: &Option<String>| -> anyhow::Result<Option<&'static str>> {
        Ok(match (in_file, store.get(&id, name)?) {
            (Some(file), Some(stored)) if stored.expose() != file => {
                Some("one in the file (it will be encrypted, replacing the stored one)")
            }
            (Some(_), None) => Some("one in the file (it will be encrypted)"),
            (_, Some(_)) => Some("stored one"),
            (None, None) => None,
        })
    };
    let pbx_kept = kept(PBX_CLIENT_SECRET, &current.pbx_secret_in_file)?;
    let pbx_secret = ask.secret("3CX API client secret", pbx_kept)?;
    let crm_client_id = ask.ask("HighLevel app client id", &was.crm_client_id, some)?;
    let crm_kept = kept(CRM_CLIENT_SECRET, &current.crm_secret_in_file)?;
    let crm_secret = ask.secret("HighLevel app client secret", crm_kept)?;
    let location_id = ask.ask(
        "HighLevel location (sub-account) id",
        &was.location_id,
        some,
    )?;
    let provider_id = ask.ask(
        "HighLevel Call conversation provider id",
        &was.provider_id,
        some,
    )?;
    let public_default = if was.public_url.is_empty() {
        DEFAULT_PUBLIC_URL
    } else {
        &was.public_url
    };
    let public_url = ask.ask(
        "Public URL of this host, as browsers reach it",
        public_default,
        url,
    )?;
    let answers = Answers {
        tenant: id.clone(),
        pbx_url,
        pbx_client_id,
        crm_client_id,
        location_id,
        provider_id,
        public_url: public_url.trim_end_matches('/').to_string(),
        crm_url: crm_url.or_else(|| was.crm_url.clone()),
    };
    setup::apply(&mut file, &answers)?;
    // Secrets first: a file without them and no sealed copy would not start.
    for (name, answer, in_file) in [
        (PBX_CLIENT_SECRET, pbx_secret, current.pbx_secret_in_file),
        (CRM_CLIENT_SECRET, crm_secret, current.crm_secret_in_file),
    ] {
        let stored = store.get(&id, name)?;
        let Some(value) = answer.or(in_file) else {
            continue;
        };
        let value = Secret::new(value);
        if stored.as_ref() != Some(&value) {
            store.put(&id, &[(name, &value)])?;
            if name == PBX_CLIENT_SECRET {
                // A new API key may be a new API client: not its token.
                store.delete(&id, PBX_ACCESS_TOKEN)?;
            }
        }
    }
    // The HighLevel tokens the file held in clear, as `run` imports them.
    if let Some(token) = &current.refresh_token_in_file {
        connectzero::credentials::import_refresh_token(&store, &id, &Secret::new(token.clone()))?;
    }
    if let Some(token) = &current.access_token_in_file {
        connectzero::credentials::import_access_token(&store, &id, &Secret::new(token.clone()))?;
    }
    drop(host_lock);
    let backup = setup::write_config(&config, &file)?;
    println!(
        "\nWrote {} (secrets encrypted in {}).",
        config.display(),
        database.display()
    );
    if backup == setup::Backup::SecretsRemoved {
        println!(
            "The previous file is kept as {}.bak without its secrets (and comments).",
            config.display()
        );
    }
    if !no_check {
        println!("\nChecking the set-up (connectzero doctor):");
        let location = Location {
            config: Some(config.clone()),
            db: db.clone(),
        };
        let reports = connectzero::doctor::check(&location, Some(&id)).await?;
        print!("{}", connectzero::doctor::render(&reports));
        if connectzero::doctor::verdict(&reports).is_err() {
            println!(
                "Some checks failed: fix what they say and run `connectzero init` again (before the install, the HighLevel lines fail until it is done)."
            );
        }
    }
    let public = &answers.public_url;
    let written: connectzero::config::HostConfig = toml::from_str(&toml::to_string(&file)?)?;
    let redirect = written
        .tenants
        .iter()
        .find(|t| t.id == id)
        .map(connectzero::server::redirect_path)
        .context("the tenant written is not in the file")?;
    println!("\nNext:");
    println!(
        "  1. In the HighLevel developer portal, give the app the redirect URL {public}{redirect}"
    );
    println!(
        "  2. Start the host: connectzero run --config {}",
        config.display()
    );
    println!(
        "  3. Install link (an admin of the sub-account opens it and approves): {public}/t/{id}/oauth/install"
    );
    Ok(())
}

/// The database `file` names, relative to the current directory as `run`
/// reads it. `--db` (or CONNECTZERO_DB), as `run` takes it, must be that
/// one (compared as files, not spellings), and is written into a file
/// that names none. A file without one gets one beside it (not wherever
/// `run` happens to start), unless it is in the current directory, where
/// the default `connectzero.db` already is.
fn database_of(
    file: &mut toml::Table,
    config: &Path,
    db: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let named = file.get("database").and_then(toml::Value::as_str);
    match (named, db) {
        (Some(named), Some(db)) if !same_file(Path::new(named), db) => bail!(
            "--db or {DB_ENV} ({}) is not the database {} names ({named}): `run` would refuse the pair; unset {DB_ENV} or give that database",
            db.display(),
            config.display()
        ),
        (Some(named), _) => return Ok(PathBuf::from(named)),
        (None, Some(db)) => {
            file.insert("database".into(), db.display().to_string().into());
            return Ok(db.to_path_buf());
        }
        (None, None) => {}
    }
    let name = connectzero::location::DEFAULT_DATABASE;
    Ok(
        match config.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => {
                let path = dir.join(name);
                file.insert("database".into(), path.display().to_string().into());
                path
            }
            None => PathBuf::from(name),
        },
    )
}
