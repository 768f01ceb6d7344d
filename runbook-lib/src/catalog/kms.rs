//! KMS.4: automatic rotation of the customer managed key named in the finding.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    About, Action, ApiCall, Applied, AutomationSteps, PropertyCheck, CatalogError, Family, FamilyPlan, PlanRejection, PlanRequest, PolicyCitation,
    Precheck, Step, ToolSpec, arn_in_scope, check_fields, py_str, python_call, resources_text,
    shell_quote, str_field,
};
use crate::cloud::sandbox::OrgState;
use crate::cloud::sandbox::controls::{
    CIS_14, Evaluation, NIST, PCI, kms_resource, on_off,
};
use crate::cloud::{Cloud, CloudError, Target};
use crate::finding::{ControlId, Finding, Resource};
use crate::settings::Lang;

crate::control!(
    KMS_4,
    "KMS.4",
    Medium,
    "cmk-backing-key-rotation-enabled",
    [CIS_14, NIST, PCI],
    "AWS KMS key rotation should be enabled",
    "This control checks whether automatic key rotation is enabled for a symmetric encryption KMS key created by the customer. The control fails if automatic key rotation isn't enabled for the key."
);

const ABOUT: About = About {
    name: "kms_key_rotation",
    controls: &[&KMS_4],
    title_en: "KMS key rotation off",
    title_ja: "KMS キーの自動ローテーションが無効",
};

/// KMS.4.
pub struct KmsKeyRotation;

#[async_trait]
impl Family for KmsKeyRotation {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            step: "EnableKmsKeyRotation",
            description: "KMS.4: turn on automatic rotation of the KMS key named in the finding.",
            properties: json!({"key_id": {"type": "string", "minLength": 1, "maxLength": 2048}}),
            required: &["key_id"],
        }]
    }

    async fn plan(&self, req: &PlanRequest<'_>) -> Result<FamilyPlan, CatalogError> {
        plan(req.finding, req.cloud, &req.at, req.lang).await
    }

    async fn step_from_model(
        &self,
        step: &str,
        input: &Map<String, Value>,
        req: &PlanRequest<'_>,
    ) -> Result<(Action, Vec<PolicyCitation>), CatalogError> {
        check_fields(input, step, &["key_id"])?;
        let key_id = str_field(input, step, "key_id")?;
        key_in_finding(key_id, req.finding)?;
        let action = EnableKmsKeyRotation {
            key_id: key_id.to_string(),
        };
        Ok((action.into(), Vec::new()))
    }

    fn validate(
        &self,
        action: &Action,
        _control: &ControlId,
        finding: &Finding,
    ) -> Result<(), PlanRejection> {
        match action {
            Action::EnableKmsKeyRotation(a) => key_in_finding(&a.key_id, finding).map(|_| ()),
            _ => Ok(()),
        }
    }

    fn explain(
        &self,
        finding: &Finding,
        _control: &str,
        lang: Lang,
    ) -> (String, String, Vec<String>) {
        explain(finding, lang)
    }

    fn examples(&self) -> Vec<Action> {
        let key_id = "1234abcd-12ab-34cd-56ef-1234567890ab".to_string();
        vec![
            EnableKmsKeyRotation {
                key_id: key_id.clone(),
            }
            .into(),
            DisableKmsKeyRotation { key_id }.into(),
        ]
    }

    fn evaluate(&self, state: &OrgState) -> Vec<Evaluation> {
        let mut out = Vec::new();
        for acct in &state.accounts {
            for reg in &acct.regions {
                for k in reg.kms_keys.iter().filter(|k| k.rotation_applies()) {
                    out.push(Evaluation::of(
                        &KMS_4,
                        &acct.id,
                        &reg.region,
                        kms_resource(&acct.id, &reg.region, k),
                        k.rotation_enabled,
                        format!("automatic rotation is {}", on_off(k.rotation_enabled)),
                    ));
                }
            }
        }
        out
    }
}

/// Turn on automatic rotation of a customer managed key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnableKmsKeyRotation {
    pub key_id: String,
}

/// Inverse only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisableKmsKeyRotation {
    pub key_id: String,
}

async fn precheck(
    key_id: &str,
    want: bool,
    cloud: &dyn Cloud,
    at: &Target,
) -> Result<Precheck, CloudError> {
    let key = cloud.kms_key(at, key_id).await?;
    let drift = (!key.rotation_applies()).then(|| {
        format!(
            "key {} can no longer be rotated (state {}, spec {}, manager {:?})",
            key.key_id, key.key_state, key.key_spec, key.key_manager
        )
    });
    Ok(Precheck {
        current: json!({"key_id": key.key_id, "key_state": key.key_state,
            "rotation_enabled": key.rotation_enabled}),
        expected: json!({"key_id": key.key_id, "rotation_enabled": want}),
        already_done: key.rotation_enabled == want,
        drift,
    })
}

