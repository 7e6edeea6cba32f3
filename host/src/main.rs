//! The `signalbox` command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = signalbox::cli::Cli::parse();
    match signalbox::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
