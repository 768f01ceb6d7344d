//! Controls fixed by an SSM Automation document, one row each in
//! `automation_controls.yaml`: the document, how each parameter comes from the
//! finding, the permissions the document needs, the control's AWS Config rule and
//! en/ja texts. Most documents are AWS-owned; for controls AWS ships none for, the
//! row names one of the project's own (`documents/`), which the kernel creates in
//! the account before running it. A plan's [`RunAutomation`] is always built from its row; a model
//! only picks the row (by the finding's control), never a document or a value.
//! Controls a typed family covers keep that family: its steps can be undone.
//! Precheck reads the resource's AWS Config item (drift: its state id changed);
//! verify runs the control's Config rule again and needs COMPLIANT.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    Action, Applied, AutomationSteps, CatalogError, FamilyPlan, PlanRejection, PolicyCitation, Precheck, Step,
    Watch, check_fields, malformed, py_value, shell_quote,
};
use crate::catalog::family::{About, Family, PlanRequest, ToolSpec};
use crate::cloud::sandbox::OrgState;
use crate::cloud::sandbox::controls::{ControlDef, Evaluation};
use crate::cloud::ssm::AutomationStart;
use crate::cloud::{Cloud, CloudError, Target};
use crate::finding::{ControlId, Finding, Resource};
use crate::settings::Lang;

/// The table, as shipped.
const TABLE_YAML: &str = include_str!("automation_controls.yaml");

/// The project's own documents, by the base name a row gives.
const OWN_DOCUMENTS: &[(&str, &str)] = &[
    ("Runbook-BlockSSMDocumentPublicSharing", include_str!("documents/Runbook-BlockSSMDocumentPublicSharing.yaml")),
    ("Runbook-DeactivateUnrotatedAccessKeys", include_str!("documents/Runbook-DeactivateUnrotatedAccessKeys.yaml")),
    ("Runbook-EnableCloudTrailCloudWatchLogs", include_str!("documents/Runbook-EnableCloudTrailCloudWatchLogs.yaml")),
    ("Runbook-EnableConfigRecording", include_str!("documents/Runbook-EnableConfigRecording.yaml")),
    ("Runbook-EnableECRImageScanning", include_str!("documents/Runbook-EnableECRImageScanning.yaml")),
    ("Runbook-EnableVPCFlowLogs", include_str!("documents/Runbook-EnableVPCFlowLogs.yaml")),
    ("Runbook-EncryptSQSQueue", include_str!("documents/Runbook-EncryptSQSQueue.yaml")),
    ("Runbook-RemoveLambdaPublicAccess", include_str!("documents/Runbook-RemoveLambdaPublicAccess.yaml")),
];

/// A project document as it is created in an account: its name carries a hash of
/// its content, so a changed document is created anew rather than overwriting
/// the one there, and a same-named document with other content is refused.
#[derive(Debug, Clone, Copy)]
pub struct OwnDocument {
    pub base: &'static str,
    pub content: &'static str,
}

impl OwnDocument {
    pub fn named(base: &str) -> Option<OwnDocument> {
        OWN_DOCUMENTS
            .iter()
            .find(|(name, _)| *name == base)
            .map(|&(base, content)| OwnDocument { base, content })
    }

    /// The deployed name (`Runbook-X-<hash>`) back to its document.
    pub fn deployed(name: &str) -> Option<OwnDocument> {
        let (base, _) = name.rsplit_once('-')?;
        OwnDocument::named(base).filter(|d| d.name() == name)
    }

    pub fn name(&self) -> String {
        let hash = crate::cloud::sandbox::controls::fnv1a(0xcbf2_9ce4_8422_2325, self.content);
        format!("{}-{hash:016x}", self.base)
    }
}

/// What shows that the document worked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Verify {
    /// The control's AWS Config rule, run again, says COMPLIANT.
    #[default]
    Rule,
    /// A Config recorder is recording (Config.1: Config cannot evaluate itself).
    Recorder,
}

/// How one document parameter gets its value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParameterSource {
    /// resource_id | resource_arn | account_id | region | operator
    #[serde(default)]
    from: Option<String>,
    /// A path under the resource's `Details`, e.g. `AwsRdsDbInstance.DbiResourceId`.
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    fixed: Option<serde_yaml_ng::Value>,
}

/// One row of the table.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub control: String,
    pub title: String,
    pub severity: String,
    pub description: String,
    pub standards: Vec<String>,
    pub document: String,
    /// The ASFF type of the resource the document acts on.
    pub resource_type: String,
    #[serde(default)]
    parameters: BTreeMap<String, ParameterSource>,
    pub permissions: Vec<String>,
    pub config_rule: String,
    #[serde(default)]
    verify: Verify,
    #[serde(default)]
    pub caveat: String,
    pub summary_en: String,
    pub summary_ja: String,
    pub source: String,
}

