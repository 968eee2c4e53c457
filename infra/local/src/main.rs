//! `cargo run --release -p clinicflow-local`: the whole platform on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use clinicflow::config::Config;
use clinicflow_local::{LocalOptions, LocalStack};

/// Runs clinicflow locally: API, bus, consumers, projector and SMS outbox, on SQLite.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "CLINICFLOW_LISTEN")]
    listen: SocketAddr,
    /// Directory for the SQLite database and the dev-token secret.
    #[arg(long, default_value = "local-data", env = "CLINICFLOW_DATA_DIR")]
    data_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    clinicflow::telemetry::init();
    let args = Args::parse();
    let mut config = Config::from_env().context("reading configuration")?;
    if std::env::var_os("OUTBOX_GRACE_MS").is_none() {
        config.outbox_grace = LocalOptions::default().config.outbox_grace;
    }
    let options = LocalOptions {
        listen: args.listen,
        data_dir: Some(args.data_dir.clone()),
        config,
        ..LocalOptions::default()
    };
    let stack = LocalStack::start(options).await?;
    println!(
        "clinicflow-local listening on {} (data in {})",
        stack.url(),
        args.data_dir.display()
    );
    println!(
        "  get a token:  curl -s -X POST {}/_local/token -H 'content-type: application/json' -d '{{\"sub\":\"patient-1\",\"groups\":[\"patient\"]}}'",
        stack.url()
    );
    println!("  sent SMS:     curl -s {}/_local/sms", stack.url());
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    println!("shutting down");
    stack.shutdown().await;
    Ok(())
}