/// A key's ARN, as IAM names it in a policy (a finding may give the id or the ARN).
fn key_arn(key_id: &str, at: &Target) -> String {
    if key_id.starts_with("arn:") {
        key_id.to_string()
    } else {
        at.arn("kms", &format!("key/{key_id}"))
    }
}

#[async_trait]
impl Step for EnableKmsKeyRotation {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        precheck(&self.key_id, true, cloud, at).await
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        cloud.set_key_rotation(at, &self.key_id, true).await?;
        Ok(Applied::changed(format!(
            "enabled rotation of key {}",
            self.key_id
        )))
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(cloud.kms_key(at, &self.key_id).await?.rotation_enabled)
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        Some(
            DisableKmsKeyRotation {
                key_id: self.key_id.clone(),
            }
            .into(),
        )
    }

    fn resources(&self, at: &Target) -> Vec<(&'static str, String)> {
        let key = key_arn(&self.key_id, at);
        ["kms:DescribeKey", "kms:GetKeyRotationStatus", "kms:EnableKeyRotation"]
            .into_iter()
            .map(|a| (a, key.clone()))
            .collect()
    }

    fn permissions(&self) -> Vec<&'static str> {
        vec![
            "kms:DescribeKey",
            "kms:GetKeyRotationStatus",
            "kms:EnableKeyRotation",
        ]
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        Some(rotation_steps(&self.key_id, true))
    }

    fn cli(&self, at: &Target) -> String {
        format!(
            "aws kms enable-key-rotation --region {} --key-id {}",
            shell_quote(&at.region),
            shell_quote(&self.key_id)
        )
    }

    fn python(&self, at: &Target) -> String {
        python_call(at, "kms", "enable_key_rotation", &[("KeyId", py_str(&self.key_id))])
    }

    fn describe(&self, lang: Lang) -> String {
        let key_id = &self.key_id;
        match lang {
            Lang::En => format!("Turn on automatic rotation of KMS key {key_id}"),
            Lang::Ja => format!("KMS キー {key_id} の自動ローテーションを有効にします。"),
        }
    }
}

#[async_trait]
impl Step for DisableKmsKeyRotation {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        precheck(&self.key_id, false, cloud, at).await
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        cloud.set_key_rotation(at, &self.key_id, false).await?;
        Ok(Applied::changed(format!(
            "disabled rotation of key {}",
            self.key_id
        )))
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(!cloud.kms_key(at, &self.key_id).await?.rotation_enabled)
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        Some(
            EnableKmsKeyRotation {
                key_id: self.key_id.clone(),
            }
            .into(),
        )
    }

    fn resources(&self, at: &Target) -> Vec<(&'static str, String)> {
        let key = key_arn(&self.key_id, at);
        ["kms:DescribeKey", "kms:GetKeyRotationStatus", "kms:DisableKeyRotation"]
            .into_iter()
            .map(|a| (a, key.clone()))
            .collect()
    }

    fn permissions(&self) -> Vec<&'static str> {
        vec![
            "kms:DescribeKey",
            "kms:GetKeyRotationStatus",
            "kms:DisableKeyRotation",
        ]
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        Some(rotation_steps(&self.key_id, false))
    }

    fn cli(&self, at: &Target) -> String {
        format!(
            "aws kms disable-key-rotation --region {} --key-id {}",
            shell_quote(&at.region),
            shell_quote(&self.key_id)
        )
    }

    fn python(&self, at: &Target) -> String {
        python_call(at, "kms", "disable_key_rotation", &[("KeyId", py_str(&self.key_id))])
    }

    fn describe(&self, lang: Lang) -> String {
        let key_id = &self.key_id;
        match lang {
            Lang::En => format!("Turn off automatic rotation of KMS key {key_id}"),
            Lang::Ja => format!("KMS キー {key_id} の自動ローテーションを無効にします。"),
        }
    }
}

fn rotation_steps(key_id: &str, enabled: bool) -> AutomationSteps {
    let api = if enabled { "EnableKeyRotation" } else { "DisableKeyRotation" };
    AutomationSteps {
        apply: vec![ApiCall::new("kms", api, json!({"KeyId": key_id}))],
        verify: Some(PropertyCheck {
            call: ApiCall::new("kms", "GetKeyRotationStatus", json!({"KeyId": key_id})),
            selector: "$.KeyRotationEnabled".to_string(),
            desired: vec![enabled.to_string()],
        }),
        run_document: None,
    }
}

