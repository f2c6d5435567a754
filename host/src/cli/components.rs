//! `connectzero components …`: work with stage components (the partner kit,
//! see docs/PARTNERS.md).

use clap::Subcommand;
use connectzero::engine::Stage;
use connectzero::verify;
use std::path::PathBuf;

/// The arguments of `connectzero components`: one of its subcommands.
#[derive(clap::Args)]
pub struct ComponentsArgs {
    /// What to do with a component.
    #[command(subcommand)]
    command: ComponentsCommand,
}

/// The subcommands of `connectzero components`.
#[derive(Subcommand)]
enum ComponentsCommand {
    /// Check that FILE implements a stage's WIT world: it exports the stage
    /// interface with every function and imports nothing the world does not
    /// grant. Exits 1 with one line per problem otherwise.
    Verify {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The stage it replaces (default: the stage whose interface it exports).
        #[arg(long, value_name = "STAGE", value_parser = connectzero::verify::parse_stage)]
        stage: Option<Stage>,
    },
}

/// `connectzero components …`; `verify` exits 1 when the component does not
/// fit the stage.
pub fn run(args: ComponentsArgs) -> anyhow::Result<()> {
    match args.command {
        ComponentsCommand::Verify { file, stage } => match verify::verify(&file, stage)? {
            Ok(verified) => {
                println!("{}: {verified}", file.display());
                Ok(())
            }
            Err(problem) => {
                eprintln!("{problem}");
                std::process::exit(1);
            }
        },
    }
}