struct Table {
    rows: Vec<Row>,
    /// Controls in the file that a typed family covers instead.
    superseded: Vec<String>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    // The file is part of the build and a unit test parses it, so a broken row
    // cannot ship; if it did, the family would offer nothing rather than crash.
    let all: Vec<Row> = serde_yaml_ng::from_str(TABLE_YAML).unwrap_or_default();
    let typed: Vec<&str> = super::CATALOG
        .iter()
        // Not through `family.name()`: this family's name is behind this very table.
        .filter(|e| !e.actions.contains(&"RunAutomation"))
        .flat_map(|e| e.controls())
        .collect();
    let (superseded, rows): (Vec<Row>, Vec<Row>) = all
        .into_iter()
        .partition(|r| typed.iter().any(|c| c.eq_ignore_ascii_case(&r.control)));
    Table {
        rows,
        superseded: superseded.into_iter().map(|r| r.control).collect(),
    }
});

static STANDARDS: LazyLock<Vec<Vec<&'static str>>> = LazyLock::new(|| {
    TABLE
        .rows
        .iter()
        .map(|r| r.standards.iter().map(String::as_str).collect())
        .collect()
});

static DEFS: LazyLock<Vec<ControlDef>> = LazyLock::new(|| {
    TABLE
        .rows
        .iter()
        .zip(STANDARDS.iter())
        .map(|(r, standards)| ControlDef {
            id: r.control.as_str(),
            title: r.title.as_str(),
            description: r.description.as_str(),
            severity: r.severity.parse().unwrap_or(crate::severity::Severity::Medium),
            standards: standards.as_slice(),
            config_rule: r.config_rule.as_str(),
        })
        .collect()
});

static DEF_REFS: LazyLock<Vec<&'static ControlDef>> = LazyLock::new(|| DEFS.iter().collect());

const ABOUT_NAME: &str = "aws_automation";

static ABOUT: LazyLock<About> = LazyLock::new(|| About {
    name: ABOUT_NAME,
    controls: DEF_REFS.as_slice(),
    title_en: "Fixed by a Systems Manager Automation runbook (AWS-owned, or the kernel's own)",
    title_ja: "Systems Manager Automation ランブック（AWS 所有、またはカーネル同梱）で修正",
});

/// The table's rows that this family plans (typed families' controls left out).
pub fn rows() -> &'static [Row] {
    &TABLE.rows
}

/// Controls listed in the table that a typed family covers instead.
pub fn superseded() -> &'static [String] {
    &TABLE.superseded
}

fn row_for(control: &str) -> Option<&'static Row> {
    TABLE
        .rows
        .iter()
        .find(|r| r.control.eq_ignore_ascii_case(control))
}

/// AWS Config's resource type for an ASFF type; None for account-wide settings.
fn config_type(asff: &str) -> Option<&'static str> {
    Some(match asff {
        "AwsEc2Instance" => "AWS::EC2::Instance",
        "AwsEc2SecurityGroup" => "AWS::EC2::SecurityGroup",
        "AwsEc2Subnet" => "AWS::EC2::Subnet",
        "AwsEc2Eip" => "AWS::EC2::EIP",
        "AwsEc2Vpc" => "AWS::EC2::VPC",
        "AwsS3Bucket" => "AWS::S3::Bucket",
        "AwsCloudTrailTrail" => "AWS::CloudTrail::Trail",
        "AwsKmsKey" => "AWS::KMS::Key",
        "AwsSnsTopic" => "AWS::SNS::Topic",
        "AwsSqsQueue" => "AWS::SQS::Queue",
        "AwsIamUser" => "AWS::IAM::User",
        "AwsRdsDbInstance" => "AWS::RDS::DBInstance",
        "AwsRdsDbCluster" => "AWS::RDS::DBCluster",
        "AwsRedshiftCluster" => "AWS::Redshift::Cluster",
        "AwsElbv2LoadBalancer" => "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "AwsElbLoadBalancer" => "AWS::ElasticLoadBalancing::LoadBalancer",
        "AwsDynamoDbTable" => "AWS::DynamoDB::Table",
        "AwsSecretsManagerSecret" => "AWS::SecretsManager::Secret",
        "AwsCloudFrontDistribution" => "AWS::CloudFront::Distribution",
        "AwsAutoScalingAutoScalingGroup" => "AWS::AutoScaling::AutoScalingGroup",
        "AwsApiGatewayStage" => "AWS::ApiGateway::Stage",
        "AwsWafv2WebAcl" => "AWS::WAFv2::WebACL",
        "AwsLambdaFunction" => "AWS::Lambda::Function",
        "AwsEcrRepository" => "AWS::ECR::Repository",
        "AwsSsmDocument" => "AWS::SSM::Document",
        _ => return None,
    })
}

/// The last part of an ARN (`…:instance/i-1` -> `i-1`, `arn:aws:s3:::b` -> `b`).
fn short_id(id: &str) -> &str {
    id.rsplit_once('/')
        .map(|(_, s)| s)
        .or_else(|| id.rsplit_once(':').map(|(_, s)| s))
        .unwrap_or(id)
}

