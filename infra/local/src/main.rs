//! `cargo run --release -p clinicflow-local`: the whole platform on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use clinicflow::config::Config;
use clinicflow_local::{LocalOptions, LocalStack};

/// Runs clinicflow locally: API, bus, consumers, projector and SMS outbox, on SQLite, or
/// with `--aws-endpoint` on DynamoDB, EventBridge, SQS and SNS at that endpoint (moto).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "CLINICFLOW_LISTEN")]
    listen: SocketAddr,
    /// Directory for the SQLite database and the dev-token secret.
    #[arg(long, default_value = "local-data", env = "CLINICFLOW_DATA_DIR")]
    data_dir: PathBuf,
    /// Run on the AWS adapters against this endpoint (e.g. a moto server,
    /// `http://127.0.0.1:5000`), creating the tables, bus, rules and queues it lacks.
    #[arg(long, env = "CLINICFLOW_AWS_ENDPOINT")]
    aws_endpoint: Option<String>,
    /// Name prefix of the resources created at `--aws-endpoint`.
    #[arg(long, default_value = "clinicflow-local", env = "CLINICFLOW_AWS_PREFIX")]
    aws_prefix: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    clinicflow::telemetry::init();
    let args = Args::parse();
    let mut config = Config::for_catalog(clinicflow::catalog(), |name| std::env::var(name).ok()).context("reading configuration")?;
    if std::env::var_os("OUTBOX_GRACE_MS").is_none() {
        config.outbox_grace = LocalOptions::default().config.outbox_grace;
    }
    let options = LocalOptions {
        listen: args.listen,
        data_dir: Some(args.data_dir.clone()),
        config,
        aws_endpoint: args.aws_endpoint.clone(),
        aws_prefix: args.aws_prefix.clone(),
        ..LocalOptions::default()
    };
    let stack = LocalStack::start(options).await?;
    match &args.aws_endpoint {
        None => println!(
            "clinicflow-local listening on {} (data in {})",
            stack.url(),
            args.data_dir.display()
        ),
        Some(endpoint) => println!(
            "clinicflow-local listening on {} (AWS adapters at {endpoint}, resources prefixed {})",
            stack.url(),
            args.aws_prefix
        ),
    }
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
