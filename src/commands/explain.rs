//! `tutorlog explain --request ID`: the chain of events behind one gateway call or
//! training session/round, as the daemon serves it at
//! `GET /api/v1/audit/requests/{id}` (rules in [`crate::explain`]).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use uuid::Uuid;

use crate::{backend, cli::StoreArgs, explain};

/// `tutorlog explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Gateway request id, training session id or round id (a UUID).
    #[arg(long, value_name = "ID")]
    pub request: String,
    /// Data directory of the daemon (read-only; works while `serve` runs).
    #[arg(long, env = "TUTORLOG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Log backend.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Parses an id given on the command line.
pub fn parse_id(text: &str) -> anyhow::Result<Uuid> {
    match Uuid::parse_str(text.trim()) {
        Ok(id) => Ok(id),
        Err(_) => bail!("--request {text:?}: not a UUID"),
    }
}

/// Prints the explanation as JSON; an unknown id is an error.
pub async fn run(args: &ExplainArgs) -> anyhow::Result<()> {
    let id = parse_id(&args.request)?;
    let handle = backend::open_reader(&args.store.config(), &args.data_dir).await?;
    let Some(found) = explain::explain(handle.store.as_ref(), id, None).await? else {
        bail!("no gateway request, training session or round {id} in the log");
    };
    println!("{}", serde_json::to_string_pretty(&found.to_json())?);
    Ok(())
}
