//! The kernel's event loops: one task per channel, a typed match over message
//! content, and loops that log an error and carry on.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::Duration;

use futures::FutureExt;
use jupyter_protocol::{
    CodeMirrorMode, CommClose, CommInfoReply, CompleteReply, ErrorOutput, ExecuteInput,
    ExecuteReply, ExecuteRequest, ExecutionCount, ExpressionResult, HelpLink, HistoryEntry,
    HistoryReply, HistoryRequest, InspectReply, InterruptReply, IsCompleteReply, JupyterMessage,
    JupyterMessageContent, KernelInfoReply, LanguageInfo, Media, MediaType, ReplyError,
    ReplyStatus, ShutdownReply, Status, UnknownMessage,
};
use jupyter_zmq_client::{Connection, KernelControlConnection, KernelStdinConnection};
use runbook::settings::{BackendChoice, SettingKey};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorKind, MagicError};
use crate::magics::{self, assist};
use crate::output::KernelOutput;
use crate::protocol::{
    self, Channels, PROTOCOL_VERSION, Publisher, Received, child_message, next_message,
};
use crate::session::{HISTORY_SESSION, Session};

/// How long an interrupted cell may take to stop by itself before it is dropped.
const INTERRUPT_GRACE: Duration = Duration::from_millis(500);

/// After a cell fails with `stop_on_error`, how long the shell socket may stay
/// quiet before the requests sent with it (Run All sends every cell at once) count
/// as all queued. The queue is read before the error is replied to, so no request
/// a client sends in answer to the error can be caught by this window.
const QUEUE_SETTLE: Duration = Duration::from_millis(20);
/// The longest the queue is read for, so a client that never pauses cannot hold
/// the error reply back or fill memory.
const QUEUE_READ_LIMIT: Duration = Duration::from_secs(1);

/// State the control channel shares with the shell channel.
struct Shared {
    /// The running cell's cancellation, if a cell is running.
    running: StdMutex<Option<CancellationToken>>,
    shutdown: CancellationToken,
    banner: RwLock<String>,
}

