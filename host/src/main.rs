//! The `signalbox` command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = signalbox::cli::Cli::parse();
    signalbox::cli::init_logging(cli.verbose, cli.log_format);
    match signalbox::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
