//! `cae download`.

use clap::Args;

use super::DataArgs;
use crate::data::DatasetKind;
use crate::data::download::Fetched;

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The dataset to fetch
    #[arg(value_enum)]
    pub dataset: DatasetKind,
    #[command(flatten)]
    pub data: DataArgs,
    /// Mirror to try instead of the built-in list (repeatable; tried in order)
    #[arg(long, value_name = "URL")]
    pub mirror: Vec<String>,
}

pub fn download(args: DownloadArgs) -> anyhow::Result<()> {
    let root = args.data.root();
    crate::data::download::download(
        args.dataset,
        &root,
        &args.mirror,
        |name, fetched| match fetched {
            Fetched::AlreadyPresent => eprintln!("{name}: present, checksum ok"),
            Fetched::Downloaded { mirror, bytes } => {
                eprintln!("{name}: {bytes} bytes from {mirror}, checksum ok")
            }
        },
    )?;
    println!("{}", root.join(args.dataset.dir_name()).display());
    Ok(())
}