fn details_value(resource: &Resource, path: &str) -> Option<String> {
    let pointer = format!("/{}", path.replace('.', "/"));
    match resource.details().pointer(&pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The resource AWS Config records for the finding's resource: its type and the
/// id Config keys it by (a name, a resource id, or the ARN, per type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigResource {
    pub resource_type: String,
    pub resource_id: String,
}

fn config_resource(row: &Row, resource: &Resource, finding: &Finding) -> ConfigResource {
    let Some(kind) = config_type(&row.resource_type) else {
        return ConfigResource {
            resource_type: "AWS::::Account".to_string(),
            resource_id: finding.account.to_string(),
        };
    };
    let id = match kind {
        "AWS::IAM::User" => details_value(resource, "AwsIamUser.UserId"),
        "AWS::RDS::DBInstance" => details_value(resource, "AwsRdsDbInstance.DbiResourceId"),
        "AWS::RDS::DBCluster" => details_value(resource, "AwsRdsDbCluster.DbClusterResourceId"),
        "AWS::ECR::Repository" => details_value(resource, "AwsEcrRepository.RepositoryName"),
        // Config keys registry-recorded types by their primary identifier: a queue's URL.
        "AWS::SQS::Queue" => {
            let at = Target::of(finding);
            Some(format!(
                "https://sqs.{}.{}/{}/{}",
                at.region,
                at.dns_suffix(),
                at.account,
                short_id(&resource.id)
            ))
        }
        "AWS::ElasticLoadBalancingV2::LoadBalancer"
        | "AWS::SNS::Topic"
        | "AWS::SecretsManager::Secret"
        | "AWS::AutoScaling::AutoScalingGroup" => Some(resource.id.clone()),
        _ => None,
    }
    .unwrap_or_else(|| short_id(&resource.id).to_string());
    ConfigResource {
        resource_type: kind.to_string(),
        resource_id: id,
    }
}

fn whose(own: bool, lang: Lang) -> &'static str {
    match (own, lang) {
        (false, Lang::En) => "the AWS-owned Automation runbook",
        (true, Lang::En) => "runbook-kernel's own Automation runbook",
        (false, Lang::Ja) => "AWS 所有の Automation ランブック",
        (true, Lang::Ja) => "runbook-kernel 同梱の Automation ランブック",
    }
}

impl Row {
    fn whose(&self, lang: Lang) -> &'static str {
        whose(OwnDocument::named(&self.document).is_some(), lang)
    }

    /// How the plan shows the document worked, as a sentence.
    fn verification(&self, lang: Lang, resource: &ConfigResource) -> String {
        match (self.verify, lang) {
            (Verify::Rule, Lang::En) => format!(
                "the AWS Config rule {} is run again and must report COMPLIANT for {} {}",
                self.config_rule, resource.resource_type, resource.resource_id
            ),
            (Verify::Rule, Lang::Ja) => format!(
                "AWS Config ルール {} を再評価し、{} {} が COMPLIANT であることを確認します",
                self.config_rule, resource.resource_type, resource.resource_id
            ),
            (Verify::Recorder, Lang::En) => {
                "AWS Config's recorder must then be recording (Config cannot evaluate itself)".to_string()
            }
            (Verify::Recorder, Lang::Ja) => {
                "AWS Config のレコーダーが記録中であることを確認します（Config は自身を評価できないため）".to_string()
            }
        }
    }
}

/// Runs the Automation document of the finding's control on its
/// resource, in its account and region, as the member role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAutomation {
    pub control: String,
    pub document: String,
    /// Every document parameter, `AutomationAssumeRole` included.
    pub parameters: BTreeMap<String, String>,
    pub resource: ConfigResource,
    /// The control's AWS Config rule (Security Hub's copy is `securityhub-<rule>-<suffix>`).
    pub config_rule: String,
    /// Config's `configurationStateId` when the plan was made; None when Config had no item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// Why a row's parameter has no value.
fn missing_operator_value(row: &Row, name: &str) -> CatalogError {
    CatalogError::MissingPolicyValue {
        parameter: name.to_string(),
        reason: format!(
            "{} runs {}, whose parameter {name} only your organisation can choose; state it in the front matter of a policy file in the knowledge base (%config kb=FOLDER), as controls: {{{}: {{{name}: <value>}}}} (notebooks/policies/en/logging.md is an example)",
            row.control, row.document, row.control
        ),
    }
}

/// The finding's resource the row acts on.
fn row_resource<'a>(row: &Row, finding: &'a Finding) -> Result<&'a Resource, CatalogError> {
    finding
        .resources
        .iter()
        .find(|r| r.resource_type == row.resource_type)
        .ok_or(CatalogError::MissingResource {
            kind: resource_kind(&row.resource_type),
        })
}

fn resource_kind(asff: &str) -> &'static str {
    match asff {
        "AwsAccount" => "account",
        "AwsS3Bucket" => "S3 bucket",
        "AwsEc2Instance" => "EC2 instance",
        "AwsEc2SecurityGroup" => "security group",
        "AwsEc2Subnet" => "subnet",
        "AwsKmsKey" => "KMS key",
        "AwsCloudTrailTrail" => "CloudTrail trail",
        "AwsRdsDbInstance" => "RDS DB instance",
        "AwsIamUser" => "IAM user",
        "AwsEc2Vpc" => "VPC",
        "AwsSqsQueue" => "SQS queue",
        "AwsLambdaFunction" => "Lambda function",
        "AwsEcrRepository" => "ECR repository",
        "AwsSsmDocument" => "Systems Manager document",
        _ => "matching",
    }
}

