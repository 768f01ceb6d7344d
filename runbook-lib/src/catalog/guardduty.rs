//! GuardDuty.1: GuardDuty enabled in the finding's region. The fix creates a
//! detector, or enables the existing disabled one.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    About, Action, ApiCall, Applied, AutomationSteps, PropertyCheck, CatalogError, Family, FamilyPlan, PlanRejection, PlanRequest, PolicyCitation,
    Precheck, Step, ToolSpec, check_fields, py_str, python_call, require_account_resource,
    shell_quote, to_json,
};
use crate::cloud::sandbox::OrgState;
use crate::cloud::sandbox::controls::{Evaluation, FSBP, NIST, PCI, per_region};
use crate::cloud::{Cloud, CloudError, Target};
use crate::finding::{ControlId, Finding};
use crate::resources::DetectorStatus;
use crate::settings::Lang;

crate::control!(
    GUARDDUTY_1,
    "GuardDuty.1",
    High,
    "guardduty-enabled-centralized",
    [FSBP, NIST, PCI],
    "GuardDuty should be enabled",
    "This control checks whether Amazon GuardDuty is enabled in your account and Region. The control fails if GuardDuty has no detector in the Region or its detector is disabled."
);

const ABOUT: About = About {
    name: "guardduty",
    controls: &[&GUARDDUTY_1],
    title_en: "GuardDuty not enabled",
    title_ja: "GuardDuty が有効になっていない",
};

/// GuardDuty.1.
pub struct GuardDutyEnabled;

#[async_trait]
impl Family for GuardDutyEnabled {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            step: "EnableGuardDuty",
            description: "GuardDuty.1: create a GuardDuty detector in the finding's region, or enable the existing disabled one.",
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
        let existing = req.cloud.guardduty_detector(&req.at).await?;
        let action = EnableGuardDuty {
            existing_detector: existing.map(|d| d.detector_id),
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
            Action::EnableGuardDuty(EnableGuardDuty {
                existing_detector: Some(id),
            }) => validate_detector_id(id),
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
        let detector_id = "12abc34d567e8fa901bc2d34e56789f0".to_string();
        vec![
            EnableGuardDuty {
                existing_detector: None,
            }
            .into(),
            EnableGuardDuty {
                existing_detector: Some(detector_id.clone()),
            }
            .into(),
            DisableGuardDuty {
                detector_id: detector_id.clone(),
            }
            .into(),
            DeleteGuardDutyDetector { detector_id }.into(),
        ]
    }

    fn evaluate(&self, state: &OrgState) -> Vec<Evaluation> {
        per_region(state, &GUARDDUTY_1, |_, reg| match &reg.guardduty {
            None => (false, "no GuardDuty detector in this Region".to_string()),
            Some(d) if d.status == DetectorStatus::Disabled => (
                false,
                format!("GuardDuty detector {} is disabled", d.detector_id),
            ),
            Some(d) => (
                true,
                format!("GuardDuty detector {} is enabled", d.detector_id),
            ),
        })
    }
}

/// Create a detector (None) or enable the existing, disabled one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnableGuardDuty {
    pub existing_detector: Option<String>,
}

/// Inverse only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisableGuardDuty {
    pub detector_id: String,
}

/// Inverse only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteGuardDutyDetector {
    pub detector_id: String,
}

/// A detector's ARN, or every detector of the target's region when the id is
/// not known yet (a detector apply creates).
fn detector_arn(at: &Target, detector_id: Option<&str>) -> String {
    at.arn("guardduty", &format!("detector/{}", detector_id.unwrap_or("*")))
}

