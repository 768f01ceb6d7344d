//! EC2.7: EBS encryption by default, per region.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    About, Action, ApiCall, Applied, AutomationSteps, PropertyCheck, CatalogError, Family, FamilyPlan, PlanRejection, PlanRequest, PolicyCitation,
    Precheck, Step, ToolSpec, check_fields, python_call, require_account_resource,
};
use crate::cloud::sandbox::controls::{Evaluation, FSBP, CIS_14, NIST, on_off, per_region};
use crate::cloud::sandbox::OrgState;
use crate::cloud::{Cloud, CloudError, Target};
use crate::finding::{ControlId, Finding};
use crate::settings::Lang;

crate::control!(
    EC2_7,
    "EC2.7",
    Medium,
    "ec2-ebs-encryption-by-default",
    [FSBP, CIS_14, NIST],
    "EBS default encryption should be enabled",
    "This control checks whether account-level encryption is enabled by default for Amazon Elastic Block Store (Amazon EBS) volumes. The control fails if account-level encryption isn't enabled for EBS volumes in the Region."
);

const ABOUT: About = About {
    name: "ebs_default_encryption",
    controls: &[&EC2_7],
    title_en: "EBS encryption by default off",
    title_ja: "EBS のデフォルト暗号化が無効",
};

/// EC2.7.
pub struct EbsDefaultEncryption;

#[async_trait]
impl Family for EbsDefaultEncryption {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            step: "EnableEbsEncryptionByDefault",
            description: "EC2.7: turn on EBS encryption by default in the finding's region.",
            properties: json!({}),
            required: &[],
        }]
    }

    async fn plan(&self, req: &PlanRequest<'_>) -> Result<FamilyPlan, CatalogError> {
        plan(req.cloud, &req.at, req.lang).await
    }

    async fn step_from_model(
        &self,
        step: &str,
        input: &Map<String, Value>,
        _req: &PlanRequest<'_>,
    ) -> Result<(Action, Vec<PolicyCitation>), CatalogError> {
        check_fields(input, step, &[])?;
        Ok((EnableEbsEncryptionByDefault {}.into(), Vec::new()))
    }

    fn validate(
        &self,
        _action: &Action,
        _control: &ControlId,
        finding: &Finding,
    ) -> Result<(), PlanRejection> {
        require_account_resource(finding).map(|_| ())
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
        vec![
            EnableEbsEncryptionByDefault {}.into(),
            DisableEbsEncryptionByDefault {}.into(),
        ]
    }

    fn evaluate(&self, state: &OrgState) -> Vec<Evaluation> {
        per_region(state, &EC2_7, |_, reg| {
            let on = reg.ebs_encryption_by_default;
            (on, format!("EBS encryption by default is {}", on_off(on)))
        })
    }
}

/// Turn on EBS encryption by default in the region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnableEbsEncryptionByDefault {}

/// Inverse only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisableEbsEncryptionByDefault {}

fn ebs_steps(enabled: bool) -> AutomationSteps {
    let api = if enabled {
        "EnableEbsEncryptionByDefault"
    } else {
        "DisableEbsEncryptionByDefault"
    };
    AutomationSteps {
        apply: vec![ApiCall::new("ec2", api, json!({}))],
        verify: Some(PropertyCheck {
            call: ApiCall::new("ec2", "GetEbsEncryptionByDefault", json!({})),
            selector: "$.EbsEncryptionByDefault".to_string(),
            desired: vec![enabled.to_string()],
        }),
        run_document: None,
    }
}

async fn precheck(want: bool, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
    let live = cloud.ebs_encryption_by_default(at).await?;
    Ok(Precheck {
        current: json!({"ebs_encryption_by_default": live}),
        expected: json!({"ebs_encryption_by_default": want}),
        already_done: live == want,
        drift: None,
    })
}

#[async_trait]
impl Step for EnableEbsEncryptionByDefault {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        precheck(true, cloud, at).await
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        cloud.set_ebs_encryption_by_default(at, true).await?;
        Ok(Applied::changed("enabled EBS encryption by default"))
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        cloud.ebs_encryption_by_default(at).await
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        Some(DisableEbsEncryptionByDefault {}.into())
    }

    fn permissions(&self) -> Vec<&'static str> {
        vec![
            "ec2:GetEbsEncryptionByDefault",
            "ec2:EnableEbsEncryptionByDefault",
        ]
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        Some(ebs_steps(true))
    }

    fn cli(&self, at: &Target) -> String {
        format!(
            "aws ec2 enable-ebs-encryption-by-default --region {}",
            super::shell_quote(&at.region)
        )
    }

    fn python(&self, at: &Target) -> String {
        python_call(at, "ec2", "enable_ebs_encryption_by_default", &[])
    }

    fn describe(&self, lang: Lang) -> String {
        match lang {
            Lang::En => "Turn on EBS encryption by default in this region",
            Lang::Ja => "このリージョンで EBS ボリュームのデフォルト暗号化を有効にします。",
        }
        .to_string()
    }
}