impl Shared {
    fn interrupt(&self) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = running.as_ref() {
            token.cancel();
        }
    }

    fn set_running(&self, token: Option<CancellationToken>) {
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = token;
    }

    fn banner(&self) -> String {
        self.banner
            .read()
            .map(|b| b.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn shut_down(&self) {
        self.interrupt();
        self.shutdown.cancel();
    }
}

fn banner(session: &Session) -> String {
    let settings = &session.settings;
    let backend = match (session.clouds.current(), settings.backend) {
        (Some(connected), _) => connected.reason.clone(),
        (None, BackendChoice::Sandbox) => {
            "sandbox: the built-in simulated organisation; nothing touches AWS".to_string()
        }
        (None, BackendChoice::Aws) => "aws: the default credential chain".to_string(),
        (None, BackendChoice::Auto) => {
            "auto: AWS when the default credential chain has credentials, otherwise the built-in sandbox (decided on first use)".to_string()
        }
    };
    format!(
        "Security Runbook kernel {}\nBackend: {backend} (backend set by {}).\nType %help for the magics; %config shows the settings.",
        env!("CARGO_PKG_VERSION"),
        settings.source(SettingKey::Backend)
    )
}

fn kernel_info(banner: String) -> KernelInfoReply {
    KernelInfoReply {
        status: ReplyStatus::Ok,
        protocol_version: PROTOCOL_VERSION.to_string(),
        implementation: "runbook-kernel".to_string(),
        implementation_version: env!("CARGO_PKG_VERSION").to_string(),
        language_info: LanguageInfo {
            name: "rust".to_string(),
            version: "2024".to_string(),
            mimetype: Some("text/rust".to_string()),
            file_extension: Some(".rs".to_string()),
            pygments_lexer: Some("rust".to_string()),
            codemirror_mode: Some(CodeMirrorMode::Simple("rust".to_string())),
            nbconvert_exporter: None,
        },
        banner,
        help_links: vec![
            HelpLink {
                text: "Security Runbook kernel: magics (%help)".to_string(),
                url: "https://docs.aws.amazon.com/securityhub/latest/userguide/securityhub-controls-reference.html".to_string(),
            },
            HelpLink {
                text: "Amazon Bedrock user guide".to_string(),
                url: "https://docs.aws.amazon.com/bedrock/latest/userguide/what-is-bedrock.html".to_string(),
            },
        ],
        debugger: false,
        error: None,
    }
}

async fn reply<S: zeromq::SocketSend>(
    connection: &mut Connection<S>,
    request: &JupyterMessage,
    content: impl Into<JupyterMessageContent>,
) {
    if let Err(e) = connection.send(child_message(content, request)).await {
        tracing::warn!("reply to {} failed: {e}", request.header.msg_type);
    }
}

/// Answers a request whose content could not be read, so the client is not left waiting.
async fn reply_unreadable<S: zeromq::SocketSend>(
    connection: &mut Connection<S>,
    request: &JupyterMessage,
    reason: &str,
) {
    let msg_type = &request.header.msg_type;
    tracing::warn!("unreadable {msg_type}: {reason}");
    let Some(kind) = msg_type.strip_suffix("_request") else {
        return;
    };
    let content = UnknownMessage {
        msg_type: format!("{kind}_reply"),
        content: serde_json::json!({
            "status": "error",
            "ename": "BadRequest",
            "evalue": format!("the kernel could not read this {msg_type}: {reason}"),
            "traceback": [],
        }),
    };
    reply(
        connection,
        request,
        JupyterMessageContent::UnknownMessage(content),
    )
    .await;
}

/// Answers an execute request queued behind a failed cell: it runs nothing, takes
/// no execution count and publishes no input, as ipykernel does (`{"status": "aborted"}`).
async fn abort<S: zeromq::SocketSend>(connection: &mut Connection<S>, request: &JupyterMessage) {
    tracing::info!("aborting queued execute request {}", request.header.msg_id);
    let content = UnknownMessage {
        msg_type: "execute_reply".to_string(),
        content: serde_json::json!({"status": "aborted"}),
    };
    reply(
        connection,
        request,
        JupyterMessageContent::UnknownMessage(content),
    )
    .await;
}

fn shutdown_reply(restart: bool) -> ShutdownReply {
    ShutdownReply {
        restart,
        status: ReplyStatus::Ok,
        error: None,
    }
}

/// Runs the kernel until a shutdown request.
pub async fn serve(channels: Channels, session: Session) {
    let Channels {
        shell,
        control,
        stdin,
        iopub,
        heartbeat,
    } = channels;
    tokio::spawn(protocol::heartbeat(heartbeat));
    let shared = Arc::new(Shared {
        running: StdMutex::new(None),
        shutdown: CancellationToken::new(),
        banner: RwLock::new(banner(&session)),
    });
    let control_task = tokio::spawn(control_loop(control, iopub.clone(), shared.clone()));
    tokio::spawn(interrupt_on_sigint(shared.clone()));
    let mut kernel = ShellLoop {
        session,
        shell,
        iopub: iopub.clone(),
        stdin: Arc::new(Mutex::new(stdin)),
        shared,
        after_error: VecDeque::new(),
    };
    kernel.run().await;
    if let Err(e) = control_task.await {
        tracing::warn!("control task ended abnormally: {e}");
    }
    iopub.flush().await;
}

async fn interrupt_on_sigint(shared: Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::interrupt()) {
        Ok(mut sigint) => {
            while sigint.recv().await.is_some() {
                tracing::info!("SIGINT: interrupting the running cell");
                shared.interrupt();
            }
        }
        Err(e) => tracing::warn!("cannot listen for SIGINT: {e}"),
    }
}

async fn control_loop(mut control: KernelControlConnection, iopub: Publisher, shared: Arc<Shared>) {
    loop {
        let Received {
            message: request,
            unreadable,
        } = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            received = next_message("control", &mut control) => received,
        };
        iopub.publish(Status::busy(), &request);
        if let Some(reason) = unreadable {
            reply_unreadable(&mut control, &request, &reason).await;
            iopub.publish(Status::idle(), &request);
            continue;
        }
        match &request.content {
            JupyterMessageContent::KernelInfoRequest(_) => {
                reply(&mut control, &request, kernel_info(shared.banner())).await;
            }
            JupyterMessageContent::InterruptRequest(_) => {
                shared.interrupt();
                reply(&mut control, &request, InterruptReply::new()).await;
            }
            JupyterMessageContent::ShutdownRequest(r) => {
                reply(&mut control, &request, shutdown_reply(r.restart)).await;
                iopub.publish(shutdown_reply(r.restart), &request);
                iopub.publish(Status::idle(), &request);
                shared.shut_down();
                break;
            }
            other => tracing::warn!("control: unsupported message {}", other.message_type()),
        }
        iopub.publish(Status::idle(), &request);
    }
}

struct ShellLoop {
    session: Session,
    shell: jupyter_zmq_client::KernelShellConnection,
    iopub: Publisher,
    stdin: Arc<Mutex<KernelStdinConnection>>,
    shared: Arc<Shared>,
    /// Requests that were queued when a cell failed with `stop_on_error`: their
    /// execute requests are aborted, anything else is answered as usual.
    after_error: VecDeque<Received>,
}

