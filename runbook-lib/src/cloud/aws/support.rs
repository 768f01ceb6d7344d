//! What the AWS side of every service file (`cloud/ec2.rs`, ...) shares: error
//! mapping, SDK-to-resource conversions, the caller's account check, and STS.
//! Semantics and errors follow the sandbox (`cloud/sandbox/ops.rs`), so plans
//! behave the same on both backends.

pub(crate) use std::collections::BTreeMap;

pub(crate) use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Ipv6Range, SecurityGroupRule};
pub(crate) use aws_sdk_guardduty::types::DetectorStatus as GdStatus;
pub(crate) use aws_sdk_kms::types::KeyManagerType;
pub(crate) use aws_sdk_s3control::types::PublicAccessBlockConfiguration;
use aws_smithy_runtime_api::client::result::SdkError;
pub(crate) use aws_smithy_types::date_time::Format;
pub(crate) use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::errors::error_code;
use super::{AwsCloud, Caller, cloud_error};
use crate::cloud::{CloudError, Target};
use crate::resources::IngressRule;

/// What IAM's UpdateAccountPasswordPolicy uses when no minimum length is given.
pub(crate) const IAM_DEFAULT_MIN_PASSWORD_LENGTH: u8 = 6;
/// GuardDuty's default publishing frequency.
pub(crate) const DEFAULT_PUBLISHING_FREQUENCY: &str = "SIX_HOURS";

/// Maps an SDK error of `action` (an IAM action name such as
/// `ec2:RevokeSecurityGroupIngress`) in the target's region.
pub(crate) fn fail<E, R>(
    action: &str,
    service: &str,
    at: &Target,
    error: SdkError<E, R>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    cloud_error(action, service, &at.region, error)
}

pub(crate) fn is_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>, codes: &[&str]) -> bool {
    error_code(error).is_some_and(|c| codes.contains(&c))
}

/// A number from AWS that must fit our type, or an error naming the field.
pub(crate) fn fit<T: TryFrom<i32>>(field: &str, value: i32) -> Result<T, CloudError> {
    T::try_from(value)
        .map_err(|_| CloudError::Other(format!("AWS returned an out-of-range {field}: {value}")))
}

/// One `sgr-` rule from DescribeSecurityGroupRules / AuthorizeSecurityGroupIngress.
pub(crate) fn ingress_rule(rule: &SecurityGroupRule) -> IngressRule {
    let protocol = rule.ip_protocol().unwrap_or("-1").to_string();
    IngressRule {
        rule_id: rule
            .security_group_rule_id()
            .unwrap_or_default()
            .to_string(),
        from_port: rule.from_port().unwrap_or(-1),
        to_port: rule.to_port().unwrap_or(-1),
        protocol,
        cidr_ipv4: rule.cidr_ipv4().map(str::to_string),
        cidr_ipv6: rule.cidr_ipv6().map(str::to_string),
        description: rule
            .description()
            .map(str::to_string)
            .filter(|d| !d.is_empty()),
    }
}

/// Whether two rules allow the same traffic (ids and descriptions aside).
pub(crate) fn same_permission(a: &IngressRule, b: &IngressRule) -> bool {
    a.protocol.eq_ignore_ascii_case(&b.protocol)
        && (a.is_all_traffic() || (a.from_port == b.from_port && a.to_port == b.to_port))
        && a.cidr_ipv4 == b.cidr_ipv4
        && a.cidr_ipv6 == b.cidr_ipv6
}

/// The permission AuthorizeSecurityGroupIngress needs for one rule.
pub(crate) fn ip_permission(rule: &IngressRule) -> IpPermission {
    let mut permission = IpPermission::builder()
        .ip_protocol(&rule.protocol)
        .from_port(rule.from_port)
        .to_port(rule.to_port);
    if let Some(cidr) = &rule.cidr_ipv4 {
        permission = permission.ip_ranges(
            IpRange::builder()
                .cidr_ip(cidr)
                .set_description(rule.description.clone())
                .build(),
        );
    }
    if let Some(cidr) = &rule.cidr_ipv6 {
        permission = permission.ipv6_ranges(
            Ipv6Range::builder()
                .cidr_ipv6(cidr)
                .set_description(rule.description.clone())
                .build(),
        );
    }
    permission.build()
}

pub(crate) fn group_filter(group_id: &str) -> Filter {
    Filter::builder().name("group-id").values(group_id).build()
}

