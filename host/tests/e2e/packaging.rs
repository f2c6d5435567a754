//! What ships: the production build (`--no-default-features`, docs/DEPLOY.md)
//! links none of the dev kit's simulators; the default build, which runs
//! the demo, does. The packaging in `deploy/` (the systemd unit and the
//! Containerfile) is held to the real binary: its flags, the environment
//! variables the host reads, where the database and cache go, the signal
//! `run` stops on, and the hardening the unit promises; `systemd-analyze
//! verify` checks the unit where systemd is installed. No container is
//! built here (docs/DEPLOY.md says what was and was not verified).

use anyhow::Context;
use std::path::Path;
use std::process::Command;

/// `cargo tree -i connectzero-simulators` for the host with `features`:
/// whether the simulators are in its normal (linked) dependencies.
fn links_simulators(features: &[&str]) -> anyhow::Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(["tree", "--offline", "-p", "connectzero", "-e", "normal"])
        .args(features)
        .args(["-i", "connectzero-simulators"])
        .output()
        .context("cargo runs")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        return Ok(true);
    }
    // Any other failure is not an answer.
    assert!(
        stderr.contains("did not match any packages"),
        "cargo tree failed: {stderr}"
    );
    Ok(false)
}

#[test]
fn the_production_build_links_no_simulator_and_the_dev_kit_does() -> anyhow::Result<()> {
    assert!(!links_simulators(&["--no-default-features"])?);
    assert!(links_simulators(&[])?);
    Ok(())
}

/// The files `deploy/` packages the host with, from the repository root.
fn deploy_file(relative: &str) -> anyhow::Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// `connectzero <args> --help` of the real binary.
fn help(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(crate::binary::BIN)
        .args(args)
        .arg("--help")
        .output()
        .context("the binary runs")?;
    assert!(output.status.success(), "{args:?} --help failed");
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Every `--flag` of `command` (`connectzero run …`) is one `run` takes.
fn assert_flags_exist(command: &[&str], file: &str) -> anyhow::Result<()> {
    assert_eq!(
        command.first(),
        Some(&"run"),
        "{file}: runs `connectzero run`"
    );
    let run_help = help(&["run"])?;
    for flag in command.iter().filter(|a| a.starts_with("--")) {
        assert!(
            run_help.contains(&format!("{flag} ")),
            "{file}: `connectzero run` has no {flag}:\n{run_help}"
        );
    }
    Ok(())
}

/// The value of `--flag` in `command`.
fn flag_value<'a>(command: &[&'a str], flag: &str) -> Option<&'a str> {
    command
        .iter()
        .position(|a| *a == flag)
        .and_then(|i| command.get(i + 1).copied())
}

/// Every `CONNECTZERO_…` variable `text` sets is one the host's sources
/// read (as a string literal): a misspelt name would be ignored silently.
fn assert_variables_read(text: &str, file: &str) -> anyhow::Result<()> {
    let mut sources = String::new();
    for dir in ["host/src", "crates/config/src", "crates/storage/src"] {
        let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    sources.push_str(&std::fs::read_to_string(&path)?);
                }
            }
        }
    }
    let mut names = 0;
    for (at, _) in text.match_indices("CONNECTZERO_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        names += 1;
        assert!(
            sources.contains(&format!("\"{name}\"")),
            "{file} sets {name}, which the host does not read"
        );
    }
    assert!(names > 0, "{file} sets no CONNECTZERO_ variable");
    Ok(())
}