/// The row's action for the finding: every parameter derived, none invented.
fn action_for(
    row: &Row,
    finding: &Finding,
    req_policy: Option<&super::PolicyValues>,
    assume_role: Option<&str>,
) -> Result<(RunAutomation, Vec<PolicyCitation>), CatalogError> {
    let resource = row_resource(row, finding)?;
    let mut parameters = BTreeMap::new();
    let mut citations = Vec::new();
    for (name, source) in &row.parameters {
        let value = if let Some(fixed) = &source.fixed {
            match fixed {
                serde_yaml_ng::Value::String(s) => s.clone(),
                serde_yaml_ng::Value::Bool(b) => b.to_string(),
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                other => {
                    return Err(malformed(format!(
                        "{}: parameter {name} has an unusable fixed value {other:?}",
                        row.control
                    )));
                }
            }
        } else if let Some(path) = &source.details {
            details_value(resource, path).ok_or_else(|| {
                malformed(format!(
                    "{} needs {name} from the finding's resource details ({path}), which the finding does not carry",
                    row.document
                ))
            })?
        } else {
            match source.from.as_deref() {
                Some("resource_id") => short_id(&resource.id).to_string(),
                Some("resource_arn") => {
                    if !resource.id.starts_with("arn:") {
                        return Err(malformed(format!(
                            "{} needs the resource's ARN for {name}, and the finding names it as {}",
                            row.document, resource.id
                        )));
                    }
                    resource.id.clone()
                }
                Some("account_id") => finding.account.to_string(),
                Some("region") => finding.region.clone(),
                Some("operator") => {
                    let Some(policy) = req_policy else {
                        return Err(missing_operator_value(row, name));
                    };
                    let Some(v) = policy.get(&row.control, name) else {
                        return Err(missing_operator_value(row, name));
                    };
                    let text = match &v.value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if let Some(c) = policy.citation(&row.control, name, None) {
                        citations.push(c);
                    }
                    text
                }
                other => {
                    return Err(malformed(format!(
                        "{}: parameter {name} has an unknown source {other:?}",
                        row.control
                    )));
                }
            }
        };
        parameters.insert(name.clone(), value);
    }
    if let Some(role) = assume_role {
        parameters.insert("AutomationAssumeRole".to_string(), role.to_string());
    }
    Ok((
        RunAutomation {
            control: row.control.clone(),
            document: OwnDocument::named(&row.document).map_or_else(|| row.document.clone(), |d| d.name()),
            parameters,
            resource: config_resource(row, resource, finding),
            config_rule: row.config_rule.clone(),
            baseline: None,
        },
        citations,
    ))
}

/// How often a run or a rule evaluation is polled: quickly at first, then every 3 s.
fn next_poll(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(200), Duration::from_secs(3))
}

/// Longest wait for an Automation run or a Config evaluation before giving up on
/// watching it (it continues in AWS).
const MAX_WAIT: Duration = Duration::from_secs(60 * 60);

impl RunAutomation {
    fn start(&self) -> AutomationStart {
        AutomationStart {
            document: self.document.clone(),
            parameters: self
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), vec![v.clone()]))
                .collect(),
            target_locations: Vec::new(),
        }
    }

    fn row(&self) -> Option<&'static Row> {
        row_for(&self.control)
    }

    /// The project's document this runs, None for an AWS-owned one.
    fn own_document(&self) -> Option<OwnDocument> {
        OwnDocument::deployed(&self.document)
    }

    fn whose(&self, lang: Lang) -> &'static str {
        whose(self.own_document().is_some(), lang)
    }

    async fn read_item(&self, cloud: &dyn Cloud, at: &Target) -> Result<Value, CloudError> {
        if self.resource.resource_type == "AWS::::Account" {
            return Ok(json!({"account": at.account.to_string(), "note": "an account-wide setting: AWS Config records no configuration item for it"}));
        }
        let item = cloud
            .configuration_item(at, &self.resource.resource_type, &self.resource.resource_id)
            .await?;
        Ok(serde_json::to_value(item).unwrap_or(Value::Null))
    }
}

