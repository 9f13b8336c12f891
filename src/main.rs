//! The `upload-tickets` binary: parse the command line, run, report.

use std::process::ExitCode;

use clap::Parser as _;
use upload_tickets::cli::{Cli, run};

fn main() -> ExitCode {
    // Start-up and background work (credentials, JWKS, metrics upkeep). Requests are
    // served by threads of their own: see `Application::run_until`.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Cli::parse())) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
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
