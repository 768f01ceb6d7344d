//! S3.1: account-level S3 Block Public Access, all four settings on.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    About, Action, ApiCall, Applied, AutomationSteps, PropertyCheck, CatalogError, Family, FamilyPlan, PlanRejection, PlanRequest, PolicyCitation,
    Precheck, Step, ToolSpec, check_fields, py_str, py_value, python_call,
    require_account_resource, shell_quote, to_json,
};
use crate::cloud::sandbox::OrgState;
use crate::cloud::sandbox::controls::{
    CIS_14, Evaluation, FSBP, NIST, PCI, per_region,
};
use crate::cloud::{Cloud, CloudError, Target};
use crate::finding::{ControlId, Finding};
use crate::resources::PublicAccessBlock;
use crate::settings::Lang;

crate::control!(
    S3_1,
    "S3.1",
    Medium,
    "s3-account-level-public-access-blocks-periodic",
    [FSBP, CIS_14, NIST, PCI],
    "S3 general purpose buckets should have block public access settings enabled",
    "This control checks whether the Amazon S3 block public access settings (BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets) are all enabled at the account level. The control fails if one or more of them is set to false."
);

const ABOUT: About = About {
    name: "s3_account_public_access",
    controls: &[&S3_1],
    title_en: "Account-level S3 Block Public Access not fully on",
    title_ja: "アカウントレベルの S3 ブロックパブリックアクセスが不完全",
};

/// S3.1.
pub struct AccountPublicAccess;

#[async_trait]
impl Family for AccountPublicAccess {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            step: "BlockS3PublicAccess",
            description: "S3.1: turn on all four account-level S3 Block Public Access settings.",
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
        req: &PlanRequest<'_>,
    ) -> Result<(Action, Vec<PolicyCitation>), CatalogError> {
        check_fields(input, step, &[])?;
        require_account_resource(req.finding)?;
        let previous = req.cloud.public_access_block(&req.at).await?;
        let action = BlockS3PublicAccess {
            block: PublicAccessBlock::ALL_ON,
            previous,
        };
        Ok((action.into(), Vec::new()))
    }

    fn validate(
        &self,
        action: &Action,
        _control: &ControlId,
        finding: &Finding,
    ) -> Result<(), PlanRejection> {
        require_account_resource(finding)?;
        match action {
            Action::BlockS3PublicAccess(a) if !a.block.all_on() => Err(PlanRejection::OutOfRange {
                parameter: "PublicAccessBlockConfiguration".to_string(),
                value: to_json(&a.block).to_string(),
                accepted: "all four settings true (S3.1 requires every one)".to_string(),
            }),
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
        vec![
            BlockS3PublicAccess {
                block: PublicAccessBlock::ALL_ON,
                previous: Some(PublicAccessBlock::default()),
            }
            .into(),
            DeleteS3PublicAccessBlock {}.into(),
        ]
    }

    fn evaluate(&self, state: &OrgState) -> Vec<Evaluation> {
        per_region(state, &S3_1, |acct, _| {
            let pab = &acct.s3_public_access_block;
            (
                pab.all_on(),
                format!(
                    "BlockPublicAcls {}, IgnorePublicAcls {}, BlockPublicPolicy {}, RestrictPublicBuckets {}",
                    pab.block_public_acls,
                    pab.ignore_public_acls,
                    pab.block_public_policy,
                    pab.restrict_public_buckets
                ),
            )
        })
    }
}

/// Set the account-level S3 Block Public Access configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockS3PublicAccess {
    pub block: PublicAccessBlock,
    pub previous: Option<PublicAccessBlock>,
}

/// Inverse only (there was no configuration before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteS3PublicAccessBlock {}

/// A missing public access block is the same as one with every setting off.
fn pab_or_default(p: Option<PublicAccessBlock>) -> PublicAccessBlock {
    p.unwrap_or_default()
}

fn pab_steps(at: &Target, block: &PublicAccessBlock) -> AutomationSteps {
    AutomationSteps {
        apply: vec![ApiCall::new(
            "s3control",
            "PutPublicAccessBlock",
            json!({
                "AccountId": at.account.as_str(),
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": block.block_public_acls,
                    "IgnorePublicAcls": block.ignore_public_acls,
                    "BlockPublicPolicy": block.block_public_policy,
                    "RestrictPublicBuckets": block.restrict_public_buckets,
                },
            }),
        )],
        verify: Some(PropertyCheck {
            call: ApiCall::new(
                "s3control",
                "GetPublicAccessBlock",
                json!({"AccountId": at.account.as_str()}),
            ),
            selector: "$.PublicAccessBlockConfiguration.BlockPublicPolicy".to_string(),
            desired: vec![block.block_public_policy.to_string()],
        }),
        run_document: None,
    }
}