#[async_trait]
impl Step for RunAutomation {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        let current = self.read_item(cloud, at).await?;
        let state_id = current.get("state_id").and_then(Value::as_str);
        let drift = match (&self.baseline, state_id) {
            (Some(was), Some(now)) if was != now => Some(format!(
                "AWS Config recorded a change to {} {} since the plan was made (configurationStateId {was} -> {now}); make a new plan",
                self.resource.resource_type, self.resource.resource_id
            )),
            (Some(_), None) => Some(format!(
                "AWS Config no longer has a configuration item for {} {} (deleted, or no longer recorded); make a new plan",
                self.resource.resource_type, self.resource.resource_id
            )),
            _ => None,
        };
        Ok(Precheck {
            current,
            expected: json!({"document": self.document, "parameters": self.parameters}),
            already_done: false,
            drift,
        })
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        let never = || false;
        let mut quiet = |_: &str| {};
        self.apply_watched(
            cloud,
            at,
            &mut Watch {
                cancelled: &never,
                progress: &mut quiet,
            },
        )
        .await
    }

    async fn apply_watched(
        &self,
        cloud: &dyn Cloud,
        at: &Target,
        watch: &mut Watch<'_>,
    ) -> Result<Applied, CloudError> {
        if let Some(own) = self.own_document() {
            // Created on first use in each account and region; the same name with
            // other content there is refused rather than run.
            if cloud
                .create_automation_document(at, &self.document, own.content)
                .await?
            {
                (watch.progress)(&format!("created the document {} in {at}", self.document));
            }
        }
        let id = cloud.start_automation(at, &self.start()).await?;
        (watch.progress)(&format!("{}: started execution {id}", self.document));
        let started = tokio::time::Instant::now();
        let mut pause = Duration::ZERO;
        loop {
            let run = cloud.automation(at, &id).await?;
            if run.is_finished() {
                let mut applied = if run.succeeded() {
                    Applied::changed(format!(
                        "{} execution {id} succeeded ({} step(s))",
                        self.document,
                        run.steps.len()
                    ))
                } else {
                    return Err(CloudError::Other(format!(
                        "{} execution {id} ended {}: {}",
                        self.document,
                        run.status,
                        run.failure_text()
                    )));
                };
                applied.automation_execution = Some(id);
                return Ok(applied);
            }
            if (watch.cancelled)() {
                cloud.stop_automation(at, &id).await?;
                return Err(CloudError::Other(format!(
                    "interrupted: execution {id} of {} was stopped (StopAutomationExecution); the steps it had run are not undone",
                    self.document
                )));
            }
            if started.elapsed() > MAX_WAIT {
                return Err(CloudError::Other(format!(
                    "execution {id} of {} is still {} after {} minutes; it continues in AWS (aws ssm get-automation-execution --automation-execution-id {id})",
                    self.document,
                    run.status,
                    MAX_WAIT.as_secs() / 60
                )));
            }
            (watch.progress)(&format!(
                "{} {id}: {} · {} s",
                self.document,
                run.progress_line(),
                started.elapsed().as_secs()
            ));
            pause = next_poll(pause);
            tokio::time::sleep(pause).await;
        }
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        let never = || false;
        let mut quiet = |_: &str| {};
        self.verify_watched(
            cloud,
            at,
            &mut Watch {
                cancelled: &never,
                progress: &mut quiet,
            },
        )
        .await
    }

    async fn verify_watched(
        &self,
        cloud: &dyn Cloud,
        at: &Target,
        watch: &mut Watch<'_>,
    ) -> Result<bool, CloudError> {
        if self.row().is_some_and(|r| r.verify == Verify::Recorder) {
            (watch.progress)("verifying: reading the AWS Config recorder's status");
            return cloud.recording(at).await;
        }
        let Some(rule) = cloud.find_config_rule(at, &self.config_rule).await? else {
            return Err(CloudError::Other(format!(
                "verification is manual: {} has no AWS Config rule {} (or securityhub-{}-…) to run again; check {} {} by hand",
                at, self.config_rule, self.config_rule, self.resource.resource_type, self.resource.resource_id
            )));
        };
        // Waits for the rule's evaluation times to move past those before the
        // request, so neither clock skew nor a stale result counts.
        let before = cloud.rule_evaluation(at, &rule).await?;
        cloud.start_rule_evaluation(at, &rule).await?;
        let started = tokio::time::Instant::now();
        let mut pause = Duration::ZERO;
        loop {
            let status = cloud.rule_evaluation(at, &rule).await?;
            if status.last_success_ms > before.last_success_ms {
                break;
            }
            if status.last_failure_ms > before.last_failure_ms {
                return Err(CloudError::Other(format!(
                    "AWS Config could not evaluate {rule}: {}",
                    status.error.unwrap_or_else(|| "no reason given".to_string())
                )));
            }
            if (watch.cancelled)() || started.elapsed() > MAX_WAIT {
                return Err(CloudError::Other(format!(
                    "stopped waiting for AWS Config to evaluate {rule}; the change was made, verify it by hand"
                )));
            }
            (watch.progress)(&format!(
                "verifying: AWS Config is evaluating {rule} · {} s",
                started.elapsed().as_secs()
            ));
            pause = next_poll(pause);
            tokio::time::sleep(pause).await;
        }
        let verdict = cloud
            .resource_compliance(
                at,
                &rule,
                &self.resource.resource_type,
                &self.resource.resource_id,
            )
            .await?;
        Ok(verdict.as_deref() == Some("COMPLIANT"))
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        None
    }

    fn no_inverse(&self) -> Option<&'static str> {
        Some(
            "an Automation document from the catalog's table has no automatic inverse; the configuration before the change is kept in the audit trail",
        )
    }

    fn permissions(&self) -> Vec<&'static str> {
        let mut p = vec![
            "ssm:StartAutomationExecution",
            "ssm:GetAutomationExecution",
            "ssm:StopAutomationExecution",
            "iam:PassRole",
            "config:BatchGetResourceConfig",
            "config:DescribeConfigRules",
            "config:StartConfigRulesEvaluation",
            "config:DescribeConfigRuleEvaluationStatus",
            "config:GetComplianceDetailsByResource",
        ];
        if self.own_document().is_some() {
            p.extend(["ssm:CreateDocument", "ssm:GetDocument"]);
        }
        // The document's own calls run as AutomationAssumeRole, the member role.
        if let Some(row) = self.row() {
            p.extend(row.permissions.iter().map(String::as_str));
        }
        p
    }

    fn resources(&self, _at: &Target) -> Vec<(&'static str, String)> {
        // StartAutomationExecution is authorised against the automation
        // definition, the document and the new execution at once, so the session
        // leaves it on "*"; the shipped policies allow only AWS-owned and Runbook-* documents.
        self.parameters
            .get("AutomationAssumeRole")
            .map(|role| vec![("iam:PassRole", role.clone())])
            .unwrap_or_default()
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        let start = self.start();
        Some(AutomationSteps {
            apply: Vec::new(),
            verify: None,
            run_document: Some((start.document, start.parameters)),
        })
    }

    fn cli(&self, at: &Target) -> String {
        let parameters: Map<String, Value> = self
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), json!([v])))
            .collect();
        format!(
            "aws ssm start-automation-execution --region {} --document-name {} --parameters {}\n\
             aws config start-config-rules-evaluation --region {} --config-rule-names \"$(aws config describe-config-rules --region {} --query {} --output text)\"",
            shell_quote(&at.region),
            shell_quote(&self.document),
            shell_quote(&Value::Object(parameters).to_string()),
            shell_quote(&at.region),
            shell_quote(&at.region),
            shell_quote(&format!(
                "ConfigRules[?starts_with(ConfigRuleName, 'securityhub-{}-')].ConfigRuleName | [0]",
                self.config_rule
            )),
        )
    }

    fn python(&self, at: &Target) -> String {
        let parameters: Map<String, Value> = self
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), json!([v])))
            .collect();
        format!(
            "import time\nimport boto3\n\nssm = boto3.client(\"ssm\", region_name={region})\n\
             run = ssm.start_automation_execution(\n    DocumentName={doc},\n    Parameters={params},\n)\n\
             execution_id = run[\"AutomationExecutionId\"]\nwhile True:\n    \
             status = ssm.get_automation_execution(AutomationExecutionId=execution_id)[\"AutomationExecution\"][\"AutomationExecutionStatus\"]\n    \
             if status not in (\"Pending\", \"InProgress\", \"Waiting\"):\n        break\n    time.sleep(3)\nprint(execution_id, status)\n",
            region = py_value(&json!(at.region)),
            doc = py_value(&json!(self.document)),
            params = py_value(&Value::Object(parameters)),
        )
    }

    fn describe(&self, lang: Lang) -> String {
        let summary = self.row().map(|r| match lang {
            Lang::En => r.summary_en.as_str(),
            Lang::Ja => r.summary_ja.as_str(),
        });
        match lang {
            Lang::En => format!(
                "Run {} {} on {}{}",
                self.whose(Lang::En),
                self.document,
                self.resource.resource_id,
                summary.map_or_else(String::new, |s| format!(": {s}"))
            ),
            Lang::Ja => format!(
                "{} {} を {} に実行します{}",
                self.whose(Lang::Ja),
                self.document,
                self.resource.resource_id,
                summary.map_or_else(String::new, |s| format!("：{s}"))
            ),
        }
    }
}