impl ShellLoop {
    async fn run(&mut self) {
        loop {
            if self.shared.shutdown.is_cancelled() {
                break;
            }
            let (received, queued_before_error) = match self.after_error.pop_front() {
                Some(received) => (received, true),
                None => tokio::select! {
                    _ = self.shared.shutdown.cancelled() => break,
                    received = next_message("shell", &mut self.shell) => (received, false),
                },
            };
            let Received {
                message: request,
                unreadable,
            } = received;
            self.iopub.publish(Status::busy(), &request);
            match (unreadable, &request.content) {
                (Some(reason), _) => reply_unreadable(&mut self.shell, &request, &reason).await,
                (None, JupyterMessageContent::ExecuteRequest(_)) if queued_before_error => {
                    abort(&mut self.shell, &request).await;
                }
                (None, _) => self.handle(&request).await,
            }
            self.iopub.publish(Status::idle(), &request);
        }
    }

    /// Reads every request already waiting on the shell socket into `after_error`.
    async fn take_queue(&mut self) {
        let until = tokio::time::Instant::now() + QUEUE_READ_LIMIT;
        while tokio::time::Instant::now() < until {
            match tokio::time::timeout(QUEUE_SETTLE, next_message("shell", &mut self.shell)).await {
                Ok(received) => self.after_error.push_back(received),
                Err(_quiet) => break,
            }
        }
        if !self.after_error.is_empty() {
            tracing::info!(
                "a cell failed with stop_on_error: aborting the execute requests among {} queued",
                self.after_error.len()
            );
        }
    }

    async fn handle(&mut self, request: &JupyterMessage) {
        match &request.content {
            JupyterMessageContent::KernelInfoRequest(_) => {
                let info = kernel_info(self.shared.banner());
                reply(&mut self.shell, request, info).await;
            }
            JupyterMessageContent::ExecuteRequest(execute) => {
                let result = self.execute(request, execute).await;
                // As ipykernel does: a failed cell aborts the cells queued behind it
                // (Run All), read before the reply so later requests still run.
                if result.status == ReplyStatus::Error && execute.stop_on_error && !execute.silent {
                    self.take_queue().await;
                }
                reply(&mut self.shell, request, result).await;
            }
            JupyterMessageContent::CompleteRequest(r) => {
                let c = if magics::is_rust_cell(&r.code) {
                    self.session.rust.complete(&r.code, r.cursor_pos).unwrap_or(
                        assist::Completion {
                            matches: Vec::new(),
                            cursor_start: r.cursor_pos,
                            cursor_end: r.cursor_pos,
                        },
                    )
                } else {
                    assist::complete(&r.code, r.cursor_pos, &self.session)
                };
                let content = CompleteReply {
                    matches: c.matches,
                    cursor_start: c.cursor_start,
                    cursor_end: c.cursor_end,
                    ..Default::default()
                };
                reply(&mut self.shell, request, content).await;
            }
            JupyterMessageContent::InspectRequest(r) => {
                let help = if magics::is_rust_cell(&r.code) {
                    self.session.rust.inspect(&r.code, r.cursor_pos)
                } else {
                    assist::inspect(&r.code, r.cursor_pos)
                };
                let content = InspectReply {
                    found: help.is_some(),
                    data: help.map_or_else(Media::default, |text| {
                        Media::new(vec![MediaType::Plain(text)])
                    }),
                    ..Default::default()
                };
                reply(&mut self.shell, request, content).await;
            }
            JupyterMessageContent::IsCompleteRequest(r) => {
                let content = match assist::is_complete(&r.code) {
                    assist::Completeness::Complete => IsCompleteReply::complete(),
                    assist::Completeness::Incomplete => IsCompleteReply::incomplete(String::new()),
                    assist::Completeness::Invalid => IsCompleteReply::invalid(),
                };
                reply(&mut self.shell, request, content).await;
            }
            JupyterMessageContent::HistoryRequest(r) => {
                let content = self.history(r);
                reply(&mut self.shell, request, content).await;
            }
            JupyterMessageContent::CommInfoRequest(_) => {
                reply(&mut self.shell, request, CommInfoReply::default()).await;
            }
            JupyterMessageContent::CommOpen(open) => {
                // No comm targets exist; closing tells the frontend so at once.
                tracing::info!("comm_open for unknown target '{}'", open.target_name);
                let close = CommClose {
                    comm_id: open.comm_id.clone(),
                    data: Default::default(),
                };
                self.iopub.publish(close, request);
            }
            JupyterMessageContent::CommMsg(_) | JupyterMessageContent::CommClose(_) => {}
            JupyterMessageContent::ShutdownRequest(r) => {
                reply(&mut self.shell, request, shutdown_reply(r.restart)).await;
                self.iopub.publish(shutdown_reply(r.restart), request);
                self.shared.shut_down();
            }
            JupyterMessageContent::InterruptRequest(_) => {
                self.shared.interrupt();
                reply(&mut self.shell, request, InterruptReply::new()).await;
            }
            other => tracing::warn!("shell: unsupported message {}", other.message_type()),
        }
    }

