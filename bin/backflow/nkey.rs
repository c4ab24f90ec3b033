//! `backflow nkey`: generate the ed25519 NKey a store signs its feedback with.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub(crate) struct NkeyArgs {
    /// Write the seed to this file (created with mode 0600; refused if it exists) and print
    /// only the public key. Without it both are printed.
    #[arg(long)]
    seed_file: Option<PathBuf>,
}

pub(crate) fn run(args: NkeyArgs) -> Result<()> {
    let key = nkeys::KeyPair::new_service();
    let seed = key.seed().context("encoding the seed")?;
    match args.seed_file {
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(file, "{seed}").with_context(|| format!("writing {}", path.display()))?;
            println!("{}", key.public_key());
        }
        None => {
            println!("seed: {seed}");
            println!("public_key: {}", key.public_key());
        }
    }
    Ok(())
}
