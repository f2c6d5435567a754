//! Writing the configuration file `init` edits: the new file replaces the
//! old one in one step, readable by its owner only (or as the old one
//! was, when that was stricter), owned by whoever owned the old one (so
//! `sudo connectzero init` never leaves the service's file unreadable to
//! the service), and the previous file is kept as `<file>.bak` without
//! any secret in clear.

use anyhow::Context;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use toml::{Table, Value};

/// Every secret a `[[tenants]]` entry may hold in clear, as (section, key).
pub const SECRET_FIELDS: [(&str, &str); 5] = [
    ("pbx", "client_secret"),
    ("crm", "client_secret"),
    ("crm", "refresh_token"),
    ("crm", "access_token"),
    ("actions", "secret"),
];

/// Remove every secret field ([`SECRET_FIELDS`]) of every tenant of
/// `file`; whether any was there.
pub fn strip_secrets(file: &mut Table) -> bool {
    let mut found = false;
    let tenants = file.get_mut("tenants").and_then(Value::as_array_mut);
    for tenant in tenants
        .into_iter()
        .flatten()
        .filter_map(Value::as_table_mut)
    {
        for (section, key) in SECRET_FIELDS {
            let table = tenant.get_mut(section).and_then(Value::as_table_mut);
            found |= table.and_then(|t| t.remove(key)).is_some();
        }
    }
    found
}

/// What [`write_config`] kept of the previous file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backup {
    /// There was no previous file.
    None,
    /// `<file>.bak` is the previous file as it was, comments included (it
    /// held no secret).
    Verbatim,
    /// `<file>.bak` is the previous file's values with its secrets
    /// removed (and its comments lost).
    SecretsRemoved,
}

/// Mode of the files written: the owner's only.
const PRIVATE: u32 = 0o600;

/// Replace `config` by `file` in one step: written to `<file>.new`
/// created with mode 0600 (never wider than the old file's) and the old
/// file's owner and group, flushed to disk, then renamed over the old
/// one. The old one is kept as `<file>.bak`, mode 0600, same owner,
/// without any secret field in clear. The new file is written first:
/// when the old owner cannot be kept (another user's file, not run as
/// root) the error says whom to run as, and nothing was replaced.
/// Owners are set on the open files, never by name, so a file swapped
/// for a link in the directory cannot redirect them.
pub fn write_config(config: &Path, file: &Table) -> anyhow::Result<Backup> {
    let text = toml::to_string(file)?;
    let old = read_old(config)?;
    let owner = old.as_ref().map(|(_, meta)| (meta.uid(), meta.gid()));
    let mode = old
        .as_ref()
        .map_or(PRIVATE, |(_, meta)| PRIVATE & meta.permissions().mode());
    let staged = sibling(config, ".new");
    let written = write_private(&staged, &text, mode, owner);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staged);
        return Err(e.explained(config, owner));
    }
    let backup = match old {
        None => Backup::None,
        Some((old, _)) => {
            let parsed: Result<Table, _> = toml::from_str(&old);
            let kept = parsed
                .with_context(|| format!("{} is not valid TOML", config.display()))
                .and_then(|mut parsed| {
                    Ok(if strip_secrets(&mut parsed) {
                        (toml::to_string(&parsed)?, Backup::SecretsRemoved)
                    } else {
                        (old, Backup::Verbatim)
                    })
                });
            let bak = sibling(config, ".bak");
            let kept = kept.and_then(|(kept, kind)| {
                write_private(&bak, &kept, PRIVATE, owner)
                    .map_err(|e| e.explained(config, owner))
                    .with_context(|| format!("keeping a copy of {}", config.display()))?;
                Ok(kind)
            });
            match kept {
                Ok(kind) => kind,
                Err(e) => {
                    let _ = std::fs::remove_file(&staged);
                    return Err(e);
                }
            }
        }
    };
    if let Err(e) = std::fs::rename(&staged, config) {
        let _ = std::fs::remove_file(&staged);
        return Err(e).with_context(|| format!("writing {}", config.display()));
    }
    Ok(backup)
}

/// The file as it is, with its metadata read from the same open handle;
/// `None` when there is none yet.
fn read_old(config: &Path) -> anyhow::Result<Option<(String, std::fs::Metadata)>> {
    let mut handle = match std::fs::File::open(config) {
        Ok(handle) => handle,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", config.display())),
    };
    let meta = handle
        .metadata()
        .with_context(|| format!("reading {}", config.display()))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut handle, &mut text)
        .with_context(|| format!("reading {}", config.display()))?;
    Ok(Some((text, meta)))
}

/// Whether a process running as `euid` can give a new file the owner
/// `file_uid` (root can give any; others only their own). `init` asks
/// before its questions, so it never seals secrets and then fails.
pub fn owner_keepable(file_uid: u32, euid: u32) -> bool {
    euid == 0 || euid == file_uid
}

/// Refuse, before `init` asks anything, when the file's owner could not
/// be kept (the service's, under `sudo`): failing after the secrets were
/// sealed would be worse.
pub fn ensure_owner_kept(config: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::metadata(config) else {
        return Ok(());
    };
    let euid = rustix::process::geteuid().as_raw();
    anyhow::ensure!(
        owner_keepable(meta.uid(), euid),
        "{} belongs to user {} and this is user {euid}: run init as that user (or as root, which keeps the file theirs)",
        config.display(),
        meta.uid()
    );
    Ok(())
}

