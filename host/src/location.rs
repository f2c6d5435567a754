//! Where the tenants are: the options every subcommand that reads tenants
//! or the database takes (`--config FILE`, `--db FILE` and the environment
//! variables standing for them), and the one rule that turns them into a
//! configuration file and a database.
//!
//! One struct, flattened into each subcommand, so `run`, `doctor`,
//! `match`, `backfill`, `replay`, `keys rotate` and `tenant …` cannot each
//! grow their own idea of the defaults again (issue 24).

use crate::config::HostConfig;
use std::path::{Path, PathBuf};

/// The configuration file looked for when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "connectzero.toml";
/// The database looked for when neither `--db` nor a configuration file
/// says which: the name the configuration's `database` defaults to.
pub const DEFAULT_DATABASE: &str = "connectzero.db";
/// Environment variable standing for `--config`.
pub const CONFIG_ENV: &str = "CONNECTZERO_CONFIG";
/// Environment variable standing for `--db`.
pub const DB_ENV: &str = "CONNECTZERO_DB";

/// Where the tenants are (the same options, meaning and defaults in every
/// subcommand that reads tenants or the database).
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Where the tenants are")]
pub struct Location {
    /// Configuration file: its `[[tenants]]` and its `database`. Default:
    /// connectzero.toml in the current directory, when it exists.
    #[arg(long, value_name = "FILE", env = CONFIG_ENV)]
    pub config: Option<PathBuf>,
    /// Database file: the tenants added with `connectzero tenant add`,
    /// their encrypted secrets, cursors and ledger. Default: the
    /// configuration's `database`; without a configuration file,
    /// connectzero.db in the current directory, when it exists.
    #[arg(long, value_name = "FILE", env = DB_ENV)]
    pub db: Option<PathBuf>,
}

/// A [`Location`] resolved: the configuration file (if any), what it
/// holds, and the database.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The configuration file, when there is one.
    pub config_file: Option<PathBuf>,
    /// The file's contents, with `database` set to [`Resolved::database`];
    /// no tenants when there is no file.
    pub config: HostConfig,
    /// The database file.
    pub database: PathBuf,
}

/// Neither `--config`/`--db` (nor their environment variables) was given
/// and neither default file exists.
#[derive(Debug, thiserror::Error)]
#[error(
    "no configuration file or database: looked for {DEFAULT_CONFIG} and {DEFAULT_DATABASE} in {dir}; give --config FILE (or set {CONFIG_ENV}) for a configuration file with [[tenants]], or --db FILE (or set {DB_ENV}) for a database (`connectzero tenant add --db FILE` creates one)"
)]
pub struct NotFound {
    /// The directory looked in.
    pub dir: String,
}

impl Location {
    /// Resolve and check the configuration file's tenants (as `run` checks
    /// them). See [`Location::resolve_unchecked`] for the rule.
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        let resolved = self.resolve_unchecked()?;
        resolved.config.validate()?;
        Ok(resolved)
    }

    /// Resolve without checking the tenants (`doctor` reports each problem
    /// as a line instead of stopping at the first).
    ///
    /// The configuration file is `--config` (which must then exist), else
    /// `connectzero.toml` when it exists, else none. The database is
    /// `--db`, else the file's `database`, else `connectzero.db` when it
    /// exists; with none of them the error is [`NotFound`]. Relative paths,
    /// the file's `database` included, are relative to the current
    /// directory, as they always were.
    pub fn resolve_unchecked(&self) -> anyhow::Result<Resolved> {
        let config_file = match &self.config {
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
        };
        let mut config = match &config_file {
            Some(path) => HostConfig::read(path)?,
            None => HostConfig {
                database: String::new(),
                tenants: Vec::new(),
            },
        };
        // An exported CONNECTZERO_DB must not quietly send a command given
        // a configuration file to another (perhaps empty) database: a fresh
        // database has no ledger, and re-authorising there re-posts a day
        // of calls.
        if let (Some(db), Some(file)) = (&self.db, &config_file)
            && std::env::var_os(DB_ENV).is_some_and(|env| Path::new(&env) == db)
            && !same_file(Path::new(&config.database), db)
        {
            anyhow::bail!(
                "{DB_ENV} ({}) is not the database {} names ({}): unset {DB_ENV}, or set it to that database",
                db.display(),
                file.display(),
                config.database
            );
        }
        let database = match (&self.db, &config_file) {
            (Some(db), _) => db.clone(),
            (None, Some(_)) => PathBuf::from(&config.database),
            (None, None) if Path::new(DEFAULT_DATABASE).exists() => PathBuf::from(DEFAULT_DATABASE),
            (None, None) => {
                let dir = std::env::current_dir().map_or_else(
                    |_| "the current directory".into(),
                    |d| d.display().to_string(),
                );
                return Err(NotFound { dir }.into());
            }
        };
        config.database = database.display().to_string();
        Ok(Resolved {
            config_file,
            config,
            database,
        })
    }
}

