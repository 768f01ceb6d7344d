//! Connections: the connection file and the five channels. Signing and framing
//! come from `jupyter-zmq-client`; this module only wires them up.

mod iopub;

use std::path::Path;

use anyhow::{Context, bail};
use chrono::Timelike;
use jupyter_protocol::{
    ConnectionInfo, Header, JupyterMessage, JupyterMessageContent, UnknownMessage,
};
use jupyter_zmq_client::{
    Connection, KernelControlConnection, KernelHeartbeatConnection, KernelShellConnection,
    KernelStdinConnection, RawMessage,
};
use serde_json::Value;
use zeromq::{SocketRecv, SocketSend};

pub use iopub::Publisher;

/// The messaging spec version this kernel speaks.
pub const PROTOCOL_VERSION: &str = "5.3";

pub fn read_connection_file(path: &Path) -> anyhow::Result<ConnectionInfo> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the connection file {}", path.display()))?;
    let info: ConnectionInfo = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a Jupyter connection file", path.display()))?;
    if !info.key.is_empty() && info.signature_scheme != "hmac-sha256" {
        bail!(
            "unsupported signature_scheme '{}' in {}; accepted: hmac-sha256",
            info.signature_scheme,
            path.display()
        );
    }
    Ok(info)
}

pub struct Channels {
    pub shell: KernelShellConnection,
    pub control: KernelControlConnection,
    pub stdin: KernelStdinConnection,
    pub iopub: Publisher,
    pub heartbeat: KernelHeartbeatConnection,
}

/// Binds all five sockets. `session_id` goes into the header of every message sent.
pub async fn bind(info: &ConnectionInfo, session_id: &str) -> anyhow::Result<Channels> {
    use jupyter_zmq_client as z;
    let shell = z::create_kernel_shell_connection(info, session_id)
        .await
        .context("binding the shell socket")?;
    let control = z::create_kernel_control_connection(info, session_id)
        .await
        .context("binding the control socket")?;
    let stdin = z::create_kernel_stdin_connection(info, session_id)
        .await
        .context("binding the stdin socket")?;
    let iopub = z::create_kernel_iopub_connection(info, session_id)
        .await
        .context("binding the iopub socket")?;
    let heartbeat = z::create_kernel_heartbeat_connection(info)
        .await
        .context("binding the heartbeat socket")?;
    Ok(Channels {
        shell,
        control,
        stdin,
        iopub: Publisher::spawn(iopub, session_id),
        heartbeat,
    })
}

/// A message as received: the typed message, and why its content could not be
/// read, if it could not (then the content is [`JupyterMessageContent::UnknownMessage`]).
pub struct Received {
    pub message: JupyterMessage,
    pub unreadable: Option<String>,
}

/// Fills fields the messaging spec makes optional but `jupyter-protocol` requires,
/// as jupyter_client leaves them out (e.g. `unique` and `n` in history searches).
fn fill_optional_fields(msg_type: &str, content: &mut Value) {
    let Some(object) = content.as_object_mut() else {
        return;
    };
    if msg_type == "history_request" {
        for (key, default) in [
            ("output", Value::Bool(false)),
            ("raw", Value::Bool(true)),
            ("unique", Value::Bool(false)),
            ("n", Value::from(0)),
            ("start", Value::from(0)),
            ("stop", Value::from(0)),
        ] {
            if object.get(key).is_none_or(Value::is_null) {
                object.insert(key.to_string(), default);
            }
        }
    }
}

/// Builds the typed message from signed, framed parts.
fn decode(raw: RawMessage) -> Result<Received, String> {
    let [header, parent, metadata, content, ..] = raw.jparts.as_slice() else {
        return Err(format!(
            "expected at least 4 message parts, got {}",
            raw.jparts.len()
        ));
    };
    let header: Header =
        serde_json::from_slice(header).map_err(|e| format!("unreadable header: {e}"))?;
    let parent_header = serde_json::from_slice(parent).ok();
    let metadata =
        serde_json::from_slice(metadata).unwrap_or_else(|_| Value::Object(Default::default()));
    let mut content: Value =
        serde_json::from_slice(content).map_err(|e| format!("unreadable content: {e}"))?;
    fill_optional_fields(&header.msg_type, &mut content);
    let (content, unreadable) =
        match JupyterMessageContent::from_type_and_content(&header.msg_type, content.clone()) {
            Ok(typed) => (typed, None),
            Err(e) => (
                JupyterMessageContent::UnknownMessage(UnknownMessage {
                    msg_type: header.msg_type.clone(),
                    content,
                }),
                Some(e.to_string()),
            ),
        };
    Ok(Received {
        message: JupyterMessage {
            zmq_identities: raw.zmq_identities,
            header,
            parent_header,
            metadata,
            content,
            buffers: raw.jparts.get(4..).map(<[_]>::to_vec).unwrap_or_default(),
            channel: None,
        },
        unreadable,
    })
}

