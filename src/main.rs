//! The `borg` command: `borg run` (the default) starts the daemon; `borg status` asks a running
//! daemon, or reads the store when none runs; `borg version`; `borg config` prints every
//! setting with its current value.
//!
//! After a self-update (see `borg::self_update`) `borg run` is the new binary, started with
//! `BORG_FALLBACK` naming the previous one: if it cannot start (a setting it refuses, a
//! store it cannot open, a tree that does not come up), it execs the previous binary
//! instead. Once the daemon is up, `BORG_FALLBACK` is no longer looked at.

use std::path::PathBuf;
use std::process::ExitCode;

use borg::config::{Config, VARIABLES};
use borg::self_update::FALLBACK_VAR;
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
    /// Create a pipeline task in a running daemon.
    #[command(subcommand)]
    Task(TaskCommand),
    /// List the pipeline's tasks (of a running daemon).
    Tasks {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build or inspect the agent image (AGENT_IMAGE).
    #[command(subcommand)]
    Image(ImageCommand),
    /// Run one task through every phase on a sample repository, with a scripted model
    /// standing in for Claude (no API key needed).
    Demo {
        /// Where to put the sample repository and the demo's data (default: a new
        /// temporary directory).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Run agents as plain processes even when a Docker engine is reachable.
        #[arg(long)]
        no_docker: bool,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the agent image from the container/ folder compiled into borg.
    ///
    /// Example: AGENT_IMAGE=borg-agent:latest borg image build
    Build,
    /// Which image agents use, when it was built, and whether it is current.
    Status,
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Add a task to a repository's backlog.
    ///
    /// Example: borg task add --repo app "Add a health endpoint" --description "GET /health returns 200"
    Add {
        /// The repository (its name: the WATCHED_REPOS slug or the directory name); default
        /// the primary repository (PIPELINE_REPO).
        #[arg(long)]
        repo: Option<String>,
        /// The task's title.
        title: String,
        /// What to do, in more words.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show one task: its phase, attempts, history and the reason it stopped.
    Show {
        id: u64,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::Version = command {
        println!("borg {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    // Read once, here: only a start that fails falls back, never a later error.
    let fallback = match command {
        Command::Run => std::env::var_os(FALLBACK_VAR).map(PathBuf::from),
        _ => None,
    };
    let config = match Config::load(&cli.dir) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("borg: {e}");
            if let Some(previous) = &fallback {
                fall_back(previous, &e.to_string());
            }
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
            if let Some(previous) = &fallback {
                fall_back(previous, &format!("cannot start the async runtime: {e}"));
            }
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
                    if let Some(previous) = fallback.filter(|_| e.before_start()) {
                        fall_back(&previous, &e.to_string());
                    }
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { json } => runtime.block_on(borg::status::print(&config, json)),
        Command::Config => {
            print_config(&config);
            ExitCode::SUCCESS
        }
        Command::Task(TaskCommand::Add {
            repo,
            title,
            description,
        }) => runtime.block_on(borg::tasks_cli::add(&config, repo, title, description)),
        Command::Task(TaskCommand::Show { id, json }) => {
            runtime.block_on(borg::tasks_cli::show(&config, id, json))
        }
        Command::Image(ImageCommand::Build) => runtime.block_on(borg::image_cli::build(&config)),
        Command::Image(ImageCommand::Status) => runtime.block_on(borg::image_cli::status(&config)),
        Command::Tasks { json } => runtime.block_on(borg::tasks_cli::list(&config, json)),
        Command::Demo { workdir, no_docker } => {
            runtime.block_on(borg::demo::run(workdir, no_docker))
        }
        Command::Version => unreachable!("handled above"),
    }
}

/// This binary, just restarted into by a self-update, cannot start: exec the previous one.
/// Returns only if that fails too.
fn fall_back(previous: &std::path::Path, why: &str) {
    let loud = format!(
        "borg: THE NEW BINARY CANNOT START ({why}); falling back to {}",
        previous.display()
    );
    tracing::error!("{loud}");
    eprintln!("{loud}");
    let err = borg::self_update::fall_back(previous, why);
    tracing::error!(
        "cannot start the previous binary {}: {err}",
        previous.display()
    );
    eprintln!(
        "borg: cannot start the previous binary {} either: {err}",
        previous.display()
    );
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
