//! `runbook-kernel`: run the kernel (from kernel.json), install or uninstall its kernelspec.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use runbook_kernel::{exec, install, protocol, server, session};

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
    /// Execute a notebook in-process, with no Jupyter or Python: outputs into an nbformat 4 copy, a JSON report, a non-zero exit when a cell fails
    Exec(ExecArgs),
    /// Install the security-runbook kernelspec
    Install(LocationArgs),
    /// Remove the security-runbook kernelspec
    Uninstall(LocationArgs),
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// The notebook (.ipynb) to run
    notebook: PathBuf,
    /// A parameter, NAME=VALUE, set with %set after the notebook's parameters cell (repeatable); -p approval=allow-yes lets %approve --yes apply plans unattended
    #[arg(short = 'p', long = "parameter", value_name = "NAME=VALUE", value_parser = exec::parse_parameter)]
    parameters: Vec<(String, String)>,
    /// Where to write the executed notebook (default: NOTEBOOK.exec.ipynb beside it)
    #[arg(long, value_name = "OUT.ipynb")]
    output: Option<PathBuf>,
    /// Also write a JSON report: findings read, plans made, applied unattended, refused or failed, errors
    #[arg(long = "json", value_name = "REPORT.json")]
    report: Option<PathBuf>,
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
    // rust-analyzer (Rust cells' completion) traces every query at INFO.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("salsa", tracing::Level::WARN)
        .with_target("ra_ap", tracing::Level::WARN);
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
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

/// Exit status of `exec` when a cell failed (1) or the notebook could not be run (2).
const EXEC_CELL_FAILED: u8 = 1;
const EXEC_UNUSABLE: u8 = 2;

fn run_exec(args: ExecArgs) -> ExitCode {
    let options = exec::ExecOptions {
        output: args
            .output
            .clone()
            .unwrap_or_else(|| exec::default_output(&args.notebook)),
        notebook: args.notebook,
        parameters: args.parameters,
        report: args.report,
    };
    let run = std::thread::Builder::new()
        .name("exec".to_string())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(STACK_BYTES)
                .enable_all()
                .build()?;
            let outcome = runtime.block_on(async {
                let session = session::Session::from_process_env();
                for problem in &session.env_problems {
                    eprintln!("runbook-kernel exec: ignored from the environment: {problem}");
                }
                exec::exec(&options, session).await
            });
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
            anyhow::Ok((outcome, options))
        });
    let joined = match run {
        Ok(handle) => handle.join(),
        Err(e) => {
            eprintln!("runbook-kernel exec: cannot start: {e}");
            return ExitCode::from(EXEC_UNUSABLE);
        }
    };
    match joined {
        Ok(Ok((Ok(report), options))) => {
            for error in &report.errors {
                eprintln!("runbook-kernel exec: {error}");
            }
            eprintln!(
                "runbook-kernel exec: {} cell(s) run, {} finding(s) read, {} plan(s) made, {} applied unattended, {} refused, {} failed; wrote {}",
                report.cells.len(),
                report.findings_read,
                report.plans_made.len(),
                report.plans_applied_unattended.len(),
                report.plans_refused.len(),
                report.plans_failed.len(),
                options.output.display()
            );
            if report.succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXEC_CELL_FAILED)
            }
        }
        Ok(Ok((Err(e), _))) => {
            eprintln!("runbook-kernel exec: {e}");
            ExitCode::from(EXEC_UNUSABLE)
        }
        Ok(Err(e)) => {
            eprintln!("runbook-kernel exec: {e:#}");
            ExitCode::from(EXEC_UNUSABLE)
        }
        Err(_) => {
            eprintln!("runbook-kernel exec: the run panicked");
            ExitCode::from(EXEC_UNUSABLE)
        }
    }
}

fn main() -> ExitCode {
    // Rust cells run their code in a child process that is this binary again,
    // as evcxr's runtime (or as its rustc wrapper); it never returns then.
    #[cfg(feature = "rust-cells")]
    {
        evcxr::runtime_hook();
        runbook_kernel::rust_cells::put_cargo_on_path();
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Exec(args) => return run_exec(args),
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
