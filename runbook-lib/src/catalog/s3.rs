//! S3.1: account-level S3 Block Public Access, all four settings on.

use super::{CatalogError, FamilyPlan};
use crate::cloud::{Cloud, Target};
use crate::finding::Finding;
use crate::plan::Action;
use crate::resources::PublicAccessBlock;
use crate::settings::Lang;

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
        actions: vec![Action::BlockS3PublicAccess {
            block: PublicAccessBlock::ALL_ON,
            previous,
        }],
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
