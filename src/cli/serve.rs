//! `cae serve`: the page and its API over one or two runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::{DataArgs, WeightsArgs};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// An autoencoder run: reconstruction, latent sliders, sampling, interpolation
    #[arg(long = "ae", value_name = "RUN_DIR")]
    pub autoencoder: Option<PathBuf>,
    /// A classifier run: class probabilities
    #[arg(long, value_name = "RUN_DIR")]
    pub classifier: Option<PathBuf>,
    /// An autoencoder run that inspects photographs (/inspect): the heat map of an upload, its
    /// score and, for a calibrated run (cae anomaly --calibrate), good or defect
    #[arg(long, value_name = "RUN_DIR")]
    pub anomaly: Option<PathBuf>,
    /// Address to listen on (port 0: any free port)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Requests computing at once; more are answered 503 with Retry-After
    #[arg(long, default_value_t = 64)]
    pub max_concurrent: usize,
    /// Largest request body in bytes; larger ones are answered 413
    #[arg(long, default_value_t = 2 << 20)]
    pub body_limit: usize,
    /// Connections open at once; more are answered 503 and closed
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client has to send a request's line and headers
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = seconds)]
    pub header_timeout: f64,
    /// Seconds a client has to send a request's whole body (else 408)
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = seconds)]
    pub body_timeout: f64,
    /// Seconds without a byte either way after which a connection is closed
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = seconds)]
    pub idle_timeout: f64,
    /// Seconds SIGINT or SIGTERM waits for requests under way before exiting
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = seconds)]
    pub shutdown_timeout: f64,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

/// A duration flag: a positive number of seconds, at most a day.
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err("expected a number of seconds above 0 and at most 86400".into()),
    }
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.autoencoder.is_none() && args.classifier.is_none() && args.anomaly.is_none() {
        bail!(
            "cae serve needs --ae RUN_DIR, --classifier RUN_DIR, --anomaly RUN_DIR or some of them"
        );
    }
    let config = crate::serve::ServeConfig {
        autoencoder: args.autoencoder,
        classifier: args.classifier,
        anomaly: args.anomaly,
        weights: args.weights.weights,
        data_root: args.data.root(),
        max_concurrent: args.max_concurrent,
        body_limit: args.body_limit,
        connections: crate::serve::ConnectionLimits {
            header_timeout: Duration::from_secs_f64(args.header_timeout),
            body_timeout: Duration::from_secs_f64(args.body_timeout),
            idle_timeout: Duration::from_secs_f64(args.idle_timeout),
            max_connections: args.max_connections as usize,
            shutdown_deadline: Duration::from_secs_f64(args.shutdown_timeout),
        },
    };
    crate::serve::run(&config, args.addr, |addr| {
        // The first line on stdout is the address, for scripts and tests.
        println!("http://{addr}/");
        eprintln!("serving on http://{addr}/ (Ctrl-C to stop)");
    })?;
    eprintln!("stopped");
    Ok(())
}
