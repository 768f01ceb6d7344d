//! Connections: the connection file and the five channels. Signing and framing
//! come from `jupyter-zmq-client`; this module only wires them up.

mod iopub;

use std::path::Path;

use anyhow::{Context, bail};
use jupyter_protocol::{ConnectionInfo, JupyterMessage};
use jupyter_zmq_client::{
    KernelControlConnection, KernelHeartbeatConnection, KernelShellConnection,
    KernelStdinConnection, RuntimeError,
};
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

/// Reads the next well-formed, correctly signed message. Others are logged and
/// dropped; socket errors are logged and retried, so one bad peer cannot stop the kernel.
pub async fn next_message<S: zeromq::SocketRecv>(
    channel: &str,
    connection: &mut jupyter_zmq_client::Connection<S>,
) -> JupyterMessage {
    loop {
        match connection.read().await {
            Ok(message) => return message,
            Err(e @ (RuntimeError::ZmqError(_) | RuntimeError::IoError(_))) => {
                tracing::warn!("{channel}: receive failed, retrying: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => tracing::warn!("{channel}: dropped a message: {e}"),
        }
    }
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