// DeletePublicAccessBlock on the account is authorised by s3:PutAccountPublicAccessBlock.
const PERMISSIONS: [&str; 2] = [
    "s3:GetAccountPublicAccessBlock",
    "s3:PutAccountPublicAccessBlock",
];

fn pab_text(b: &PublicAccessBlock, lang: Lang) -> String {
    let v = |on: bool| match (lang, on) {
        (Lang::En, true) => "on",
        (Lang::En, false) => "off",
        (Lang::Ja, true) => "有効",
        (Lang::Ja, false) => "無効",
    };
    format!(
        "BlockPublicAcls: {}, IgnorePublicAcls: {}, BlockPublicPolicy: {}, RestrictPublicBuckets: {}",
        v(b.block_public_acls),
        v(b.ignore_public_acls),
        v(b.block_public_policy),
        v(b.restrict_public_buckets)
    )
}

#[async_trait]
impl Step for BlockS3PublicAccess {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        let live = cloud.public_access_block(at).await?;
        let already_done = pab_or_default(live) == self.block;
        let drift = (!already_done && pab_or_default(live) != pab_or_default(self.previous))
            .then(|| {
                format!(
                    "the account's S3 Block Public Access settings changed since the plan was made (planned from {}, now {})",
                    to_json(&pab_or_default(self.previous)),
                    to_json(&pab_or_default(live))
                )
            });
        Ok(Precheck {
            current: to_json(&live),
            expected: to_json(&self.block),
            already_done,
            drift,
        })
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        cloud.set_public_access_block(at, &self.block).await?;
        Ok(Applied::changed(format!(
            "set account-level S3 Block Public Access to {}",
            to_json(&self.block)
        )))
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(pab_or_default(cloud.public_access_block(at).await?) == self.block)
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        Some(match self.previous {
            Some(p) if p != PublicAccessBlock::default() => BlockS3PublicAccess {
                block: p,
                previous: Some(self.block),
            }
            .into(),
            _ => DeleteS3PublicAccessBlock {}.into(),
        })
    }

    fn permissions(&self) -> Vec<&'static str> {
        PERMISSIONS.to_vec()
    }

    fn automation(&self, at: &Target) -> Option<AutomationSteps> {
        Some(pab_steps(at, &self.block))
    }

    fn cli(&self, at: &Target) -> String {
        let block = &self.block;
        format!(
            "aws s3control put-public-access-block --region {} --account-id {} --public-access-block-configuration {}",
            shell_quote(&at.region),
            shell_quote(at.account.as_str()),
            shell_quote(&format!(
                "BlockPublicAcls={},IgnorePublicAcls={},BlockPublicPolicy={},RestrictPublicBuckets={}",
                block.block_public_acls,
                block.ignore_public_acls,
                block.block_public_policy,
                block.restrict_public_buckets
            ))
        )
    }

    fn python(&self, at: &Target) -> String {
        let block = &self.block;
        python_call(
            at,
            "s3control",
            "put_public_access_block",
            &[
                ("AccountId", py_str(at.account.as_str())),
                (
                    "PublicAccessBlockConfiguration",
                    py_value(&json!({
                        "BlockPublicAcls": block.block_public_acls,
                        "IgnorePublicAcls": block.ignore_public_acls,
                        "BlockPublicPolicy": block.block_public_policy,
                        "RestrictPublicBuckets": block.restrict_public_buckets,
                    })),
                ),
            ],
        )
    }

    fn describe(&self, lang: Lang) -> String {
        let flags = pab_text(&self.block, lang);
        match lang {
            Lang::En => format!("Set account-level S3 Block Public Access ({flags})"),
            Lang::Ja => {
                format!("アカウントレベルの S3 ブロックパブリックアクセスを設定します（{flags}）。")
            }
        }
    }
}

#[async_trait]
impl Step for DeleteS3PublicAccessBlock {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        let live = cloud.public_access_block(at).await?;
        Ok(Precheck {
            already_done: pab_or_default(live) == PublicAccessBlock::default(),
            current: to_json(&live),
            expected: Value::Null,
            drift: None,
        })
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        cloud.delete_public_access_block(at).await?;
        Ok(Applied::changed(
            "deleted the account-level S3 Block Public Access configuration",
        ))
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(pab_or_default(cloud.public_access_block(at).await?) == PublicAccessBlock::default())
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        None
    }

    fn no_inverse(&self) -> Option<&'static str> {
        Some("it only undoes BlockS3PublicAccess on an account that had no configuration")
    }

    fn permissions(&self) -> Vec<&'static str> {
        PERMISSIONS.to_vec()
    }

    fn automation(&self, at: &Target) -> Option<AutomationSteps> {
        Some(AutomationSteps {
            apply: vec![ApiCall::new(
                "s3control",
                "DeletePublicAccessBlock",
                json!({"AccountId": at.account.as_str()}),
            )],
            verify: None,
            run_document: None,
        })
    }

    fn cli(&self, at: &Target) -> String {
        format!(
            "aws s3control delete-public-access-block --region {} --account-id {}",
            shell_quote(&at.region),
            shell_quote(at.account.as_str())
        )
    }

    fn python(&self, at: &Target) -> String {
        python_call(
            at,
            "s3control",
            "delete_public_access_block",
            &[("AccountId", py_str(at.account.as_str()))],
        )
    }

    fn describe(&self, lang: Lang) -> String {
        match lang {
            Lang::En => "Delete the account-level S3 Block Public Access configuration",
            Lang::Ja => "アカウントレベルの S3 ブロックパブリックアクセスの設定を削除します。",
        }
        .to_string()
    }
}

