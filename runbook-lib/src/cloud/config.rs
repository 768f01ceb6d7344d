//! AWS Config: a resource's current configuration item (what a table plan records
//! and checks for drift before it runs) and a control's Config rule evaluated
//! again (how it is verified after). AWS and sandbox side by side.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::aws::AwsCloud;
use super::aws::support::*;
use super::sandbox::Sandbox;
use super::{CloudError, Target};

/// A resource's configuration as AWS Config recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigItem {
    pub resource_type: String,
    pub resource_id: String,
    /// Changes exactly when the recorded configuration changes.
    pub state_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<String>,
    /// `configuration` and `supplementaryConfiguration`, parsed.
    pub configuration: Value,
}

/// Where a rule's last evaluation stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleEvaluation {
    /// Epoch milliseconds of the last successful and failed evaluations.
    pub last_success_ms: Option<i64>,
    pub last_failure_ms: Option<i64>,
    pub error: Option<String>,
}

/// AWS Config.
#[async_trait]
pub trait ConfigService: Send + Sync {
    /// Config BatchGetResourceConfig for one resource; None when Config has no
    /// item for it (not recorded, or deleted).
    async fn configuration_item(
        &self,
        at: &Target,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<ConfigItem>, CloudError>;

    /// Config DescribeConfigRules: the rule named `rule`, or Security Hub's
    /// `securityhub-<rule>-<suffix>`; None when there is neither.
    async fn find_config_rule(&self, at: &Target, rule: &str)
    -> Result<Option<String>, CloudError>;

    /// Config StartConfigRulesEvaluation.
    async fn start_rule_evaluation(&self, at: &Target, rule: &str) -> Result<(), CloudError>;

    /// Config DescribeConfigRuleEvaluationStatus.
    async fn rule_evaluation(&self, at: &Target, rule: &str) -> Result<RuleEvaluation, CloudError>;

    /// Config GetComplianceDetailsByResource: the rule's verdict on the resource
    /// (COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE), None when it has none.
    async fn resource_compliance(
        &self,
        at: &Target,
        rule: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<String>, CloudError>;

    /// Config DescribeConfigurationRecorderStatus: whether a recorder is recording
    /// here (what Config.1 asks, and no Config rule can check).
    async fn recording(&self, at: &Target) -> Result<bool, CloudError>;
}

/// Whether a rule name is `rule` itself or Security Hub's `securityhub-<rule>-<suffix>`.
pub fn names_rule(name: &str, rule: &str) -> bool {
    name == rule
        || name
            .strip_prefix("securityhub-")
            .and_then(|r| r.strip_prefix(rule))
            .is_some_and(|suffix| suffix.starts_with('-'))
}

fn parse_json_text(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

#[async_trait]
impl ConfigService for AwsCloud {
    async fn configuration_item(
        &self,
        at: &Target,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<ConfigItem>, CloudError> {
        use aws_sdk_config::types::{ResourceKey, ResourceType};
        let config = self.clients(at).await?.config;
        let key = ResourceKey::builder()
            .resource_type(ResourceType::from(resource_type))
            .resource_id(resource_id)
            .build()
            .map_err(|e| CloudError::InvalidInput(format!("config resource key: {e}")))?;
        let out = config
            .batch_get_resource_config()
            .resource_keys(key)
            .send()
            .await
            .map_err(|e| fail("config:BatchGetResourceConfig", "AWS Config", at, e))?;
        Ok(out.base_configuration_items().first().map(|item| {
            let supplementary: serde_json::Map<String, Value> = item
                .supplementary_configuration()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), parse_json_text(Some(v))))
                        .collect()
                })
                .unwrap_or_default();
            ConfigItem {
                resource_type: resource_type.to_string(),
                resource_id: resource_id.to_string(),
                state_id: item
                    .configuration_state_id()
                    .unwrap_or_default()
                    .to_string(),
                captured_at: item
                    .configuration_item_capture_time()
                    .and_then(|t| t.fmt(Format::DateTime).ok()),
                configuration: json!({
                    "configuration": parse_json_text(item.configuration()),
                    "supplementaryConfiguration": supplementary,
                }),
            }
        }))
    }

    async fn find_config_rule(
        &self,
        at: &Target,
        rule: &str,
    ) -> Result<Option<String>, CloudError> {
        let config = self.clients(at).await?.config;
        let mut token: Option<String> = None;
        loop {
            let out = config
                .describe_config_rules()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| fail("config:DescribeConfigRules", "AWS Config", at, e))?;
            if let Some(found) = out
                .config_rules()
                .iter()
                .filter_map(|r| r.config_rule_name())
                .find(|n| names_rule(n, rule))
            {
                return Ok(Some(found.to_string()));
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(None),
            }
        }
    }

    async fn start_rule_evaluation(&self, at: &Target, rule: &str) -> Result<(), CloudError> {
        let config = self.clients(at).await?.config;
        config
            .start_config_rules_evaluation()
            .config_rule_names(rule)
            .send()
            .await
            .map_err(|e| fail("config:StartConfigRulesEvaluation", "AWS Config", at, e))?;
        Ok(())
    }

    async fn rule_evaluation(&self, at: &Target, rule: &str) -> Result<RuleEvaluation, CloudError> {
        let config = self.clients(at).await?.config;
        let out = config
            .describe_config_rule_evaluation_status()
            .config_rule_names(rule)
            .send()
            .await
            .map_err(|e| {
                fail(
                    "config:DescribeConfigRuleEvaluationStatus",
                    "AWS Config",
                    at,
                    e,
                )
            })?;
        let millis = |t: Option<&aws_smithy_types::DateTime>| t.and_then(|t| t.to_millis().ok());
        Ok(out
            .config_rules_evaluation_status()
            .first()
            .map(|s| RuleEvaluation {
                last_success_ms: millis(s.last_successful_evaluation_time()),
                last_failure_ms: millis(s.last_failed_evaluation_time()),
                error: s.last_error_message().map(str::to_string),
            })
            .unwrap_or_default())
    }

    async fn resource_compliance(
        &self,
        at: &Target,
        rule: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<String>, CloudError> {
        let config = self.clients(at).await?.config;
        let mut token: Option<String> = None;
        loop {
            let out = config
                .get_compliance_details_by_resource()
                .resource_type(resource_type)
                .resource_id(resource_id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| fail("config:GetComplianceDetailsByResource", "AWS Config", at, e))?;
            let verdict = out.evaluation_results().iter().find_map(|r| {
                let q = r
                    .evaluation_result_identifier()?
                    .evaluation_result_qualifier()?;
                (q.config_rule_name() == Some(rule))
                    .then(|| r.compliance_type().map(|c| c.as_str().to_string()))
                    .flatten()
            });
            if verdict.is_some() {
                return Ok(verdict);
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(None),
            }
        }
    }

    async fn recording(&self, at: &Target) -> Result<bool, CloudError> {
        let config = self.clients(at).await?.config;
        let out = config
            .describe_configuration_recorder_status()
            .send()
            .await
            .map_err(|e| {
                fail(
                    "config:DescribeConfigurationRecorderStatus",
                    "AWS Config",
                    at,
                    e,
                )
            })?;
        Ok(out
            .configuration_recorders_status()
            .iter()
            .any(|r| r.recording()))
    }
}

