//! KMS.4: automatic rotation of the customer managed key named in the finding.

use serde_json::Value;

use super::{CatalogError, FamilyPlan, arn_in_scope, resources_text};
use crate::cloud::{Cloud, Target};
use crate::finding::{Finding, Resource};
use crate::plan::{Action, PlanRejection};
use crate::settings::Lang;

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
            .map(|(_, id)| id)
            .or_else(|| {
                r.details
                    .pointer("/AwsKmsKey/KeyId")
                    .and_then(Value::as_str)
            })
            .map(str::to_string)
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
        actions: vec![Action::EnableKmsKeyRotation { key_id }],
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