pub(crate) async fn plan(
    cloud: &dyn Cloud,
    at: &Target,
    lang: Lang,
) -> Result<FamilyPlan, CatalogError> {
    let previous = cloud.public_access_block(at).await?;
    let current = previous.unwrap_or_default();
    if current.all_on() {
        return Err(CatalogError::NothingToDo(format!(
            "account {} already blocks public access with all four settings",
            at.account
        )));
    }
    let off: Vec<&str> = [
        ("BlockPublicAcls", current.block_public_acls),
        ("IgnorePublicAcls", current.ignore_public_acls),
        ("BlockPublicPolicy", current.block_public_policy),
        ("RestrictPublicBuckets", current.restrict_public_buckets),
    ]
    .into_iter()
    .filter(|(_, on)| !on)
    .map(|(name, _)| name)
    .collect();
    let rationale = match lang {
        Lang::En => format!(
            "S3.1: account {} has these Block Public Access settings off: {}. The plan turns all four on for the whole account, so no bucket can be made public by an ACL or a bucket policy. Buckets that are public on purpose (e.g. static websites) stop being public; serve them through CloudFront instead. Rollback restores the current settings.",
            at.account,
            off.join(", ")
        ),
        Lang::Ja => format!(
            "S3.1: アカウント {} では、ブロックパブリックアクセスの次の設定が無効です: {}。アカウント全体で 4 つの設定をすべて有効にし、ACL やバケットポリシーでバケットを公開できないようにします。意図して公開しているバケット（静的ウェブサイトなど）も公開されなくなるため、その場合は CloudFront 経由で配信してください。ロールバックでは現在の設定に戻します。",
            at.account,
            off.join(", ")
        ),
    };
    Ok(FamilyPlan {
        actions: vec![
            BlockS3PublicAccess {
                block: PublicAccessBlock::ALL_ON,
                previous,
            }
            .into(),
        ],
        rationale,
        citations: Vec::new(),
    })
}

pub(crate) fn explain(finding: &Finding, lang: Lang) -> (String, String, Vec<String>) {
    match lang {
        Lang::En => (
            format!(
                "Account-level S3 Block Public Access is not fully on in account {}: at least one of BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy and RestrictPublicBuckets is off.",
                finding.account
            ),
            "Without the account-level block, a single permissive bucket policy or ACL is enough to expose data to the whole internet. Public buckets are one of the most common causes of data leaks; the account-level setting is a guardrail for every bucket, present and future.".to_string(),
            vec![
                "First check for buckets that are public on purpose (static websites, public downloads) and move them behind CloudFront with origin access control.".to_string(),
                "Run %remediate to turn on all four settings for the account.".to_string(),
                "Keep it on with a service control policy that denies s3:PutAccountPublicAccessBlock to everyone but administrators.".to_string(),
            ],
        ),
        Lang::Ja => (
            format!(
                "アカウント {} で、アカウントレベルの S3 ブロックパブリックアクセスがすべて有効になっていません（BlockPublicAcls、IgnorePublicAcls、BlockPublicPolicy、RestrictPublicBuckets のいずれかが無効です）。",
                finding.account
            ),
            "アカウントレベルのブロックがないと、緩いバケットポリシーや ACL が一つあるだけでデータがインターネット全体に公開されます。公開バケットはデータ漏えいの代表的な原因です。アカウントレベルの設定は、既存と今後のすべてのバケットに対する安全策になります。".to_string(),
            vec![
                "まず、意図して公開しているバケット（静的ウェブサイトや公開ダウンロードなど）がないか確認し、あれば オリジンアクセスコントロール付きの CloudFront 経由に切り替えてください。".to_string(),
                "%remediate を実行すると、アカウントの 4 つの設定をすべて有効にするプランを作成します。".to_string(),
                "管理者以外の s3:PutAccountPublicAccessBlock を拒否するサービスコントロールポリシーで、設定が無効にされないようにしてください。".to_string(),
            ],
        ),
    }
}