#[async_trait]
impl Step for DisableEbsEncryptionByDefault {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        precheck(false, cloud, at).await
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        cloud.set_ebs_encryption_by_default(at, false).await?;
        Ok(Applied::changed("disabled EBS encryption by default"))
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(!cloud.ebs_encryption_by_default(at).await?)
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        Some(EnableEbsEncryptionByDefault {}.into())
    }

    fn permissions(&self) -> Vec<&'static str> {
        vec![
            "ec2:GetEbsEncryptionByDefault",
            "ec2:DisableEbsEncryptionByDefault",
        ]
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        Some(ebs_steps(false))
    }

    fn cli(&self, at: &Target) -> String {
        format!(
            "aws ec2 disable-ebs-encryption-by-default --region {}",
            super::shell_quote(&at.region)
        )
    }

    fn python(&self, at: &Target) -> String {
        python_call(at, "ec2", "disable_ebs_encryption_by_default", &[])
    }

    fn describe(&self, lang: Lang) -> String {
        match lang {
            Lang::En => "Turn off EBS encryption by default in this region",
            Lang::Ja => "このリージョンで EBS ボリュームのデフォルト暗号化を無効にします。",
        }
        .to_string()
    }
}

pub(crate) async fn plan(
    cloud: &dyn Cloud,
    at: &Target,
    lang: Lang,
) -> Result<FamilyPlan, CatalogError> {
    if cloud.ebs_encryption_by_default(at).await? {
        return Err(CatalogError::NothingToDo(format!(
            "EBS encryption by default is already on in {}",
            at.region
        )));
    }
    let rationale = match lang {
        Lang::En => format!(
            "EC2.7: EBS encryption by default is off in {} for account {}. The plan turns it on, so every new volume and snapshot copy there is encrypted with the account's default EBS key. Existing volumes are not changed, and running instances are not affected. Rollback turns it off again.",
            at.region, at.account
        ),
        Lang::Ja => format!(
            "EC2.7: アカウント {} のリージョン {} で EBS のデフォルト暗号化が無効です。有効にすると、このリージョンで新しく作成するボリュームとスナップショットのコピーは、アカウントのデフォルトの EBS キーで暗号化されます。既存のボリュームや稼働中のインスタンスには影響しません。ロールバックでは再び無効にします。",
            at.account, at.region
        ),
    };
    Ok(FamilyPlan {
        actions: vec![EnableEbsEncryptionByDefault {}.into()],
        rationale,
        citations: Vec::new(),
    })
}

pub(crate) fn explain(finding: &Finding, lang: Lang) -> (String, String, Vec<String>) {
    match lang {
        Lang::En => (
            format!(
                "EBS encryption by default is off in account {}, region {}: new volumes can be created unencrypted.",
                finding.account, finding.region
            ),
            "Unencrypted volumes and their snapshots leave data readable by anyone who gets a copy, for example through a snapshot shared by mistake. Encryption by default makes protection automatic instead of relying on every launch template being right, and many standards require encryption at rest.".to_string(),
            vec![
                "Run %remediate to turn on encryption by default in this region (it affects only new volumes).".to_string(),
                "Find existing unencrypted volumes and encrypt them by copying a snapshot with encryption and replacing the volume.".to_string(),
                "Turn the setting on in every region you use.".to_string(),
            ],
        ),
        Lang::Ja => (
            format!(
                "アカウント {}、リージョン {} で EBS のデフォルト暗号化が無効になっており、暗号化されていないボリュームが作成される可能性があります。",
                finding.account, finding.region
            ),
            "暗号化されていないボリュームやスナップショットは、誤って共有されたスナップショットなどからコピーを入手した人に中身を読まれてしまいます。デフォルト暗号化を有効にすれば、起動テンプレートの設定に頼らず自動的に保護されます。多くの基準で保存時の暗号化が求められています。".to_string(),
            vec![
                "%remediate を実行すると、このリージョンでデフォルト暗号化を有効にするプランを作成します（対象は新しいボリュームのみです）。".to_string(),
                "既存の暗号化されていないボリュームを探し、暗号化を指定してスナップショットをコピーし、ボリュームを置き換えてください。".to_string(),
                "利用しているすべてのリージョンでこの設定を有効にしてください。".to_string(),
            ],
        ),
    }
}