#[async_trait]
impl Step for EnableGuardDuty {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        let existing_detector = &self.existing_detector;
        let live = cloud.guardduty_detector(at).await?;
        let enabled = live
            .as_ref()
            .is_some_and(|d| d.status == DetectorStatus::Enabled);
        let drift = match (existing_detector, &live) {
            (_, Some(_)) if enabled => None,
            (None, Some(d)) => Some(format!(
                "a disabled detector {} now exists in {}; the plan was to create one",
                d.detector_id, at.region
            )),
            (Some(x), None) => Some(format!("detector {x} no longer exists")),
            (Some(x), Some(d)) if *x != d.detector_id => Some(format!(
                "the region's detector is now {}, not {x}",
                d.detector_id
            )),
            _ => None,
        };
        let id = live
            .as_ref()
            .map(|d| d.detector_id.clone())
            .or_else(|| existing_detector.clone());
        Ok(Precheck {
            current: to_json(&live),
            expected: json!({"detector_id": id.unwrap_or_else(|| "(new)".to_string()),
                "status": "ENABLED"}),
            already_done: enabled,
            drift,
        })
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        match cloud.guardduty_detector(at).await? {
            None => {
                let id = cloud.create_detector(at).await?;
                Ok(Applied {
                    created_detector: Some(id.clone()),
                    ..Applied::changed(format!("created detector {id}"))
                })
            }
            Some(d) => {
                cloud.set_detector_enabled(at, &d.detector_id, true).await?;
                Ok(Applied {
                    enabled_detector: Some(d.detector_id.clone()),
                    ..Applied::changed(format!("enabled detector {}", d.detector_id))
                })
            }
        }
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(cloud
            .guardduty_detector(at)
            .await?
            .is_some_and(|d| d.status == DetectorStatus::Enabled))
    }

    fn inverse(&self, applied: Option<&Applied>) -> Option<Action> {
        match applied {
            Some(a) => {
                if let Some(id) = &a.created_detector {
                    Some(
                        DeleteGuardDutyDetector {
                            detector_id: id.clone(),
                        }
                        .into(),
                    )
                } else {
                    a.enabled_detector.as_ref().map(|id| {
                        DisableGuardDuty {
                            detector_id: id.clone(),
                        }
                        .into()
                    })
                }
            }
            None => self.existing_detector.as_ref().map(|id| {
                DisableGuardDuty {
                    detector_id: id.clone(),
                }
                .into()
            }),
        }
    }

    fn resources(&self, at: &Target) -> Vec<(&'static str, String)> {
        let detector = detector_arn(at, self.existing_detector.as_deref());
        vec![
            ("guardduty:GetDetector", detector.clone()),
            ("guardduty:UpdateDetector", detector),
        ]
    }

    /// A created detector's id is only known after apply; deleting it is the undo.
    fn rollback_grants(&self, at: &Target) -> Vec<(&'static str, String)> {
        match &self.existing_detector {
            Some(_) => Vec::new(),
            None => vec![("guardduty:DeleteDetector", detector_arn(at, None))],
        }
    }

    fn permissions(&self) -> Vec<&'static str> {
        let mut p = vec!["guardduty:ListDetectors", "guardduty:GetDetector"];
        if self.existing_detector.is_none() {
            // The first detector creates GuardDuty's service-linked role.
            p.extend(["guardduty:CreateDetector", "iam:CreateServiceLinkedRole"]);
        }
        p.push("guardduty:UpdateDetector");
        p
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        Some(match &self.existing_detector {
            None => AutomationSteps {
                apply: vec![ApiCall::new("guardduty", "CreateDetector", json!({"Enable": true}))],
                verify: None,
                run_document: None,
            },
            Some(id) => AutomationSteps {
                apply: vec![ApiCall::new(
                    "guardduty",
                    "UpdateDetector",
                    json!({"DetectorId": id, "Enable": true}),
                )],
                verify: Some(PropertyCheck {
                    call: ApiCall::new("guardduty", "GetDetector", json!({"DetectorId": id})),
                    selector: "$.Status".to_string(),
                    desired: vec!["ENABLED".to_string()],
                }),
                run_document: None,
            },
        })
    }

    fn cli(&self, at: &Target) -> String {
        let r = shell_quote(&at.region);
        match &self.existing_detector {
            None => format!("aws guardduty create-detector --region {r} --enable"),
            Some(id) => format!(
                "aws guardduty update-detector --region {r} --detector-id {} --enable",
                shell_quote(id)
            ),
        }
    }

    fn python(&self, at: &Target) -> String {
        match &self.existing_detector {
            None => python_call(at, "guardduty", "create_detector", &[("Enable", "True".into())]),
            Some(id) => python_call(
                at,
                "guardduty",
                "update_detector",
                &[("DetectorId", py_str(id)), ("Enable", "True".into())],
            ),
        }
    }

    fn describe(&self, lang: Lang) -> String {
        match (&self.existing_detector, lang) {
            (None, Lang::En) => "Create an enabled GuardDuty detector in this region".to_string(),
            (None, Lang::Ja) => {
                "このリージョンに GuardDuty のディテクターを作成し、有効にします。".to_string()
            }
            (Some(id), Lang::En) => format!("Enable the existing, disabled GuardDuty detector {id}"),
            (Some(id), Lang::Ja) => {
                format!("無効になっている既存の GuardDuty ディテクター {id} を有効にします。")
            }
        }
    }
}

/// Precheck of disabling or deleting `detector_id`.
async fn precheck_removal(
    detector_id: &str,
    delete: bool,
    cloud: &dyn Cloud,
    at: &Target,
) -> Result<Precheck, CloudError> {
    let live = cloud.guardduty_detector(at).await?;
    let (already_done, drift) = match &live {
        None if delete => (true, None),
        None => (
            false,
            Some(format!("detector {detector_id} no longer exists")),
        ),
        Some(d) if d.detector_id != detector_id => (
            false,
            Some(format!(
                "the region's detector is now {}, not {detector_id}",
                d.detector_id
            )),
        ),
        Some(d) => (!delete && d.status == DetectorStatus::Disabled, None),
    };
    let expected = if delete {
        Value::Null
    } else {
        json!({"detector_id": detector_id, "status": "DISABLED"})
    };
    Ok(Precheck {
        current: to_json(&live),
        expected,
        already_done,
        drift,
    })
}