/// Whether `a` and `b` name the same file: compared canonicalised (the
/// directory, for a file not created yet), so `./x.db` and an absolute
/// path to it are one database; literally when neither resolves.
pub fn same_file(a: &Path, b: &Path) -> bool {
    fn canonical(path: &Path) -> Option<PathBuf> {
        if let Ok(found) = path.canonicalize() {
            return Some(found);
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
            _ => std::env::current_dir().ok()?,
        };
        Some(dir.join(path.file_name()?))
    }
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

impl Resolved {
    /// How messages name the configuration file (e.g. "… is both in
    /// connectzero.toml and the database").
    pub fn file_label(&self) -> String {
        self.config_file.as_ref().map_or_else(
            || "the configuration file".to_string(),
            |p| p.display().to_string(),
        )
    }

    /// Where the tenants were looked for, for "no tenant …" messages.
    pub fn describe(&self) -> String {
        match &self.config_file {
            Some(file) => format!(
                "{} or the database {}",
                file.display(),
                self.database.display()
            ),
            None => format!("the database {}", self.database.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_database_needs_no_configuration_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let found = Location {
            config: None,
            db: Some(db.clone()),
        }
        .resolve()
        .unwrap();
        assert_eq!(found.database, db);
        assert!(found.config.tenants.is_empty());
        assert_eq!(found.config.database, db.display().to_string());
    }

    #[test]
    fn the_database_flag_wins_over_the_files_database() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "database = \"from-file.db\"\n").unwrap();
        let location = Location {
            config: Some(file.clone()),
            db: None,
        };
        assert_eq!(
            location.resolve().unwrap().database,
            PathBuf::from("from-file.db")
        );
        let db = dir.path().join("flag.db");
        let found = Location {
            db: Some(db.clone()),
            ..location
        }
        .resolve()
        .unwrap();
        assert_eq!(found.database, db);
        assert_eq!(found.config_file, Some(file));
    }

    #[test]
    fn one_database_spelt_two_ways_is_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let other = dir.path().join("sub").join("..").join("x.db");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(same_file(&db, &other), "not created yet");
        std::fs::write(&db, "").unwrap();
        assert!(same_file(&db, &other));
        assert!(!same_file(&db, &dir.path().join("y.db")));
    }

    #[test]
    fn a_named_configuration_file_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let error = Location {
            config: Some(dir.path().join("absent.toml")),
            db: Some(dir.path().join("x.db")),
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{error:#}").contains("absent.toml"), "{error:#}");
    }

    #[test]
    fn the_not_found_message_is_one_line_with_both_fixes() {
        let text = NotFound { dir: "/srv".into() }.to_string();
        assert!(!text.contains('\n'));
        for part in [
            "connectzero.toml",
            "connectzero.db",
            "/srv",
            "--config FILE",
            "CONNECTZERO_CONFIG",
            "--db FILE",
            "CONNECTZERO_DB",
        ] {
            assert!(text.contains(part), "no {part:?} in {text}");
        }
    }
}