    fn history(&self, request: &HistoryRequest) -> HistoryReply {
        let (items, output) = match request {
            HistoryRequest::Tail { n, output, .. } => (
                self.session
                    .history_tail((*n).max(0) as usize)
                    .iter()
                    .collect(),
                *output,
            ),
            HistoryRequest::Range {
                session,
                start,
                stop,
                output,
                ..
            } => {
                // 0 (or none) is this session; this kernel keeps no earlier ones.
                let this =
                    matches!(session.unwrap_or(0), 0) || *session == Some(HISTORY_SESSION as i32);
                let items = if this {
                    self.session
                        .history_range(i64::from(*start), i64::from(*stop))
                } else {
                    Vec::new()
                };
                (items, *output)
            }
            HistoryRequest::Search {
                pattern,
                unique,
                n,
                output,
                ..
            } => (
                self.session
                    .history_search(pattern, (*n).max(0) as usize, *unique),
                *output,
            ),
        };
        let history = items
            .into_iter()
            .map(|item| {
                if output {
                    HistoryEntry::InputOutput(
                        HISTORY_SESSION,
                        item.line,
                        (item.code.clone(), String::new()),
                    )
                } else {
                    HistoryEntry::Input(HISTORY_SESSION, item.line, item.code.clone())
                }
            })
            .collect();
        HistoryReply::new(history)
    }

    async fn execute(
        &mut self,
        request: &JupyterMessage,
        execute: &ExecuteRequest,
    ) -> ExecuteReply {
        let store = execute.store_history && !execute.silent;
        let count = if store {
            self.session.next_execution(&execute.code)
        } else {
            self.session.execution_count
        };
        if !execute.silent {
            let input = ExecuteInput {
                code: execute.code.clone(),
                execution_count: ExecutionCount::new(count),
            };
            self.iopub.publish(input, request);
        }
        let token = CancellationToken::new();
        self.shared.set_running(Some(token.clone()));
        let out = KernelOutput::new(
            self.iopub.clone(),
            self.stdin.clone(),
            request.clone(),
            execute.allow_stdin,
            execute.silent,
            token.clone(),
            count,
        );
        let result = run_guarded(&execute.code, &mut self.session, &out, &token).await;
        self.shared.set_running(None);
        if let Ok(mut banner_text) = self.shared.banner.write() {
            *banner_text = banner(&self.session);
        }
        let user_expressions = execute.user_expressions.as_ref().map(|exprs| {
            exprs
                .keys()
                .map(|k| {
                    let result = ExpressionResult::Error {
                        ename: ErrorKind::NotSupported.ename().to_string(),
                        evalue: "user expressions are not evaluated by this kernel".to_string(),
                        traceback: Vec::new(),
                    };
                    (k.clone(), result)
                })
                .collect::<HashMap<_, _>>()
        });
        let mut reply = ExecuteReply {
            status: ReplyStatus::Ok,
            execution_count: ExecutionCount::new(count),
            payload: Vec::new(),
            user_expressions: Some(user_expressions.unwrap_or_default()),
            error: None,
        };
        if let Err(error) = result {
            if !execute.silent {
                let output = ErrorOutput {
                    ename: error.ename().to_string(),
                    evalue: error.evalue.clone(),
                    traceback: error.traceback(),
                };
                self.iopub.publish(output, request);
            }
            reply.status = ReplyStatus::Error;
            reply.error = Some(Box::new(ReplyError {
                ename: error.ename().to_string(),
                evalue: error.evalue.clone(),
                traceback: error.traceback(),
            }));
        }
        reply
    }
}

/// Runs a cell so that neither a panic nor a handler that ignores an interrupt
/// can take the kernel down or keep it busy.
async fn run_guarded(
    code: &str,
    session: &mut Session,
    out: &KernelOutput,
    token: &CancellationToken,
) -> Result<(), MagicError> {
    let cell = AssertUnwindSafe(magics::run_cell(code, session, out)).catch_unwind();
    let critical = out.critical();
    let deadline = async {
        token.cancelled().await;
        // A handler in a critical step (applying or rolling back) stops by itself.
        loop {
            tokio::time::sleep(INTERRUPT_GRACE).await;
            if !critical.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
        }
    };
    tokio::select! {
        outcome = cell => outcome.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            tracing::error!("a magic panicked: {what}");
            Err(MagicError::new(ErrorKind::Kernel, format!("internal error: {what}")).with_detail([
                "The kernel carried on and the session is intact. Please report this with the cell that caused it.".to_string(),
            ]))
        }),
        _ = deadline => Err(MagicError::interrupted()),
    }
}