impl AwsCloud {
    /// The caller (STS GetCallerIdentity), asked once and then remembered.
    pub(crate) async fn caller(&self) -> Result<Caller, CloudError> {
        if let Some(caller) = self.caller.lock().ok().and_then(|c| c.clone()) {
            return Ok(caller);
        }
        let output = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| cloud_error("sts:GetCallerIdentity", "STS", &self.region, e))?;
        let caller = Caller {
            arn: output.arn().unwrap_or_default().to_string(),
            account: output.account().map(str::to_string),
        };
        if let Ok(mut slot) = self.caller.lock() {
            *slot = Some(caller.clone());
        }
        Ok(caller)
    }

    pub(super) async fn op_caller_identity(&self) -> Result<String, CloudError> {
        let caller = self.caller().await?;
        if caller.arn.is_empty() {
            return Err(CloudError::Other(
                "sts:GetCallerIdentity returned no ARN".to_string(),
            ));
        }
        Ok(caller.arn)
    }

    // EC2 security groups

    /// The group's ingress rules, every page.
    pub(crate) async fn ingress_rules(
        &self,
        at: &Target,
        group_id: &str,
    ) -> Result<Vec<IngressRule>, CloudError> {
        let ec2 = self.clients(at).await?.ec2;
        let mut rules = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let output = ec2
                .describe_security_group_rules()
                .filters(group_filter(group_id))
                .max_results(1000)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| fail("ec2:DescribeSecurityGroupRules", "EC2", at, e))?;
            rules.extend(
                output
                    .security_group_rules()
                    .iter()
                    .filter(|r| r.is_egress() != Some(true) && r.group_id() == Some(group_id))
                    .map(ingress_rule),
            );
            match output.next_token().filter(|t| !t.is_empty()) {
                Some(token) => next = Some(token.to_string()),
                None => return Ok(rules),
            }
        }
    }

    /// The network interfaces the group is attached to, every page.
    pub(crate) async fn network_interfaces(
        &self,
        at: &Target,
        group_id: &str,
    ) -> Result<Vec<String>, CloudError> {
        let ec2 = self.clients(at).await?.ec2;
        let mut enis = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let output = ec2
                .describe_network_interfaces()
                .filters(group_filter(group_id))
                .max_results(1000)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| fail("ec2:DescribeNetworkInterfaces", "EC2", at, e))?;
            enis.extend(
                output
                    .network_interfaces()
                    .iter()
                    .filter_map(|n| n.network_interface_id().map(str::to_string)),
            );
            match output.next_token().filter(|t| !t.is_empty()) {
                Some(token) => next = Some(token.to_string()),
                None => return Ok(enis),
            }
        }
    }

    // GuardDuty

    /// GuardDuty's answer to an unknown detector is a BadRequestException.
    pub(crate) fn detector_error<E, R>(
        action: &str,
        at: &Target,
        detector_id: &str,
        error: SdkError<E, R>,
    ) -> CloudError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let about_detector = error.message().is_some_and(|m| m.contains("detectorId"));
        if about_detector && is_code(&error, &["BadRequestException", "InvalidInputException"]) {
            return CloudError::NotFound(format!(
                "BadRequestException: the detector '{detector_id}' does not exist in {at} ({})",
                error.message().unwrap_or_default()
            ));
        }
        fail(action, "GuardDuty", at, error)
    }

    // IAM account password policy

    // S3 Control account-level Block Public Access

    // EC2 EBS encryption by default

    // KMS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::kms::key_id_of;

    fn rule(protocol: &str, from: i32, to: i32, v4: Option<&str>, v6: Option<&str>) -> IngressRule {
        IngressRule {
            rule_id: String::new(),
            protocol: protocol.to_string(),
            from_port: from,
            to_port: to,
            cidr_ipv4: v4.map(str::to_string),
            cidr_ipv6: v6.map(str::to_string),
            description: None,
        }
    }

    #[test]
    fn aws_rules_become_ingress_rules() {
        let aws = SecurityGroupRule::builder()
            .security_group_rule_id("sgr-0123")
            .group_id("sg-1")
            .is_egress(false)
            .ip_protocol("tcp")
            .from_port(22)
            .to_port(22)
            .cidr_ipv4("0.0.0.0/0")
            .description("")
            .build();
        let r = ingress_rule(&aws);
        assert_eq!(r.rule_id, "sgr-0123");
        assert_eq!(
            (r.protocol.as_str(), r.from_port, r.to_port),
            ("tcp", 22, 22)
        );
        assert!(r.is_open_to_world());
        assert_eq!(r.description, None);
    }

    #[test]
    fn permissions_match_on_traffic_not_ids() {
        let ssh = rule("tcp", 22, 22, Some("0.0.0.0/0"), None);
        let mut created = ssh.clone();
        created.rule_id = "sgr-1".into();
        created.description = Some("x".into());
        assert!(same_permission(&ssh, &created));
        assert!(same_permission(
            &rule("TCP", 22, 22, Some("0.0.0.0/0"), None),
            &created
        ));
        assert!(!same_permission(
            &rule("tcp", 22, 23, Some("0.0.0.0/0"), None),
            &created
        ));
        assert!(!same_permission(
            &rule("tcp", 22, 22, None, Some("::/0")),
            &created
        ));
        assert!(same_permission(
            &rule("-1", 0, 0, None, Some("::/0")),
            &rule("-1", -1, -1, None, Some("::/0"))
        ));
    }

    #[test]
    fn permissions_carry_the_cidr_and_description() {
        let mut r = rule("tcp", 3389, 3389, None, Some("::/0"));
        r.description = Some("rdp".into());
        let p = ip_permission(&r);
        assert_eq!(p.ip_protocol(), Some("tcp"));
        assert!(p.ip_ranges().is_empty());
        assert_eq!(p.ipv6_ranges()[0].cidr_ipv6(), Some("::/0"));
        assert_eq!(p.ipv6_ranges()[0].description(), Some("rdp"));
    }

    #[test]
    fn key_arns_become_key_ids() {
        assert_eq!(
            key_id_of("arn:aws:kms:us-east-1:123456789012:key/abcd"),
            "abcd"
        );
        assert_eq!(key_id_of("abcd"), "abcd");
    }
}
