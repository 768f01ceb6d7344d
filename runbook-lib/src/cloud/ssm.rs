//! SSM Automation: starting a runbook (one account and region, or many through
//! `TargetLocations`), reading its progress, stopping it. The AWS implementation
//! and the sandbox's side by side; the sandbox runs the documents it simulates
//! (`sandbox/automation.rs`) at once.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::aws::AwsCloud;
use super::aws::support::*;
use super::sandbox::Sandbox;
use super::{CloudError, Target};

/// The execution role Automation assumes in each target account unless told otherwise.
pub const DEFAULT_EXECUTION_ROLE: &str = "AWS-SystemsManager-AutomationExecutionRole";

/// Where one Automation run goes: AWS's `TargetLocation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetLocation {
    /// Account ids or organisational unit ids (`ou-…`).
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub execution_role_name: String,
    /// `N` or `N%`.
    pub max_concurrency: String,
    /// `N` or `N%`.
    pub max_errors: String,
}

/// What `StartAutomationExecution` is asked to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationStart {
    pub document: String,
    pub parameters: BTreeMap<String, Vec<String>>,
    /// Empty: run in the target's own account and region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_locations: Vec<TargetLocation>,
}

/// One step of a run as `GetAutomationExecution` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationStep {
    pub name: String,
    pub action: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// For a multi-account run: the one account and region this step ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The child execution a multi-account step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_execution: Option<String>,
}

/// A run's status and steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomationRun {
    pub execution_id: String,
    pub document: String,
    /// AWS's `AutomationExecutionStatus`: Pending, InProgress, Waiting, Success, Failed, …
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub steps: Vec<AutomationStep>,
}

impl AutomationRun {
    /// Whether the run ended (successfully or not).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            "Success"
                | "Failed"
                | "TimedOut"
                | "Cancelled"
                | "CompletedWithSuccess"
                | "CompletedWithFailure"
                | "Rejected"
                | "Exited"
        )
    }

    pub fn succeeded(&self) -> bool {
        matches!(self.status.as_str(), "Success" | "CompletedWithSuccess")
    }

    /// "step 2 of 3 (ModifyMetadataOptions, InProgress)".
    pub fn progress_line(&self) -> String {
        let done = self
            .steps
            .iter()
            .filter(|s| !matches!(s.status.as_str(), "Pending" | "InProgress" | "Waiting"))
            .count();
        match self
            .steps
            .iter()
            .find(|s| matches!(s.status.as_str(), "InProgress" | "Waiting"))
        {
            Some(s) => format!(
                "{}: step {} of {} ({}, {})",
                self.status,
                done + 1,
                self.steps.len().max(done + 1),
                s.name,
                s.status
            ),
            None => format!("{}: {} step(s) done", self.status, done),
        }
    }

    /// Why it did not succeed: the run's failure message, else its failed steps'.
    pub fn failure_text(&self) -> String {
        if let Some(f) = self.failure.as_ref().filter(|f| !f.is_empty()) {
            return f.clone();
        }
        let steps: Vec<String> = self
            .steps
            .iter()
            .filter_map(|s| s.failure.as_ref().map(|f| format!("step {}: {f}", s.name)))
            .collect();
        if steps.is_empty() {
            format!("the execution ended {}", self.status)
        } else {
            steps.join("; ")
        }
    }
}

/// SSM Automation.
#[async_trait]
pub trait Ssm: Send + Sync {
    /// SSM StartAutomationExecution in `at`; returns the execution id.
    async fn start_automation(
        &self,
        at: &Target,
        start: &AutomationStart,
    ) -> Result<String, CloudError>;

    /// SSM GetAutomationExecution (with its step executions).
    async fn automation(
        &self,
        at: &Target,
        execution_id: &str,
    ) -> Result<AutomationRun, CloudError>;

    /// SSM StopAutomationExecution (Cancel).
    async fn stop_automation(&self, at: &Target, execution_id: &str) -> Result<(), CloudError>;

    /// SSM CreateDocument (Automation, YAML) in `at`; Ok(false) when a document of
    /// that name with the same content is already there.
    async fn create_automation_document(
        &self,
        at: &Target,
        name: &str,
        content: &str,
    ) -> Result<bool, CloudError>;

    /// SSM ModifyDocumentPermission: lets these accounts run the document.
    async fn share_document(
        &self,
        at: &Target,
        name: &str,
        accounts: &[String],
    ) -> Result<(), CloudError>;
}

/// Most accounts one ModifyDocumentPermission call adds.
const SHARE_BATCH: usize = 20;

#[async_trait]
impl Ssm for AwsCloud {
    async fn start_automation(
        &self,
        at: &Target,
        start: &AutomationStart,
    ) -> Result<String, CloudError> {
        use aws_sdk_ssm::types::TargetLocation as SdkLocation;
        let ssm = self.clients(at).await?.ssm;
        let parameters: std::collections::HashMap<String, Vec<String>> = start
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut request = ssm
            .start_automation_execution()
            .document_name(&start.document)
            .set_parameters(Some(parameters));
        for l in &start.target_locations {
            request = request.target_locations(
                SdkLocation::builder()
                    .set_accounts(Some(l.accounts.clone()))
                    .set_regions(Some(l.regions.clone()))
                    .execution_role_name(&l.execution_role_name)
                    .target_location_max_concurrency(&l.max_concurrency)
                    .target_location_max_errors(&l.max_errors)
                    .build(),
            );
        }
        let out = request
            .send()
            .await
            .map_err(|e| fail("ssm:StartAutomationExecution", "Systems Manager", at, e))?;
        out.automation_execution_id()
            .map(str::to_string)
            .ok_or_else(|| {
                CloudError::Other(
                    "ssm:StartAutomationExecution returned no execution id".to_string(),
                )
            })
    }

