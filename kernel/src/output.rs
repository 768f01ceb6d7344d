//! The handle a magic writes to. Handlers never see a socket: the kernel gives
//! them a [`Output`] backed by iopub and stdin, tests give them a recording one.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use jupyter_protocol::{
    DisplayData, ExecuteResult, ExecutionCount, InputRequest, JupyterMessage,
    JupyterMessageContent, Media, MediaType, Stdio, StreamContent, Transient, UpdateDisplayData,
};
use jupyter_zmq_client::KernelStdinConnection;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::error::MagicError;
use crate::protocol::{Publisher, child_message, next_message};
use crate::render::Bundle;

/// Names one display so later calls can replace its content in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayHandle(pub String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    #[error(
        "this frontend does not accept input (allow_stdin is false), so the kernel cannot ask; run the cell in JupyterLab, or see the magic's help for a non-interactive option"
    )]
    NoStdin,
    #[error("interrupted while waiting for an answer")]
    Interrupted,
    #[error("the frontend's input channel failed: {0}")]
    Channel(String),
}

#[async_trait]
pub trait Output: Send + Sync {
    /// Shows a new result and returns a handle to update it later.
    fn display(&self, bundle: Bundle) -> DisplayHandle;
    /// Replaces the content of an earlier display.
    fn update(&self, handle: &DisplayHandle, bundle: Bundle);
    /// Text a Rust cell printed, as it arrives.
    fn stream(&self, name: Stdio, text: &str);
    /// A Rust cell's value (`execute_result`), as a MIME map.
    fn result(&self, data: serde_json::Map<String, serde_json::Value>);
    /// Whether the frontend allows input requests for this cell.
    fn stdin_allowed(&self) -> bool;
    /// Asks the human for one line through Jupyter's stdin channel.
    async fn ask(&self, prompt: &str, password: bool) -> Result<String, AskError>;
    /// Fires when the user interrupts the cell.
    fn cancellation(&self) -> CancellationToken;
    /// While true, an interrupt is left to the handler (it stops between steps and
    /// rolls back) instead of the kernel dropping the cell after a grace period.
    fn set_critical(&self, critical: bool);
}

/// Runs `work` until it finishes or the cell is interrupted, whichever comes first.
/// Dropping `work` cancels any in-flight request it was making.
pub async fn cancellable<T>(
    out: &dyn Output,
    work: impl Future<Output = T>,
) -> Result<T, MagicError> {
    let token = out.cancellation();
    tokio::select! {
        biased;
        _ = token.cancelled() => Err(MagicError::interrupted()),
        value = work => Ok(value),
    }
}

/// The kernel's [`Output`]: displays go to iopub, questions to stdin.
pub struct KernelOutput {
    iopub: Publisher,
    stdin: Arc<Mutex<KernelStdinConnection>>,
    parent: JupyterMessage,
    allow_stdin: bool,
    /// A silent request shows nothing.
    muted: bool,
    token: CancellationToken,
    critical: Arc<AtomicBool>,
    execution_count: usize,
}

impl KernelOutput {
    /// Whether the handler is in a step that must not be dropped part-way.
    pub fn critical(&self) -> Arc<AtomicBool> {
        self.critical.clone()
    }

    pub fn new(
        iopub: Publisher,
        stdin: Arc<Mutex<KernelStdinConnection>>,
        parent: JupyterMessage,
        allow_stdin: bool,
        muted: bool,
        token: CancellationToken,
        execution_count: usize,
    ) -> KernelOutput {
        KernelOutput {
            iopub,
            stdin,
            parent,
            allow_stdin,
            muted,
            token,
            critical: Arc::new(AtomicBool::new(false)),
            execution_count,
        }
    }
}

/// The bundle as jupyter-protocol media.
pub fn media(bundle: &Bundle) -> Media {
    let map = serde_json::Value::Object(bundle.to_mime_map());
    serde_json::from_value(map).unwrap_or_else(|e| {
        tracing::error!("a display bundle did not convert to media: {e}");
        Media::new(vec![MediaType::Plain(bundle.plain.clone())])
    })
}

#[async_trait]
impl Output for KernelOutput {
    fn display(&self, bundle: Bundle) -> DisplayHandle {
        let handle = DisplayHandle(uuid::Uuid::new_v4().to_string());
        if !self.muted {
            let display = DisplayData {
                data: media(&bundle),
                metadata: Default::default(),
                transient: Some(Transient {
                    display_id: Some(handle.0.clone()),
                }),
            };
            self.iopub.publish(display, &self.parent);
        }
        handle
    }

    fn update(&self, handle: &DisplayHandle, bundle: Bundle) {
        if !self.muted {
            self.iopub.publish(
                UpdateDisplayData::new(media(&bundle), &handle.0),
                &self.parent,
            );
        }
    }

    fn stream(&self, name: Stdio, text: &str) {
        if !self.muted {
            let content = StreamContent {
                name,
                text: text.to_string(),
            };
            self.iopub.publish(content, &self.parent);
        }
    }