/// Reads the next correctly signed message. Badly signed or framed ones are
/// logged and dropped; socket errors are logged and retried, so one bad peer
/// cannot stop the kernel.
pub async fn next_message<S: zeromq::SocketRecv>(
    channel: &str,
    connection: &mut Connection<S>,
) -> Received {
    loop {
        let frames = match connection.socket.recv().await {
            Ok(frames) => frames,
            Err(e) => {
                tracing::warn!("{channel}: receive failed, retrying: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let decoded = RawMessage::from_multipart(frames, &connection.mac)
            .map_err(|e| e.to_string())
            .and_then(decode);
        match decoded {
            Ok(received) => return received,
            Err(e) => tracing::warn!("{channel}: dropped a message: {e}"),
        }
    }
}

/// A new message answering (or caused by) `parent`. Dates carry microseconds,
/// the precision jupyter_client parses.
pub fn child_message(
    content: impl Into<JupyterMessageContent>,
    parent: &JupyterMessage,
) -> JupyterMessage {
    let mut message = JupyterMessage::new(content.into(), Some(parent));
    message.header.username = "runbook-kernel".to_string();
    let date = message.header.date;
    message.header.date = date
        .with_nanosecond(date.nanosecond() / 1_000 * 1_000)
        .unwrap_or(date);
    message
}

/// Echoes every heartbeat back, byte for byte.
pub async fn heartbeat(mut hb: KernelHeartbeatConnection) {
    loop {
        match hb.socket.recv().await {
            Ok(ping) => {
                if let Err(e) = hb.socket.send(ping).await {
                    tracing::warn!("heartbeat: reply failed: {e}");
                }
            }
            Err(e) => {
                tracing::warn!("heartbeat: receive failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod hostile_input;

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(msg_type: &str, content: Value) -> RawMessage {
        let header = serde_json::json!({
            "msg_id": "m1", "username": "u", "session": "s",
            "date": "2026-11-28T10:00:00.123456Z", "msg_type": msg_type, "version": "5.3"
        });
        RawMessage {
            zmq_identities: vec![],
            jparts: vec![
                serde_json::to_vec(&header).unwrap().into(),
                b"{}".to_vec().into(),
                b"{}".to_vec().into(),
                serde_json::to_vec(&content).unwrap().into(),
            ],
        }
    }

    #[test]
    fn history_search_without_optional_fields_is_read() {
        let received = decode(raw(
            "history_request",
            serde_json::json!({"hist_access_type": "search", "pattern": "%conf*", "output": false, "raw": true}),
        ))
        .unwrap();
        assert!(received.unreadable.is_none());
        assert!(matches!(
            received.message.content,
            JupyterMessageContent::HistoryRequest(jupyter_protocol::HistoryRequest::Search {
                unique: false,
                n: 0,
                ..
            })
        ));
    }

    #[test]
    fn unreadable_content_is_kept_with_the_reason() {
        let received = decode(raw("execute_request", serde_json::json!({"code": 5}))).unwrap();
        assert!(received.unreadable.is_some());
        assert_eq!(received.message.header.msg_type, "execute_request");
        assert!(
            decode(RawMessage {
                zmq_identities: vec![],
                jparts: vec![]
            })
            .is_err()
        );
    }

    #[test]
    fn child_dates_have_microseconds() {
        let parent = JupyterMessage::new(jupyter_protocol::KernelInfoRequest {}, None);
        let child = child_message(jupyter_protocol::Status::idle(), &parent);
        let text = serde_json::to_value(&child.header).unwrap()["date"]
            .as_str()
            .unwrap()
            .to_string();
        let fraction = text
            .split('.')
            .nth(1)
            .map_or(0, |f| f.trim_end_matches('Z').len());
        assert!(fraction <= 6, "{text}");
    }
}