/// The finding's resource for this key (a key id or key ARN, in the finding's account and region).
pub fn key_in_finding<'a>(
    key_id: &str,
    finding: &'a Finding,
) -> Result<&'a Resource, PlanRejection> {
    let bare = key_id.rsplit_once(":key/").map_or(key_id, |(_, id)| id);
    let suffix = format!(":key/{bare}");
    let plausible = !bare.is_empty() && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    finding
        .resources
        .iter()
        .find(|r| {
            plausible
                && arn_in_scope(&r.id, finding)
                && arn_in_scope(key_id, finding)
                && (r.id == key_id || r.id.ends_with(&suffix))
        })
        .ok_or_else(|| PlanRejection::ResourceNotInFinding {
            kind: "KMS key",
            id: key_id.to_string(),
            resources: resources_text(finding),
        })
}

/// The key id of the finding's KMS key resource.
fn finding_key_id(finding: &Finding) -> Option<String> {
    finding.resources.iter().find_map(|r| {
        if r.resource_type != "AwsKmsKey" && !r.id.contains(":key/") {
            return None;
        }
        r.id.rsplit_once(":key/")
            .map(|(_, id)| id.to_string())
            .or_else(|| {
                r.details()
                    .pointer("/AwsKmsKey/KeyId")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
    })
}

pub(crate) async fn plan(
    finding: &Finding,
    cloud: &dyn Cloud,
    at: &Target,
    lang: Lang,
) -> Result<FamilyPlan, CatalogError> {
    let key_id =
        finding_key_id(finding).ok_or(CatalogError::MissingResource { kind: "KMS key" })?;
    let key = cloud.kms_key(at, &key_id).await?;
    if !key.rotation_applies() {
        return Err(CatalogError::NothingToDo(format!(
            "key {key_id} is not an enabled customer managed symmetric key (state {}, spec {}), so automatic rotation does not apply",
            key.key_state, key.key_spec
        )));
    }
    if key.rotation_enabled {
        return Err(CatalogError::NothingToDo(format!(
            "automatic rotation is already on for key {key_id}"
        )));
    }
    let rationale = match lang {
        Lang::En => format!(
            "KMS.4: automatic rotation is off for customer managed key {key_id} (\"{}\"). The plan turns it on: KMS then creates new key material every year and keeps the old material, so data encrypted before stays readable and nothing that uses the key has to change. Rollback turns rotation off again.",
            key.description
        ),
        Lang::Ja => format!(
            "KMS.4: カスタマー管理キー {key_id}（「{}」）の自動ローテーションが無効です。有効にすると、KMS が毎年新しいキーマテリアルを作成し、古いマテリアルも保持するため、以前に暗号化したデータは引き続き復号でき、キーを使うアプリケーションの変更も不要です。ロールバックでは再び無効にします。",
            key.description
        ),
    };
    Ok(FamilyPlan {
        actions: vec![EnableKmsKeyRotation { key_id }.into()],
        rationale,
        citations: Vec::new(),
    })
}

pub(crate) fn explain(finding: &Finding, lang: Lang) -> (String, String, Vec<String>) {
    let key = finding_key_id(finding).unwrap_or_else(|| "(unknown)".to_string());
    match lang {
        Lang::En => (
            format!(
                "Automatic rotation is off for customer managed KMS key {key} in account {}, region {}.",
                finding.account, finding.region
            ),
            "Rotating key material limits how much data one piece of key material protects and how long a leaked copy stays useful; CIS, PCI DSS and NIST all expect it. With automatic rotation KMS does this yearly without breaking anything that uses the key.".to_string(),
            vec![
                "Run %remediate to turn on automatic rotation for this key.".to_string(),
                "Review keys that are no longer used and schedule their deletion instead of rotating them.".to_string(),
                "Turn on rotation when creating keys (e.g. EnableKeyRotation in your infrastructure code).".to_string(),
            ],
        ),
        Lang::Ja => (
            format!(
                "アカウント {}、リージョン {} のカスタマー管理 KMS キー {key} で自動ローテーションが無効です。",
                finding.account, finding.region
            ),
            "キーマテリアルをローテーションすると、一つのキーマテリアルで保護されるデータの量と、漏えいしたキーが悪用できる期間を抑えられます。CIS、PCI DSS、NIST のいずれもこれを求めています。自動ローテーションなら、キーを使う仕組みを壊すことなく KMS が毎年実施します。".to_string(),
            vec![
                "%remediate を実行すると、このキーの自動ローテーションを有効にするプランを作成します。".to_string(),
                "使われていないキーはローテーションではなく削除のスケジュールを検討してください。".to_string(),
                "キーの作成時にローテーションを有効にしてください（インフラのコードで EnableKeyRotation を指定するなど）。".to_string(),
            ],
        ),
    }
}