/// The role Automation runs as: the member role in the finding's account. The
/// AWSConfigRemediation documents require one, so it is passed in the caller's
/// own account too (the member role must be deployed there as well).
fn assume_role(cloud: &dyn Cloud, at: &Target) -> String {
    cloud.member_role().arn(at)
}

fn runs_as(action: &RunAutomation, lang: Lang) -> String {
    match (action.parameters.get("AutomationAssumeRole"), lang) {
        (Some(role), _) => role.clone(),
        (None, Lang::En) => "the caller (no AutomationAssumeRole)".to_string(),
        (None, Lang::Ja) => "呼び出し元（AutomationAssumeRole なし）".to_string(),
    }
}

/// The family over the table.
pub struct AwsAutomation;

#[async_trait]
impl Family for AwsAutomation {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            step: "RunAutomation",
            description: "Run the Systems Manager Automation runbook that the catalog's table assigns to the finding's control. Name the control only: the catalog chooses the document and derives every parameter from the finding.",
            properties: json!({
                "control": {"type": "string", "description": "The finding's own control id, e.g. S3.5."}
            }),
            required: &["control"],
        }]
    }

    async fn plan(&self, req: &PlanRequest<'_>) -> Result<FamilyPlan, CatalogError> {
        let row = row_for(req.control).ok_or_else(|| CatalogError::NotCovered {
            control: req.control.to_string(),
            covered: super::covered_controls().join(", "),
        })?;
        let role = assume_role(req.cloud, &req.at);
        let (mut action, citations) = action_for(row, req.finding, Some(req.policy), Some(&role))?;
        let item = action.read_item(req.cloud, &req.at).await?;
        action.baseline = item
            .get("state_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let caveat = if row.caveat.is_empty() {
            String::new()
        } else {
            format!(" Caveat: {}", row.caveat)
        };
        let rationale = match req.lang {
            Lang::En => format!(
                "{}: {} The plan runs {} {} in {} as {}; afterwards {}. It has no automatic rollback; the configuration before the change is kept in the audit trail.{caveat}",
                row.control,
                row.summary_en,
                row.whose(Lang::En),
                action.document,
                req.at,
                runs_as(&action, Lang::En),
                row.verification(Lang::En, &action.resource),
            ),
            Lang::Ja => format!(
                "{}: {} {} {} を {} で {} として実行し、{}。自動ロールバックはありません。変更前の設定は監査証跡に残ります。{caveat}",
                row.control,
                row.summary_ja,
                row.whose(Lang::Ja),
                action.document,
                req.at,
                runs_as(&action, Lang::Ja),
                row.verification(Lang::Ja, &action.resource),
            ),
        };
        Ok(FamilyPlan {
            actions: vec![action.into()],
            rationale,
            citations,
        })
    }

    async fn step_from_model(
        &self,
        step: &str,
        input: &Map<String, Value>,
        req: &PlanRequest<'_>,
    ) -> Result<(Action, Vec<PolicyCitation>), CatalogError> {
        check_fields(input, step, &["control"])?;
        let named = input.get("control").and_then(Value::as_str).unwrap_or_default();
        if !named.eq_ignore_ascii_case(req.control) {
            return Err(CatalogError::Rejected(PlanRejection::ActionNotAllowed {
                action: format!("RunAutomation for {named}"),
                control: req.control.to_string(),
                accepted: format!("RunAutomation for {}", req.control),
            }));
        }
        let plan = self.plan(req).await?;
        let action = plan
            .actions
            .into_iter()
            .next()
            .ok_or_else(|| malformed("no action"))?;
        Ok((action, plan.citations))
    }

    fn validate(
        &self,
        action: &Action,
        control: &ControlId,
        finding: &Finding,
    ) -> Result<(), PlanRejection> {
        let Action::RunAutomation(a) = action else {
            return Ok(());
        };
        let mismatch = |what: String| PlanRejection::Malformed(format!(
            "RunAutomation does not match the catalog's row for {control}: {what}"
        ));
        let Some(row) = row_for(control.as_str()) else {
            return Err(mismatch("no row".to_string()));
        };
        if !a.control.eq_ignore_ascii_case(control.as_str()) {
            return Err(mismatch(format!("it names control {}", a.control)));
        }
        let role = a.parameters.get("AutomationAssumeRole");
        let at = Target::of(finding);
        let role_ok = role.is_none_or(|r| {
            r.starts_with(&format!("arn:{}:iam::{}:role/", at.partition(), finding.account))
        });
        if !role_ok {
            return Err(mismatch(format!(
                "AutomationAssumeRole {role:?} is not a role in the finding's account {}",
                finding.account
            )));
        }
        let role = role.map(String::as_str);
        let (expected, _) = action_for(row, finding, None, role).or_else(|e| match e {
            // Values only the organisation states cannot be re-derived here: take the plan's.
            CatalogError::MissingPolicyValue { .. } => {
                let mut lenient = row.clone();
                for (name, source) in &mut lenient.parameters {
                    if source.from.as_deref() == Some("operator") {
                        source.from = None;
                        source.fixed = Some(serde_yaml_ng::Value::String(
                            a.parameters.get(name).cloned().unwrap_or_default(),
                        ));
                    }
                }
                action_for(&lenient, finding, None, role)
            }
            other => Err(other),
        })
        .map_err(|e| mismatch(e.to_string()))?;
        if expected.document != a.document {
            return Err(mismatch(format!(
                "document {} instead of {}",
                a.document, expected.document
            )));
        }
        if expected.parameters != a.parameters {
            return Err(mismatch(format!(
                "parameters {:?} instead of {:?}",
                a.parameters, expected.parameters
            )));
        }
        if expected.resource != a.resource || expected.config_rule != a.config_rule {
            return Err(mismatch("its resource or Config rule differs".to_string()));
        }
        Ok(())
    }

    fn explain(&self, finding: &Finding, control: &str, lang: Lang) -> (String, String, Vec<String>) {
        let Some(row) = row_for(control) else {
            return (finding.title.clone(), finding.description.clone(), Vec::new());
        };
        let resource = finding
            .resources
            .iter()
            .find(|r| r.resource_type == row.resource_type)
            .or_else(|| finding.primary_resource());
        let shown = resource.map_or_else(String::new, |r| r.id.clone());
        let checked = resource.map_or_else(
            || ConfigResource {
                resource_type: "AWS::::Account".to_string(),
                resource_id: finding.account.to_string(),
            },
            |r| config_resource(row, r, finding),
        );
        let why = format!("{} {}", row.description, row.caveat).trim().to_string();
        match lang {
            Lang::En => (
                format!("{}: {} ({shown}, account {}, {})", row.control, row.title, finding.account, finding.region),
                why,
                vec![
                    format!("%remediate plans {} {}: {}", row.whose(lang), row.document, row.summary_en),
                    format!("After it runs, {}.", row.verification(lang, &checked)),
                    format!("Reference: {}", row.source),
                ],
            ),
            Lang::Ja => (
                format!("{}: {}（{shown}、アカウント {}、{}）", row.control, row.title, finding.account, finding.region),
                why,
                vec![
                    format!("%remediate で {} {} を計画します：{}", row.whose(lang), row.document, row.summary_ja),
                    format!("実行後、{}。", row.verification(lang, &checked)),
                    format!("リファレンス: {}", row.source),
                ],
            ),
        }
    }

    fn policy_parameters(&self, control: &str) -> Option<Vec<&'static str>> {
        let row = row_for(control)?;
        let names: Vec<&'static str> = row
            .parameters
            .iter()
            .filter(|(_, s)| s.from.as_deref() == Some("operator"))
            .map(|(n, _)| n.as_str())
            .collect();
        (!names.is_empty()).then_some(names)
    }

    fn examples(&self) -> Vec<Action> {
        vec![
            RunAutomation {
                control: "S3.5".to_string(),
                document: "AWSConfigRemediation-RestrictBucketSSLRequestsOnly".to_string(),
                parameters: BTreeMap::from([
                    ("BucketName".to_string(), "logs".to_string()),
                    (
                        "AutomationAssumeRole".to_string(),
                        "arn:aws:iam::111122223333:role/SecurityRunbookMember".to_string(),
                    ),
                ]),
                resource: ConfigResource {
                    resource_type: "AWS::S3::Bucket".to_string(),
                    resource_id: "logs".to_string(),
                },
                config_rule: "s3-bucket-ssl-requests-only".to_string(),
                baseline: None,
            }
            .into(),
        ]
    }

    fn evaluate(&self, _state: &OrgState) -> Vec<Evaluation> {
        // The sandbox's resources for these controls (trails) are evaluated with
        // the controls it has always modelled (`controls::evaluate`).
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_every_row_is_complete() {
        let all: Vec<Row> = serde_yaml_ng::from_str(TABLE_YAML).expect("automation_controls.yaml");
        assert!(all.len() >= 50, "{} rows", all.len());
        for r in &all {
            assert!(r.severity.parse::<crate::severity::Severity>().is_ok(), "{}: {}", r.control, r.severity);
            assert!(!r.title.is_empty() && !r.summary_en.is_empty() && !r.summary_ja.is_empty(), "{}", r.control);
            let aws_owned = r.document.starts_with("AWS-") || r.document.starts_with("AWSConfigRemediation-");
            assert!(aws_owned || OwnDocument::named(&r.document).is_some(), "{}", r.document);
            for (name, s) in &r.parameters {
                let kinds = [s.from.is_some(), s.details.is_some(), s.fixed.is_some()];
                assert_eq!(kinds.iter().filter(|k| **k).count(), 1, "{} {name}", r.control);
            }
        }
        assert_eq!(rows().len() + superseded().len(), all.len());
    }

    #[test]
    fn config_keys_each_resource_as_it_records_it() {
        let finding = |kind: &str, id: &str, details: Value| {
            Finding::from_asff(json!({
                "Id": "f", "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/securityhub",
                "AwsAccountId": "111122223333", "Region": "us-east-1", "Severity": {"Label": "HIGH"},
                "Title": "t", "Compliance": {"Status": "FAILED"},
                "Resources": [{"Type": kind, "Id": id, "Details": details}]
            }))
            .expect("finding")
        };
        let keyed = |control: &str, f: &Finding| {
            let row = row_for(control).expect("row");
            config_resource(row, row_resource(row, f).expect("resource"), f)
        };
        let sqs = finding("AwsSqsQueue", "arn:aws:sqs:us-east-1:111122223333:orders", json!({}));
        assert_eq!(
            keyed("SQS.1", &sqs).resource_id,
            "https://sqs.us-east-1.amazonaws.com/111122223333/orders"
        );
        let ecr = finding(
            "AwsEcrRepository",
            "arn:aws:ecr:us-east-1:111122223333:repository/team/api",
            json!({"AwsEcrRepository": {"RepositoryName": "team/api"}}),
        );
        assert_eq!(keyed("ECR.1", &ecr).resource_id, "team/api");
        let vpc = finding("AwsEc2Vpc", "arn:aws:ec2:us-east-1:111122223333:vpc/vpc-0abc", json!({}));
        assert_eq!(keyed("EC2.6", &vpc).resource_id, "vpc-0abc");
    }

    #[test]
    fn the_catalog_covers_fifty_controls() {
        let covered = crate::catalog::covered_controls();
        assert!(covered.len() >= 50, "{}", covered.len());
        let mut unique = covered.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), covered.len(), "a control is covered twice");
    }
}