#[async_trait]
impl ConfigService for Sandbox {
    async fn configuration_item(
        &self,
        at: &Target,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<ConfigItem>, CloudError> {
        self.with_state(|s| {
            super::sandbox::automation::configuration_item(s, at, resource_type, resource_id)
        })
    }

    async fn find_config_rule(
        &self,
        _at: &Target,
        rule: &str,
    ) -> Result<Option<String>, CloudError> {
        Ok(super::sandbox::automation::config_rule_name(rule))
    }

    async fn start_rule_evaluation(&self, _at: &Target, _rule: &str) -> Result<(), CloudError> {
        // The sandbox evaluates from its state whenever asked.
        Ok(())
    }

    async fn rule_evaluation(
        &self,
        _at: &Target,
        _rule: &str,
    ) -> Result<RuleEvaluation, CloudError> {
        // The sandbox evaluates whenever asked: every read is a newer evaluation.
        static EVALUATIONS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let n = EVALUATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Ok(RuleEvaluation {
            last_success_ms: Some(n),
            ..RuleEvaluation::default()
        })
    }

    async fn resource_compliance(
        &self,
        at: &Target,
        rule: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<String>, CloudError> {
        Ok(self.with_state(|s| {
            super::sandbox::automation::compliance(s, at, rule, resource_type, resource_id)
        }))
    }

    async fn recording(&self, at: &Target) -> Result<bool, CloudError> {
        self.with_state(|s| super::sandbox::ops::region(s, at).map(|r| r.config_recording))
    }
}

#[cfg(test)]
mod tests {
    use super::names_rule;

    #[test]
    fn security_hub_rule_names_are_recognised() {
        assert!(names_rule(
            "securityhub-ec2-imdsv2-check-a1b2c3",
            "ec2-imdsv2-check"
        ));
        assert!(names_rule("ec2-imdsv2-check", "ec2-imdsv2-check"));
        assert!(!names_rule(
            "securityhub-ec2-imdsv2-check",
            "ec2-imdsv2-check"
        ));
        assert!(!names_rule(
            "securityhub-ec2-imdsv2-checker-1",
            "ec2-imdsv2-check"
        ));
    }
}
