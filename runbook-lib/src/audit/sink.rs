//! The off-machine copy of the audit trail: every record, once fsynced locally, is
//! sent to CloudWatch Logs (one log stream per kernel session) before the next step
//! starts. A notebook instance can be deleted with its disk; the copy survives it.
//!
//! The SDK is async and the journal is not, so the client lives on its own thread
//! with its own runtime, and `send` waits for its answer: the step after a record
//! never starts before the copy is stored or has failed.

use std::sync::mpsc;
use std::thread;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use chrono::{DateTime, Utc};

use crate::settings::Settings;

/// CloudWatch Logs refuses events above 256 KiB (with 26 bytes of overhead).
const MAX_EVENT_BYTES: usize = 256 * 1024 - 26;

struct Job {
    at: DateTime<Utc>,
    line: String,
    reply: mpsc::Sender<Result<(), String>>,
}

/// A running CloudWatch Logs sink.
#[derive(Debug)]
pub struct CloudWatchSink {
    log_group: String,
    stream: String,
    jobs: mpsc::Sender<Job>,
}

impl CloudWatchSink {
    /// Connects with the settings' region and profile and creates the session's log
    /// stream (the group must exist: creating groups is left to whoever owns retention
    /// and encryption). `Err` says why the sink cannot be used.
    pub fn start(
        settings: &Settings,
        log_group: &str,
        session: &str,
    ) -> Result<CloudWatchSink, String> {
        let stream = format!(
            "runbook-{}-{}",
            Utc::now().format("%Y%m%dT%H%M%SZ"),
            session
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(64)
                .collect::<String>()
        );
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::channel::<Result<(), String>>();
        let settings = settings.clone();
        let group = log_group.to_string();
        let name = stream.clone();
        thread::Builder::new()
            .name("audit-sink".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start its runtime: {e}")));
                        return;
                    }
                };
                let client = runtime.block_on(async {
                    let sdk = crate::cloud::aws::load_sdk_config(&settings).await;
                    Client::new(&sdk)
                });
                let created = runtime.block_on(create_stream(&client, &group, &name));
                let ok = created.is_ok();
                let _ = ready_tx.send(created);
                if !ok {
                    return;
                }
                for job in inbox {
                    let result = runtime.block_on(put(&client, &group, &name, job.at, &job.line));
                    let _ = job.reply.send(result);
                }
            })
            .map_err(|e| format!("cannot start the audit sink thread: {e}"))?;
        ready
            .recv()
            .map_err(|_| "the audit sink stopped while starting".to_string())??;
        Ok(CloudWatchSink {
            log_group: log_group.to_string(),
            stream,
            jobs,
        })
    }

    pub fn log_group(&self) -> &str {
        &self.log_group
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Stores one record's line; returns once CloudWatch Logs accepted it.
    pub fn send(&self, at: DateTime<Utc>, line: &str) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(Job {
                at,
                line: line.to_string(),
                reply,
            })
            .map_err(|_| "the audit sink has stopped".to_string())?;
        answer
            .recv()
            .map_err(|_| "the audit sink stopped before answering".to_string())?
    }
}

fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &aws_sdk_cloudwatchlogs::error::SdkError<E>,
) -> String {
    match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(e).to_string(),
    }
}

async fn create_stream(client: &Client, group: &str, stream: &str) -> Result<(), String> {
    match client
        .create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot create the log stream {stream} in the CloudWatch Logs group {group}: {}{}",
            describe(&e),
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception())
            {
                " (create the log group first: aws logs create-log-group --log-group-name ...)"
            } else {
                ""
            }
        )),
    }
}

async fn put(
    client: &Client,
    group: &str,
    stream: &str,
    at: DateTime<Utc>,
    line: &str,
) -> Result<(), String> {
    if line.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "the record is {} bytes; CloudWatch Logs takes at most {MAX_EVENT_BYTES} per event",
            line.len()
        ));
    }
    let event = InputLogEvent::builder()
        .timestamp(at.timestamp_millis())
        .message(line)
        .build()
        .map_err(|e| format!("cannot build the log event: {e}"))?;
    client
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .log_events(event)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "CloudWatch Logs did not store the record (group {group}, stream {stream}): {}",
                describe(&e)
            )
        })
}
