//! The `upload-tickets` binary: parse the command line, run, report.

use std::process::ExitCode;

use clap::Parser as _;
use upload_tickets::cli::{Cli, run};

/// jemalloc: the upload records live for minutes among each request's short-lived
/// allocations, which fragments glibc's heap and slows every ticket (`bench/RESULTS.md`).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Requests, start-up and background work share one runtime, sized before anything
    // runs: `server.workers` of the configuration a server runs with.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.worker_threads())
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(upload_tickets::cli::CliError::Findings(output)) => {
            println!("{output}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprint!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprint!(": {cause}");
                source = cause.source();
            }
            eprintln!();
            ExitCode::FAILURE
        }
    }
}
