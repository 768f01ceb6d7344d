//! `runbook-kernel`: run the kernel (from kernel.json), install or uninstall its kernelspec.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use runbook_kernel::{install, protocol, server, session};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A Jupyter kernel for security runbooks on AWS Security Hub and Amazon Bedrock"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the kernel; Jupyter starts this from kernel.json
    Run {
        /// The connection file Jupyter wrote
        connection_file: PathBuf,
    },
    /// Install the security-runbook kernelspec
    Install(LocationArgs),
    /// Remove the security-runbook kernelspec
    Uninstall(LocationArgs),
}

#[derive(Debug, Args)]
#[group(multiple = false)]
struct LocationArgs {
    /// In the user's Jupyter data directory (the default)
    #[arg(long)]
    user: bool,
    /// In the active virtual environment or conda environment
    #[arg(long)]
    sys_prefix: bool,
    /// Under DIR/share/jupyter/kernels
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
}

impl LocationArgs {
    fn location(&self) -> install::Location {
        match (&self.prefix, self.sys_prefix) {
            (Some(dir), _) => install::Location::Prefix(dir.clone()),
            (None, true) => install::Location::SysPrefix,
            (None, false) => install::Location::User,
        }
    }
}

fn init_logging() {
    let level = std::env::var("RUNBOOK_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(false)
        .init();
}

/// The AWS SDK's deserializers recurse deeply on ASFF resource details, and its
/// unoptimised (dev profile) frames are large: 8 MiB overflows. Reserved, not committed.
const STACK_BYTES: usize = 64 * 1024 * 1024;

fn run_kernel(connection_file: PathBuf) -> anyhow::Result<()> {
    // The server's own future runs on this thread rather than on `main`, whose
    // stack size the platform chooses.
    std::thread::Builder::new()
        .name("kernel".to_string())
        .stack_size(STACK_BYTES)
        .spawn(move || serve(connection_file))?
        .join()
        .map_err(|_| anyhow::anyhow!("the kernel thread panicked"))?
}

fn serve(connection_file: PathBuf) -> anyhow::Result<()> {
    let info = protocol::read_connection_file(&connection_file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(STACK_BYTES)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let session = session::Session::from_process_env();
        for problem in &session.env_problems {
            tracing::warn!("ignored from the environment: {problem}");
        }
        let session_id = uuid::Uuid::new_v4().to_string();
        let channels = protocol::bind(&info, &session_id).await?;
        tracing::info!(
            "kernel listening ({} transport on {})",
            info.transport,
            info.ip
        );
        server::serve(channels, session).await;
        anyhow::Ok(())
    })?;
    // Don't wait for tasks still parked on sockets.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { connection_file } => {
            init_logging();
            run_kernel(connection_file)
        }
        Command::Install(args) => install::install(&args.location()).map(|dir| {
            println!(
                "Installed the {} kernelspec in {}",
                install::KERNEL_NAME,
                dir.display()
            );
        }),
        Command::Uninstall(args) => install::uninstall(&args.location()).map(|dir| match dir {
            Some(dir) => println!("Removed {}", dir.display()),
            None => println!("No {} kernelspec was installed there", install::KERNEL_NAME),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runbook-kernel: {e:#}");
            ExitCode::FAILURE
        }
    }
}