#[async_trait]
impl Step for DisableGuardDuty {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        precheck_removal(&self.detector_id, false, cloud, at).await
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        cloud
            .set_detector_enabled(at, &self.detector_id, false)
            .await?;
        Ok(Applied::changed(format!(
            "disabled detector {}",
            self.detector_id
        )))
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(cloud.guardduty_detector(at).await?.is_some_and(|d| {
            d.detector_id == self.detector_id && d.status == DetectorStatus::Disabled
        }))
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        Some(
            EnableGuardDuty {
                existing_detector: Some(self.detector_id.clone()),
            }
            .into(),
        )
    }

    fn resources(&self, at: &Target) -> Vec<(&'static str, String)> {
        let detector = detector_arn(at, Some(&self.detector_id));
        vec![
            ("guardduty:GetDetector", detector.clone()),
            ("guardduty:UpdateDetector", detector),
        ]
    }

    fn permissions(&self) -> Vec<&'static str> {
        vec![
            "guardduty:ListDetectors",
            "guardduty:GetDetector",
            "guardduty:UpdateDetector",
        ]
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        Some(AutomationSteps {
            apply: vec![ApiCall::new(
                "guardduty",
                "UpdateDetector",
                json!({"DetectorId": self.detector_id, "Enable": false}),
            )],
            verify: None,
            run_document: None,
        })
    }

    fn cli(&self, at: &Target) -> String {
        format!(
            "aws guardduty update-detector --region {} --detector-id {} --no-enable",
            shell_quote(&at.region),
            shell_quote(&self.detector_id)
        )
    }

    fn python(&self, at: &Target) -> String {
        python_call(
            at,
            "guardduty",
            "update_detector",
            &[
                ("DetectorId", py_str(&self.detector_id)),
                ("Enable", "False".into()),
            ],
        )
    }

    fn describe(&self, lang: Lang) -> String {
        let detector_id = &self.detector_id;
        match lang {
            Lang::En => format!("Disable GuardDuty detector {detector_id}"),
            Lang::Ja => format!("GuardDuty ディテクター {detector_id} を無効にします。"),
        }
    }
}

#[async_trait]
impl Step for DeleteGuardDutyDetector {
    async fn precheck(&self, cloud: &dyn Cloud, at: &Target) -> Result<Precheck, CloudError> {
        precheck_removal(&self.detector_id, true, cloud, at).await
    }

    async fn apply(&self, cloud: &dyn Cloud, at: &Target) -> Result<Applied, CloudError> {
        cloud.delete_detector(at, &self.detector_id).await?;
        Ok(Applied::changed(format!(
            "deleted detector {}",
            self.detector_id
        )))
    }

    async fn verify(&self, cloud: &dyn Cloud, at: &Target) -> Result<bool, CloudError> {
        Ok(cloud
            .guardduty_detector(at)
            .await?
            .is_none_or(|d| d.detector_id != self.detector_id))
    }

    fn inverse(&self, _applied: Option<&Applied>) -> Option<Action> {
        None
    }

    fn no_inverse(&self) -> Option<&'static str> {
        Some("a deleted detector cannot be restored: its findings history is gone")
    }

    fn resources(&self, at: &Target) -> Vec<(&'static str, String)> {
        let detector = detector_arn(at, Some(&self.detector_id));
        vec![
            ("guardduty:GetDetector", detector.clone()),
            ("guardduty:DeleteDetector", detector),
        ]
    }

    fn permissions(&self) -> Vec<&'static str> {
        vec![
            "guardduty:ListDetectors",
            "guardduty:GetDetector",
            "guardduty:DeleteDetector",
        ]
    }

    fn automation(&self, _at: &Target) -> Option<AutomationSteps> {
        Some(AutomationSteps {
            apply: vec![ApiCall::new(
                "guardduty",
                "DeleteDetector",
                json!({"DetectorId": self.detector_id}),
            )],
            verify: None,
            run_document: None,
        })
    }

    fn cli(&self, at: &Target) -> String {
        format!(
            "aws guardduty delete-detector --region {} --detector-id {}",
            shell_quote(&at.region),
            shell_quote(&self.detector_id)
        )
    }

    fn python(&self, at: &Target) -> String {
        python_call(
            at,
            "guardduty",
            "delete_detector",
            &[("DetectorId", py_str(&self.detector_id))],
        )
    }

    fn describe(&self, lang: Lang) -> String {
        let detector_id = &self.detector_id;
        match lang {
            Lang::En => format!("Delete GuardDuty detector {detector_id}"),
            Lang::Ja => format!("GuardDuty ディテクター {detector_id} を削除します。"),
        }
    }
}

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
        actions: vec![
            EnableGuardDuty {
                existing_detector: existing,
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
