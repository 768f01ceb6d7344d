//! EC2.7: EBS encryption by default, per region.

use super::{CatalogError, FamilyPlan};
use crate::cloud::{Cloud, Target};
use crate::finding::Finding;
use crate::plan::Action;
use crate::settings::Lang;

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
        actions: vec![Action::EnableEbsEncryptionByDefault],
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
