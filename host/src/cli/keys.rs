//! `connectzero keys …`: manage the key that encrypts stored secrets
//! (`<database>.key`).

use clap::Subcommand;
use connectzero::location::Location;
use connectzero::secrets;
use connectzero::storage::Storage;

/// The arguments of `connectzero keys`: one of its subcommands.
#[derive(clap::Args)]
pub struct KeysArgs {
    /// What to do with the key.
    #[command(subcommand)]
    command: KeysCommand,
}

/// The subcommands of `connectzero keys`.
#[derive(Subcommand)]
enum KeysCommand {
    /// Re-encrypt every stored secret under a new random key in one
    /// transaction and write it to the key file; the old key file is kept
    /// as `<key file>.old`. Stop the hosts using the database first.
    Rotate {
        #[command(flatten)]
        location: Location,
    },
}

/// `connectzero keys …`.
pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Rotate { location } => rotate(&location),
    }
}

/// `connectzero keys rotate`.
fn rotate(location: &Location) -> anyhow::Result<()> {
    let found = location.resolve()?;
    let database = found.database.as_path();
    let storage = Storage::open(database)?;
    let key_file = secrets::default_key_file(database);
    let done = secrets::rotate(&storage, database, &key_file)?;
    println!(
        "re-encrypted {} secrets under key {} (was {}); new key in {}, old key kept in {}",
        done.secrets,
        done.new_key_id,
        done.old_key_id,
        key_file.display(),
        done.old_key_file.display()
    );
    Ok(())
}