fn sibling(config: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = config.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Why writing one of the files failed.
enum WriteFailure {
    /// Creating, writing or flushing it.
    Io(std::io::Error),
    /// Giving it the old file's owner.
    Owner(std::io::Error),
}

impl WriteFailure {
    fn explained(self, config: &Path, owner: Option<(u32, u32)>) -> anyhow::Error {
        match self {
            WriteFailure::Io(e) => {
                anyhow::Error::new(e).context(format!("writing {}", config.display()))
            }
            WriteFailure::Owner(e) => {
                let (uid, gid) = owner.unwrap_or_default();
                anyhow::Error::new(e).context(format!(
                    "{} belongs to user {uid} (group {gid}) and could not be given back to them: run init as that user or as root; the file was left as it was",
                    config.display()
                ))
            }
        }
    }
}

/// Write `text` to `path` (replacing it) with `mode`, set even when the
/// file existed with another one, owned by `owner` when given (set on
/// the open file, before anything is written to it), and flushed to disk.
fn write_private(
    path: &Path,
    text: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), WriteFailure> {
    let _ = std::fs::remove_file(path);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(WriteFailure::Io)?;
    if let Some((uid, gid)) = owner {
        let meta = out.metadata().map_err(WriteFailure::Io)?;
        if (meta.uid(), meta.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(&out, Some(uid), Some(gid)).map_err(WriteFailure::Owner)?;
        }
    }
    out.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(WriteFailure::Io)?;
    out.write_all(text.as_bytes()).map_err(WriteFailure::Io)?;
    out.sync_all().map_err(WriteFailure::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    const WITH_SECRETS: &str = r#"# hand-written
database = "x.db"
[[tenants]]
id = "a"
[tenants.pbx]
client_secret = "s-pbx"
[tenants.crm]
client_secret = "s-crm"
refresh_token = "s-refresh"
access_token = "s-access"
[tenants.actions]
secret = "s-actions"
[[tenants]]
id = "b"
[tenants.crm]
refresh_token = "s-other"
"#;

    #[test]
    fn the_backup_holds_no_secret_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(&config, WITH_SECRETS).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let kept = write_config(&config, &Table::new()).unwrap();
        assert_eq!(kept, Backup::SecretsRemoved);
        let bak = dir.path().join("c.toml.bak");
        let text = std::fs::read_to_string(&bak).unwrap();
        for secret in [
            "s-pbx",
            "s-crm",
            "s-refresh",
            "s-access",
            "s-actions",
            "s-other",
        ] {
            assert!(!text.contains(secret), "{secret} in the backup:\n{text}");
        }
        assert!(text.contains("x.db"), "{text}");
        assert_eq!(mode(&bak), 0o600);
    }

    #[test]
    fn a_backup_without_secrets_keeps_the_comments() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(&config, "# mine\ndatabase = \"x.db\"\n").unwrap();
        assert_eq!(
            write_config(&config, &Table::new()).unwrap(),
            Backup::Verbatim
        );
        let text = std::fs::read_to_string(dir.path().join("c.toml.bak")).unwrap();
        assert!(text.starts_with("# mine"), "{text}");
    }

    #[test]
    fn the_new_file_is_never_wider_than_0600_or_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        write_config(&config, &Table::new()).unwrap();
        assert_eq!(mode(&config), 0o600, "a new file");
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o400)).unwrap();
        write_config(&config, &Table::new()).unwrap();
        assert_eq!(mode(&config), 0o400, "the old file's stricter mode");
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A stale `.new` left world-readable must not keep its mode.
        std::fs::write(dir.path().join("c.toml.new"), "").unwrap();
        std::fs::set_permissions(
            dir.path().join("c.toml.new"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        write_config(&config, &Table::new()).unwrap();
        assert_eq!(mode(&config), 0o600, "an old 0644 file");
    }

    #[test]
    fn only_root_or_the_owner_can_keep_a_files_owner() {
        assert!(owner_keepable(1000, 0), "root gives any owner");
        assert!(owner_keepable(1000, 1000), "the owner keeps their own");
        assert!(!owner_keepable(1000, 1001), "another user cannot");
    }

    #[test]
    fn the_new_file_and_its_backup_keep_the_old_owner() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(&config, WITH_SECRETS).unwrap();
        let me = std::fs::metadata(&config).unwrap().uid();
        // As root (CI, containers) the file is handed to `nobody` first,
        // as an operator's `sudo connectzero init` finds the service's
        // file; otherwise the writer's own ownership must survive.
        let (uid, gid) = if me == 0 {
            (65534, 65534)
        } else {
            (me, std::fs::metadata(&config).unwrap().gid())
        };
        std::os::unix::fs::chown(&config, Some(uid), Some(gid)).unwrap();
        write_config(&config, &Table::new()).unwrap();
        for path in [config.clone(), dir.path().join("c.toml.bak")] {
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{}", path.display());
        }
    }
}