    async fn automation(
        &self,
        at: &Target,
        execution_id: &str,
    ) -> Result<AutomationRun, CloudError> {
        let ssm = self.clients(at).await?.ssm;
        let out = ssm
            .get_automation_execution()
            .automation_execution_id(execution_id)
            .send()
            .await
            .map_err(|e| fail("ssm:GetAutomationExecution", "Systems Manager", at, e))?;
        let run = out.automation_execution().ok_or_else(|| {
            CloudError::Other(format!(
                "ssm:GetAutomationExecution returned nothing for {execution_id}"
            ))
        })?;
        let steps = run
            .step_executions()
            .iter()
            .map(|s| AutomationStep {
                name: s.step_name().unwrap_or_default().to_string(),
                action: s.action().unwrap_or_default().to_string(),
                status: s
                    .step_status()
                    .map(|st| st.as_str().to_string())
                    .unwrap_or_default(),
                failure: s.failure_message().map(str::to_string),
                target: s.target_location().and_then(|l| {
                    let account = l.accounts().first()?.parse().ok()?;
                    let region = l.regions().first()?.clone();
                    Some(Target { account, region })
                }),
                child_execution: s
                    .outputs()
                    .and_then(|o| o.get("ExecutionId"))
                    .and_then(|v| v.first())
                    .cloned(),
            })
            .collect();
        Ok(AutomationRun {
            execution_id: execution_id.to_string(),
            document: run.document_name().unwrap_or_default().to_string(),
            status: run
                .automation_execution_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            failure: run.failure_message().map(str::to_string),
            steps,
        })
    }

    async fn create_automation_document(
        &self,
        at: &Target,
        name: &str,
        content: &str,
    ) -> Result<bool, CloudError> {
        use aws_sdk_ssm::types::{DocumentFormat, DocumentType};
        let ssm = self.clients(at).await?.ssm;
        let created = ssm
            .create_document()
            .name(name)
            .content(content)
            .document_type(DocumentType::Automation)
            .document_format(DocumentFormat::Yaml)
            .send()
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(e) if is_code(&e, &["DocumentAlreadyExists"]) => {
                let existing = ssm
                    .get_document()
                    .name(name)
                    .document_format(DocumentFormat::Yaml)
                    .send()
                    .await
                    .map_err(|e| fail("ssm:GetDocument", "Systems Manager", at, e))?;
                if existing.content().map(str::trim) == Some(content.trim()) {
                    Ok(false)
                } else {
                    Err(CloudError::InvalidInput(format!(
                        "a different Automation document named {name} already exists in {at}; delete it (aws ssm delete-document --name {name}) or make a new plan"
                    )))
                }
            }
            Err(e) => Err(fail("ssm:CreateDocument", "Systems Manager", at, e)),
        }
    }

    async fn share_document(
        &self,
        at: &Target,
        name: &str,
        accounts: &[String],
    ) -> Result<(), CloudError> {
        use aws_sdk_ssm::types::DocumentPermissionType;
        let ssm = self.clients(at).await?.ssm;
        for batch in accounts.chunks(SHARE_BATCH) {
            ssm.modify_document_permission()
                .name(name)
                .permission_type(DocumentPermissionType::Share)
                .set_account_ids_to_add(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| fail("ssm:ModifyDocumentPermission", "Systems Manager", at, e))?;
        }
        Ok(())
    }

    async fn stop_automation(&self, at: &Target, execution_id: &str) -> Result<(), CloudError> {
        let ssm = self.clients(at).await?.ssm;
        ssm.stop_automation_execution()
            .automation_execution_id(execution_id)
            .r#type(aws_sdk_ssm::types::StopType::Cancel)
            .send()
            .await
            .map_err(|e| fail("ssm:StopAutomationExecution", "Systems Manager", at, e))?;
        Ok(())
    }
}

#[async_trait]
impl Ssm for Sandbox {
    async fn create_automation_document(
        &self,
        _at: &Target,
        name: &str,
        content: &str,
    ) -> Result<bool, CloudError> {
        self.store_document(name, content)
    }

    async fn share_document(
        &self,
        _at: &Target,
        name: &str,
        _accounts: &[String],
    ) -> Result<(), CloudError> {
        // One sandbox organisation reads every document; sharing only needs it to exist.
        self.document(name).map(|_| ()).ok_or_else(|| {
            CloudError::NotFound(format!("InvalidDocument: no document named {name}"))
        })
    }

    async fn start_automation(
        &self,
        at: &Target,
        start: &AutomationStart,
    ) -> Result<String, CloudError> {
        if start.target_locations.is_empty() {
            self.run_automation(at, start)
        } else {
            super::sandbox::automation::roll_out(self, at, start).await
        }
    }

    async fn automation(
        &self,
        _at: &Target,
        execution_id: &str,
    ) -> Result<AutomationRun, CloudError> {
        self.automation_run(execution_id).ok_or_else(|| {
            CloudError::NotFound(format!(
                "AutomationExecutionNotFoundException: no execution {execution_id}"
            ))
        })
    }

    async fn stop_automation(&self, _at: &Target, execution_id: &str) -> Result<(), CloudError> {
        // Sandbox runs finish as they start; stopping one is AWS's error for a finished run.
        match self.automation_run(execution_id) {
            Some(_) => Err(CloudError::InvalidInput(format!(
                "InvalidAutomationStatusUpdateException: execution {execution_id} has already finished"
            ))),
            None => Err(CloudError::NotFound(format!(
                "AutomationExecutionNotFoundException: no execution {execution_id}"
            ))),
        }
    }
}
