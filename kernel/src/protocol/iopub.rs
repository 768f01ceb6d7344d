//! The iopub publisher: one task owns the PUB socket; everyone else sends
//! through a channel, so output from any task keeps its order.

use jupyter_protocol::{JupyterMessage, JupyterMessageContent};
use jupyter_zmq_client::KernelIoPubConnection;
use tokio::sync::{mpsc, oneshot};

enum Command {
    Publish(Box<JupyterMessage>),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<Command>,
    topic_prefix: String,
}

impl Publisher {
    pub fn spawn(mut connection: KernelIoPubConnection, session_id: &str) -> Publisher {
        let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
        tokio::spawn(async move {
            while let Some(command) = rx.recv().await {
                match command {
                    Command::Publish(message) => {
                        if let Err(e) = connection.send(*message).await {
                            tracing::warn!("iopub: send failed: {e}");
                        }
                    }
                    Command::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Publisher {
            tx,
            topic_prefix: format!("kernel.{session_id}"),
        }
    }

    /// Publishes `content` as a child of `parent` (the request it answers).
    pub fn publish(&self, content: impl Into<JupyterMessageContent>, parent: &JupyterMessage) {
        let mut message = super::child_message(content, parent);
        // On iopub the first frame is a topic, not the requester's routing identity.
        let topic = format!("{}.{}", self.topic_prefix, message.header.msg_type);
        message.zmq_identities = vec![topic.into_bytes().into()];
        if self.tx.send(Command::Publish(Box::new(message))).is_err() {
            tracing::warn!("iopub: publisher has stopped; output dropped");
        }
    }

    /// Waits until everything published so far has been handed to the socket.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}
