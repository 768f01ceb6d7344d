//! The AWS backend's finding updates, through the real SDK, against the project's
//! Security Hub test server (tests/servers/securityhub.py).
//!
//! Driven by tests/test_aws_resources.py, which starts the server with findings
//! and passes in environment variables:
//!
//! - `RUNBOOK_SECURITYHUB_URL`: the server (required; without it this test skips itself)
//! - `RUNBOOK_SECURITYHUB_IDS`: a JSON file listing the identifiers to update
//!   (`[{"id": ..., "product_arn": ...}]`), more than one BatchUpdateFindings call holds.
//!
//! The Python test then checks the requests the server received.

use std::future::Future;

use runbook::cloud::aws::{AwsCloud, load_sdk_config};
use runbook::cloud::{Cloud, CloudError, MAX_NOTE_CHARS, MAX_UPDATE_BATCH};
use runbook::finding::{FindingIdentifier, WorkflowStatus};
use runbook::settings::Settings;

/// Runs `f` on a thread with a big stack: the SDK's deserializers need deep
/// stacks in debug builds.
fn on_big_stack<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::Builder::new()
        .name("aws-securityhub".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(f());
        })
        .expect("spawn test thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn finding_updates_against_the_security_hub_server() {
    let Ok(url) = std::env::var("RUNBOOK_SECURITYHUB_URL") else {
        println!("skipped: RUNBOOK_SECURITYHUB_URL not set");
        return;
    };
    let ids_file = std::env::var("RUNBOOK_SECURITYHUB_IDS")
        .expect("RUNBOOK_SECURITYHUB_IDS must be set with RUNBOOK_SECURITYHUB_URL");
    let ids: Vec<FindingIdentifier> =
        serde_json::from_slice(&std::fs::read(&ids_file).expect("the ids file"))
            .expect("the ids file holds identifiers");
    assert!(
        ids.len() > MAX_UPDATE_BATCH,
        "the test needs more ids than one call holds"
    );
    // SAFETY: set before any other thread of this test binary reads the
    // environment (this is its only test; the SDK threads start below).
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL_SECURITYHUB", &url);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::remove_var("AWS_PROFILE");
    }
    on_big_stack(move || async move {
        let sdk = load_sdk_config(&Settings::default()).await;
        let cloud = AwsCloud::new(&sdk, "test server").expect("AwsCloud");

        // Refused before any request: no findings, or a note longer than the API takes.
        let refused = cloud
            .update_findings(&[], WorkflowStatus::Notified, "x")
            .await;
        assert!(
            matches!(refused, Err(CloudError::InvalidInput(_))),
            "{refused:?}"
        );
        let long = "x".repeat(MAX_NOTE_CHARS + 1);
        let refused = cloud
            .update_findings(&ids, WorkflowStatus::Notified, &long)
            .await;
        assert!(
            matches!(&refused, Err(CloudError::InvalidInput(m)) if m.contains("512")),
            "{refused:?}"
        );

        // Every id is updated, in calls of at most a hundred; a note at the limit,
        // counted in characters, goes whole.
        let note = "対".repeat(MAX_NOTE_CHARS);
        let outcome = cloud
            .update_findings(&ids, WorkflowStatus::Notified, &note)
            .await
            .expect("batched update");
        assert!(outcome.all_processed(), "{:?}", outcome.unprocessed);
        assert_eq!(outcome.processed.len(), ids.len());

        // A blank note sends no note (the API refuses a blank Note.Text).
        let outcome = cloud
            .update_findings(&ids[..1], WorkflowStatus::Resolved, "  ")
            .await
            .expect("update without a note");
        assert_eq!(outcome.processed, ids[..1]);
        println!("securityhub-result: done");
    });
}