    fn result(&self, data: serde_json::Map<String, serde_json::Value>) {
        if !self.muted {
            let media =
                serde_json::from_value(serde_json::Value::Object(data)).unwrap_or_else(|e| {
                    tracing::error!("a Rust cell's value did not convert to media: {e}");
                    Media::default()
                });
            let result = ExecuteResult {
                execution_count: ExecutionCount::new(self.execution_count),
                data: media,
                metadata: Default::default(),
                // The schema wants an object here, never null.
                transient: Some(Transient::default()),
            };
            self.iopub.publish(result, &self.parent);
        }
    }

    fn stdin_allowed(&self) -> bool {
        self.allow_stdin
    }

    async fn ask(&self, prompt: &str, password: bool) -> Result<String, AskError> {
        if !self.allow_stdin {
            return Err(AskError::NoStdin);
        }
        let mut stdin = self.stdin.lock().await;
        let request = child_message(
            InputRequest {
                prompt: prompt.to_string(),
                password,
            },
            &self.parent,
        );
        stdin
            .send(request)
            .await
            .map_err(|e| AskError::Channel(e.to_string()))?;
        loop {
            let message = tokio::select! {
                biased;
                _ = self.token.cancelled() => return Err(AskError::Interrupted),
                received = next_message("stdin", &mut stdin) => received.message,
            };
            match message.content {
                JupyterMessageContent::InputReply(reply) => return Ok(reply.value),
                other => tracing::warn!("stdin: ignored {}", other.message_type()),
            }
        }
    }

    fn cancellation(&self) -> CancellationToken {
        self.token.clone()
    }

    fn set_critical(&self, critical: bool) {
        self.critical.store(critical, Ordering::SeqCst);
    }
}

#[cfg(test)]
pub mod recording {
    //! An [`Output`] that records what a handler showed, for unit tests.
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct RecordingOutput {
        pub displays: Mutex<Vec<(DisplayHandle, Bundle)>>,
        pub updates: Mutex<Vec<(DisplayHandle, Bundle)>>,
        pub answers: Mutex<VecDeque<String>>,
        pub prompts: Mutex<Vec<String>>,
        /// Stream text and execute results, in order.
        pub printed: Mutex<Vec<(String, String)>>,
        pub results: Mutex<Vec<serde_json::Map<String, serde_json::Value>>>,
        pub stdin: bool,
        pub token: CancellationToken,
    }

    impl RecordingOutput {
        pub fn new() -> Self {
            Self::default()
        }

        /// The last version of every display, in order of creation.
        pub fn last_bundles(&self) -> Vec<Bundle> {
            let displays = self.displays.lock().map(|d| d.clone()).unwrap_or_default();
            let updates = self.updates.lock().map(|u| u.clone()).unwrap_or_default();
            displays
                .into_iter()
                .map(|(h, b)| {
                    updates
                        .iter()
                        .rev()
                        .find(|(uh, _)| *uh == h)
                        .map_or(b, |(_, ub)| ub.clone())
                })
                .collect()
        }
    }

    #[async_trait]
    impl Output for RecordingOutput {
        fn display(&self, bundle: Bundle) -> DisplayHandle {
            let mut displays = self.displays.lock().unwrap_or_else(|e| e.into_inner());
            let handle = DisplayHandle(format!("display-{}", displays.len()));
            displays.push((handle.clone(), bundle));
            handle
        }

        fn update(&self, handle: &DisplayHandle, bundle: Bundle) {
            let mut updates = self.updates.lock().unwrap_or_else(|e| e.into_inner());
            updates.push((handle.clone(), bundle));
        }

        fn stream(&self, name: Stdio, text: &str) {
            let mut printed = self.printed.lock().unwrap_or_else(|e| e.into_inner());
            printed.push((format!("{name:?}"), text.to_string()));
        }

        fn result(&self, data: serde_json::Map<String, serde_json::Value>) {
            let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
            results.push(data);
        }

        fn stdin_allowed(&self) -> bool {
            self.stdin
        }

        async fn ask(&self, prompt: &str, _password: bool) -> Result<String, AskError> {
            if !self.stdin {
                return Err(AskError::NoStdin);
            }
            self.prompts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(prompt.to_string());
            let answer = self
                .answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            answer.ok_or(AskError::Interrupted)
        }

        fn cancellation(&self) -> CancellationToken {
            self.token.clone()
        }

        fn set_critical(&self, _critical: bool) {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::render::RUNBOOK_MIME;

    #[test]
    fn media_keeps_every_part_of_the_bundle() {
        let bundle = Bundle::html("plain", "<b>x</b>", serde_json::json!({"a": 1}));
        let wire = serde_json::to_value(media(&bundle)).unwrap();
        assert_eq!(wire["text/plain"], "plain");
        assert_eq!(wire["text/html"], "<b>x</b>");
        assert_eq!(wire[RUNBOOK_MIME]["a"], 1);
    }
}