#[test]
fn the_systemd_unit_runs_the_real_command_hardened_with_its_state_in_place() -> anyhow::Result<()> {
    let file = "deploy/systemd/connectzero.service";
    let unit = deploy_file(file)?;
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect();
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    let one = |key: &str| -> &str {
        let values = get(key);
        assert_eq!(values.len(), 1, "{file}: {key}= once");
        values[0]
    };

    let exec: Vec<&str> = one("ExecStart").split_whitespace().collect();
    assert_eq!(
        exec[0], "/usr/local/bin/connectzero",
        "where `cargo install --root /usr/local` puts it"
    );
    assert_flags_exist(&exec[1..], file)?;
    // The database (and so its key file, locks and migration copies) in
    // the state directory, which is also where the service runs.
    let state = format!("/var/lib/{}", one("StateDirectory"));
    let db = flag_value(&exec, "--db").context("ExecStart names the database")?;
    assert_eq!(Path::new(db).parent(), Some(Path::new(&state)), "{db}");
    assert_eq!(one("WorkingDirectory"), state);
    let environment = get("Environment");
    let cache = format!("XDG_CACHE_HOME=/var/cache/{}", one("CacheDirectory"));
    assert!(environment.contains(&cache.as_str()), "{environment:?}");
    assert!(
        environment.contains(&"CONNECTZERO_ADMIN_TOKEN_FILE=%d/admin-token")
            && one("LoadCredential").starts_with("admin-token:"),
        "the admin token comes from a credential"
    );
    assert_variables_read(&unit, file)?;

    // The install steps in the header create what the unit needs before
    // it is needed: the state directory before `tenant add` writes the
    // database there, every LoadCredential= file before the start.
    let steps: Vec<&str> = unit.lines().take_while(|l| l.starts_with('#')).collect();
    let at = |needle: &str| steps.iter().position(|l| l.contains(needle));
    let state = at("install -d -o connectzero -g connectzero -m 0700 /var/lib/connectzero")
        .with_context(|| format!("{file}'s install steps create /var/lib/connectzero"))?;
    let add = at("tenant add --db /var/lib/connectzero/")
        .with_context(|| format!("{file}'s install steps add a tenant"))?;
    let start = at("enable --now").with_context(|| format!("{file} says how to start"))?;
    assert!(
        state < add,
        "{file}: the state directory after `tenant add`"
    );
    for (key, value) in &settings {
        if *key == "LoadCredential" {
            let path = value.split_once(':').map_or(*value, |(_, p)| p);
            let made = steps
                .iter()
                .position(|l| l.contains("install -m 0600") && l.contains(path))
                .with_context(|| format!("{file}'s install steps never create {path}"))?;
            assert!(made < start, "{file}: {path} created after the start");
        }
    }
    let example = "deploy/systemd/connectzero.env.example";
    assert_variables_read(&deploy_file(example)?, example)?;
    assert!(one("EnvironmentFile").starts_with("/etc/connectzero/"));
    // `run` stops on Ctrl-C, not on SIGTERM.
    assert_eq!(one("KillSignal"), "SIGINT");

    assert_ne!(one("User"), "root");
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("CapabilityBoundingSet", ""),
        ("UMask", "0077"),
        // wasmtime maps compiled code executable.
        ("MemoryDenyWriteExecute", "no"),
    ] {
        assert_eq!(one(key), value, "{file}: {key}");
    }

    // systemd's own check, where systemd is installed, on a copy running
    // this build's binary (verify refuses a missing executable).
    // Under CI (which installs Debian's systemd package, .ci/run) a
    // missing systemd-analyze fails: the check must not skip silently.
    let Ok(analyze) = which("systemd-analyze") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing and CI is set: install Debian's systemd package (.ci/run does)"
        );
        eprintln!("systemd-analyze not found: SKIPPED `systemd-analyze verify` of {file}");
        return Ok(());
    };
    let scratch = tempfile::tempdir()?;
    let copy = scratch.path().join("connectzero.service");
    std::fs::write(&copy, unit.replace(exec[0], crate::binary::BIN))?;
    let output = Command::new(analyze).arg("verify").arg(&copy).output()?;
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {file}:\n{said}"
    );
    Ok(())
}

fn which(program: &str) -> anyhow::Result<std::path::PathBuf> {
    let paths = std::env::var_os("PATH").context("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{program} is not on PATH"))
}

