//! GuardDuty.1: GuardDuty enabled in the finding's region. The fix creates a
//! detector, or enables the existing disabled one.

use super::{CatalogError, FamilyPlan};
use crate::cloud::{Cloud, Target};
use crate::finding::Finding;
use crate::plan::{Action, PlanRejection};
use crate::resources::DetectorStatus;
use crate::settings::Lang;

/// Detector ids are short lowercase alphanumeric strings (32 hex digits in practice).
pub fn validate_detector_id(id: &str) -> Result<(), PlanRejection> {
    let ok = (1..=300).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(PlanRejection::OutOfRange {
            parameter: "existing_detector".to_string(),
            value: format!("{id:?}"),
            accepted: "a GuardDuty detector id (lowercase letters and digits)".to_string(),
        })
    }
}

pub(crate) async fn plan(
    cloud: &dyn Cloud,
    at: &Target,
    lang: Lang,
) -> Result<FamilyPlan, CatalogError> {
    let live = cloud.guardduty_detector(at).await?;
    let region = &at.region;
    let (existing, rationale) = match live {
        Some(d) if d.status == DetectorStatus::Enabled => {
            return Err(CatalogError::NothingToDo(format!(
                "GuardDuty detector {} is already enabled in {region}",
                d.detector_id
            )));
        }
        Some(d) => {
            let text = match lang {
                Lang::En => format!(
                    "GuardDuty.1: detector {} exists in {region} but is disabled, so no threats are detected there. The plan enables it, keeping its settings; rollback disables it again.",
                    d.detector_id
                ),
                Lang::Ja => format!(
                    "GuardDuty.1: {region} にはディテクター {} がありますが無効になっているため、脅威が検出されていません。設定はそのままで有効にします。ロールバックでは再び無効にします。",
                    d.detector_id
                ),
            };
            (Some(d.detector_id), text)
        }
        None => {
            let text = match lang {
                Lang::En => format!(
                    "GuardDuty.1: there is no GuardDuty detector in {region}. The plan creates one, enabled (the first detector in an account also creates GuardDuty's service-linked role). GuardDuty is billed by the volume of events analysed, with a 30-day free trial. Rollback deletes the detector."
                ),
                Lang::Ja => format!(
                    "GuardDuty.1: {region} に GuardDuty のディテクターがありません。有効な状態のディテクターを作成します（アカウントで最初のディテクターの場合は、GuardDuty のサービスリンクロールも作成されます）。料金は分析したイベント量に応じて発生し、30 日間の無料トライアルがあります。ロールバックではディテクターを削除します。"
                ),
            };
            (None, text)
        }
    };
    Ok(FamilyPlan {
        actions: vec![Action::EnableGuardDuty {
            existing_detector: existing,
        }],
        rationale,
        citations: Vec::new(),
    })
}

pub(crate) fn explain(finding: &Finding, lang: Lang) -> (String, String, Vec<String>) {
    match lang {
        Lang::En => (
            format!(
                "Amazon GuardDuty is not enabled in account {}, region {}: the region has no detector, or its detector is disabled.",
                finding.account, finding.region
            ),
            "GuardDuty watches CloudTrail events, VPC Flow Logs and DNS queries for signs of compromise, such as stolen credentials used from unusual places, crypto-mining and reconnaissance. Without it, such activity in this region goes unnoticed, and attackers favour regions nobody watches.".to_string(),
            vec![
                "Run %remediate to create the detector, or enable the existing one, in this region.".to_string(),
                "Enable GuardDuty in every region, ideally for all accounts through a delegated administrator in AWS Organizations.".to_string(),
                "Send GuardDuty findings to Security Hub and to an alerting channel (EventBridge to SNS or chat) so someone acts on them.".to_string(),
            ],
        ),
        Lang::Ja => (
            format!(
                "アカウント {}、リージョン {} で Amazon GuardDuty が有効になっていません（ディテクターがないか、無効になっています）。",
                finding.account, finding.region
            ),
            "GuardDuty は CloudTrail のイベント、VPC フローログ、DNS クエリを監視し、普段と異なる場所からの認証情報の利用、暗号通貨のマイニング、偵察行為などの侵害の兆候を検出します。無効のままでは、このリージョンでの不審な活動に気付けません。攻撃者は監視されていないリージョンを好んで使います。".to_string(),
            vec![
                "%remediate を実行すると、このリージョンでディテクターを作成する（または既存のディテクターを有効にする）プランを作成します。".to_string(),
                "GuardDuty はすべてのリージョンで有効にしてください。AWS Organizations の委任管理者を使うと、全アカウントにまとめて設定できます。".to_string(),
                "GuardDuty の検出結果を Security Hub と通知先（EventBridge から SNS やチャット）に送り、対応する担当者を決めてください。".to_string(),
            ],
        ),
    }
}
