//! The `borg` command: `borg run` (the default) starts the daemon; `borg status` asks a running
//! daemon, or reads the store when none runs; `borg version`; `borg config` prints every
//! setting with its current value.

use std::path::PathBuf;
use std::process::ExitCode;

use borg::config::{Config, VARIABLES};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "borg",
    version,
    about = "Turns chat messages into work by AI coding agents."
)]
struct Cli {
    /// Directory holding `.env` (relative paths in it are resolved against it).
    #[arg(long, global = true, default_value = ".")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGINT or SIGTERM (the default).
    Run,
    /// Show what a running daemon is doing, or what its store holds.
    Status {
        /// Print the raw JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Print the version.
    Version,
    /// Print every setting with its current value and default.
    Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::Version = command {
        println!("borg {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(&cli.dir) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("borg: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("borg: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Run => {
            borg::logging::init(config.log_format);
            match runtime.block_on(borg::daemon::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("borg: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { json } => runtime.block_on(borg::status::print(&config, json)),
        Command::Config => {
            print_config(&config);
            ExitCode::SUCCESS
        }
        Command::Version => unreachable!("handled above"),
    }
}

fn print_config(config: &Config) {
    println!("{config:#?}\n");
    for var in VARIABLES {
        println!(
            "{:<26} default {:<22} {}",
            var.name, var.default, var.meaning
        );
    }
}