#[test]
fn the_containerfile_builds_the_production_binary_and_runs_it_unprivileged() -> anyhow::Result<()> {
    let file = "deploy/Containerfile";
    let text = deploy_file(file)?;
    // Instructions with their continuation lines joined.
    let joined = text.replace("\\\n", " ");
    let instructions: Vec<(&str, &str)> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let last_from = instructions
        .iter()
        .rposition(|(i, _)| *i == "FROM")
        .context("a FROM")?;
    let (build, run) = instructions.split_at(last_from);
    let all = |stage: &[(&str, &str)], name: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|(i, _)| *i == name)
            .map(|(_, v)| v.to_string())
            .collect()
    };
    assert!(
        all(build, "RUN")
            .iter()
            .any(|r| { r.contains("cargo install --path host --locked --no-default-features") }),
        "{file}: the production build (docs/DEPLOY.md)"
    );

    let user = all(run, "USER")
        .pop()
        .context("the final stage sets USER")?;
    let uid = user.split(':').next().unwrap_or_default();
    assert!(!["root", "0", ""].contains(&uid), "{file}: runs as {user}");

    let json_list = |value: &str| -> anyhow::Result<Vec<String>> {
        serde_json::from_str(value).with_context(|| format!("{value} is a JSON list"))
    };
    let entrypoint = json_list(&all(run, "ENTRYPOINT").pop().context("ENTRYPOINT")?)?;
    let copied: Vec<String> = all(run, "COPY")
        .iter()
        .filter_map(|c| c.split_whitespace().last().map(String::from))
        .collect();
    assert!(
        copied.contains(&entrypoint[0]),
        "{} is copied in",
        entrypoint[0]
    );
    let cmd = json_list(&all(run, "CMD").pop().context("CMD")?)?;
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    assert_flags_exist(&cmd, file)?;
    let port = flag_value(&cmd, "--listen")
        .and_then(|a| a.rsplit_once(':'))
        .map(|(_, p)| p)
        .context("CMD listens on a port")?;
    assert_eq!(all(run, "EXPOSE"), [port.to_string()]);

    // The database and the compilation cache on the volume.
    let volume = json_list(&all(run, "VOLUME").pop().context("VOLUME")?)?;
    let env = all(run, "ENV").join(" ");
    for variable in ["CONNECTZERO_DB", "XDG_CACHE_HOME"] {
        let value = env
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{variable}=")))
            .with_context(|| format!("{file} sets {variable}"))?;
        assert!(
            value.starts_with(&format!("{}/", volume[0])),
            "{variable}={value}"
        );
    }
    assert_variables_read(&env, file)?;
    assert_eq!(all(run, "STOPSIGNAL"), ["SIGINT"], "`run` stops on Ctrl-C");
    Ok(())
}

#[test]
fn the_readme_says_how_to_install_the_binary() -> anyhow::Result<()> {
    let readme = deploy_file("README.md")?;
    assert!(readme.contains("cargo install --path host --locked"));
    Ok(())
}

/// Whether a `.dockerignore` pattern matches `path` or a folder holding
/// it (`**` any number of folders, `*` within one name), as Docker and
/// Podman read it.
fn ignore_matches(pattern: &str, path: &str) -> bool {
    fn segments(pattern: &[&str], path: &[&str]) -> bool {
        match pattern.first() {
            None => true, // a folder that matched: everything under it
            Some(&"**") => (0..=path.len()).any(|skip| segments(&pattern[1..], &path[skip..])),
            Some(p) => {
                !path.is_empty()
                    && glob_name(p.as_bytes(), path[0].as_bytes())
                    && segments(&pattern[1..], &path[1..])
            }
        }
    }
    let pattern: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    segments(&pattern, &path)
}

/// Whether one name matches a pattern where `*` stands for any run of
/// characters.
fn glob_name(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_name(&pattern[1..], name) || (!name.is_empty() && glob_name(pattern, &name[1..]))
        }
        (Some(p), Some(n)) if p == n => glob_name(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Whether `.dockerignore`'s rules leave `path` out (the last matching
/// rule wins; `!` lets back in).
fn docker_ignores(rules: &str, path: &str) -> bool {
    let mut ignored = false;
    for rule in rules.lines().map(str::trim) {
        if rule.is_empty() || rule.starts_with('#') {
            continue;
        }
        match rule.strip_prefix('!') {
            Some(back) if ignore_matches(back, path) => ignored = false,
            Some(_) => {}
            None if ignore_matches(rule, path) => ignored = true,
            None => {}
        }
    }
    ignored
}

#[test]
fn the_build_context_leaves_secrets_and_databases_out() -> anyhow::Result<()> {
    let rules = deploy_file(".dockerignore")?;
    // `COPY . .` must not carry an operator's database, key file or
    // configuration (with secrets in clear) into the image.
    for secret in [
        "connectzero.db",
        "connectzero.db-wal",
        "connectzero.db.key",
        "connectzero.toml",
        "connectzero.toml.bak",
        "connectzero.toml.new",
        "other.db",
        "prod.key",
        "host/connectzero.toml",
        "host/state/x.db",
        "deploy/connectzero.db.key",
        "target/release/connectzero",
        "host/target/debug/x",
        ".git/config",
    ] {
        assert!(
            docker_ignores(&rules, secret),
            "{secret} is in the build context"
        );
    }
    for source in [
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
        "host/Cargo.toml",
        "host/src/main.rs",
        "crates/runtime/build.rs",
        "components/match/src/lib.rs",
        "wit/stages.wit",
        "tools/stages/src/lib.rs",
    ] {
        assert!(
            !docker_ignores(&rules, source),
            "{source} is left out of the build"
        );
    }
    Ok(())
}
