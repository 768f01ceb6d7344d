//! EC2: security groups and EBS encryption by default. The operations the catalog's steps use, with the AWS
//! implementation and the sandbox's side by side.

use async_trait::async_trait;

use super::aws::AwsCloud;
use super::aws::support::*;
use super::sandbox::Sandbox;
use super::sandbox::ops::*;
use super::{CloudError, Target};
use crate::resources::{IngressRule, SecurityGroup};

/// Both backends' answer for a security group that is not there.
pub(crate) fn group_not_found(group_id: &str, at: &Target) -> CloudError {
    CloudError::NotFound(format!(
        "InvalidGroup.NotFound: the security group '{group_id}' does not exist in {at}"
    ))
}

/// EC2: security groups and EBS encryption by default.
#[async_trait]
pub trait Ec2: Send + Sync {
    /// EC2 DescribeSecurityGroups + DescribeSecurityGroupRules + DescribeNetworkInterfaces.
    async fn security_group(
        &self,
        at: &Target,
        group_id: &str,
    ) -> Result<SecurityGroup, CloudError>;

    /// EC2 RevokeSecurityGroupIngress by security group rule id.
    async fn revoke_ingress(
        &self,
        at: &Target,
        group_id: &str,
        rule_ids: &[String],
    ) -> Result<(), CloudError>;

    /// EC2 AuthorizeSecurityGroupIngress; returns the new rules (with their new ids).
    async fn authorize_ingress(
        &self,
        at: &Target,
        group_id: &str,
        rules: &[IngressRule],
    ) -> Result<Vec<IngressRule>, CloudError>;

    /// EC2 GetEbsEncryptionByDefault.
    async fn ebs_encryption_by_default(&self, at: &Target) -> Result<bool, CloudError>;

    /// EC2 EnableEbsEncryptionByDefault / DisableEbsEncryptionByDefault.
    async fn set_ebs_encryption_by_default(
        &self,
        at: &Target,
        enabled: bool,
    ) -> Result<(), CloudError>;
}

#[async_trait]
impl Ec2 for AwsCloud {
    async fn security_group(
        &self,
        at: &Target,
        group_id: &str,
    ) -> Result<SecurityGroup, CloudError> {
        let ec2 = self.clients(at).await?.ec2;
        let (group, ingress, network_interfaces) = tokio::try_join!(
            async {
                let output = ec2
                    .describe_security_groups()
                    .group_ids(group_id)
                    .send()
                    .await
                    .map_err(|e| {
                        if is_code(&e, &["InvalidGroup.NotFound"]) {
                            group_not_found(group_id, at)
                        } else {
                            fail("ec2:DescribeSecurityGroups", "EC2", at, e)
                        }
                    })?;
                output
                    .security_groups()
                    .iter()
                    .find(|g| g.group_id() == Some(group_id))
                    .cloned()
                    .ok_or_else(|| group_not_found(group_id, at))
            },
            self.ingress_rules(at, group_id),
            self.network_interfaces(at, group_id),
        )?;
        let tags: BTreeMap<String, String> = group
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect();
        Ok(SecurityGroup {
            group_id: group_id.to_string(),
            group_name: group.group_name().unwrap_or_default().to_string(),
            description: group.description().unwrap_or_default().to_string(),
            vpc_id: group.vpc_id().unwrap_or_default().to_string(),
            ingress,
            network_interfaces,
            tags,
        })
    }

    async fn revoke_ingress(
        &self,
        at: &Target,
        group_id: &str,
        rule_ids: &[String],
    ) -> Result<(), CloudError> {
        const ACTION: &str = "ec2:RevokeSecurityGroupIngress";
        if rule_ids.is_empty() {
            return Ok(());
        }
        let output = self
            .clients(at).await?
            .ec2
            .revoke_security_group_ingress()
            .group_id(group_id)
            .set_security_group_rule_ids(Some(rule_ids.to_vec()))
            .send()
            .await
            .map_err(|e| {
                if is_code(&e, &["InvalidGroup.NotFound"]) {
                    group_not_found(group_id, at)
                } else if is_code(&e, &["InvalidPermission.NotFound", "InvalidSecurityGroupRuleId.NotFound"]) {
                    CloudError::NotFound(format!(
                        "InvalidSecurityGroupRuleId.NotFound: rules {} are not all in {group_id} ({})",
                        rule_ids.join(", "),
                        e.message().unwrap_or_default()
                    ))
                } else {
                    fail(ACTION, "EC2", at, e)
                }
            })?;
        // AWS reports rule ids it could not match instead of failing the call.
        let unknown = output.unknown_ip_permissions();
        if !unknown.is_empty() || output.r#return() == Some(false) {
            return Err(CloudError::NotFound(format!(
                "InvalidSecurityGroupRuleId.NotFound: some of the rules {} are not in {group_id}",
                rule_ids.join(", ")
            )));
        }
        Ok(())
    }

    async fn authorize_ingress(
        &self,
        at: &Target,
        group_id: &str,
        rules: &[IngressRule],
    ) -> Result<Vec<IngressRule>, CloudError> {
        const ACTION: &str = "ec2:AuthorizeSecurityGroupIngress";
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(bad) = rules
            .iter()
            .find(|r| r.cidr_ipv4.is_none() && r.cidr_ipv6.is_none())
        {
            return Err(CloudError::InvalidInput(format!(
                "a rule for {} names no CIDR to allow",
                bad.ports()
            )));
        }
        let output = self
            .clients(at)
            .await?
            .ec2
            .authorize_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(rules.iter().map(ip_permission).collect()))
            .send()
            .await
            .map_err(|e| {
                if is_code(&e, &["InvalidGroup.NotFound"]) {
                    group_not_found(group_id, at)
                } else {
                    fail(ACTION, "EC2", at, e)
                }
            })?;
        let mut created: Vec<IngressRule> = output
            .security_group_rules()
            .iter()
            .filter(|r| r.is_egress() != Some(true))
            .map(ingress_rule)
            .collect();
        // Match each requested rule to the rule created for it, in the order asked.
        // If the answer lists fewer rules than were asked for (moto lists only
        // the last permission's), read the group's rules to find the rest.
        if rules
            .iter()
            .any(|want| !created.iter().any(|c| same_permission(want, c)))
        {
            created = self.ingress_rules(at, group_id).await?;
        }
        rules
            .iter()
            .map(|want| {
                created
                    .iter()
                    .find(|c| same_permission(want, c) && !c.rule_id.is_empty())
                    .map(|c| IngressRule {
                        rule_id: c.rule_id.clone(),
                        ..want.clone()
                    })
                    .ok_or_else(|| {
                        CloudError::Other(format!(
                            "{ACTION} succeeded but the new rule for {} from {} is not in {group_id}",
                            want.ports(),
                            want.source()
                        ))
                    })
            })
            .collect()
    }

    async fn ebs_encryption_by_default(&self, at: &Target) -> Result<bool, CloudError> {
        const ACTION: &str = "ec2:GetEbsEncryptionByDefault";
        let output = self
            .clients(at)
            .await?
            .ec2
            .get_ebs_encryption_by_default()
            .send()
            .await
            .map_err(|e| fail(ACTION, "EC2", at, e))?;
        Ok(output.ebs_encryption_by_default().unwrap_or(false))
    }

    async fn set_ebs_encryption_by_default(
        &self,
        at: &Target,
        enabled: bool,
    ) -> Result<(), CloudError> {
        let ec2 = self.clients(at).await?.ec2;
        if enabled {
            const ACTION: &str = "ec2:EnableEbsEncryptionByDefault";
            ec2.enable_ebs_encryption_by_default()
                .send()
                .await
                .map_err(|e| fail(ACTION, "EC2", at, e))?;
        } else {
            const ACTION: &str = "ec2:DisableEbsEncryptionByDefault";
            ec2.disable_ebs_encryption_by_default()
                .send()
                .await
                .map_err(|e| fail(ACTION, "EC2", at, e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Ec2 for Sandbox {
    async fn security_group(
        &self,
        at: &Target,
        group_id: &str,
    ) -> Result<SecurityGroup, CloudError> {
        self.with_state(|s| {
            region(s, at)?
                .security_groups
                .iter()
                .find(|g| g.group_id == group_id)
                .cloned()
                .ok_or_else(|| group_not_found(group_id, at))
        })
    }

    async fn revoke_ingress(
        &self,
        at: &Target,
        group_id: &str,
        rule_ids: &[String],
    ) -> Result<(), CloudError> {
        self.with_state(|s| {
            let group = region(s, at)?
                .security_groups
                .iter()
                .find(|g| g.group_id == group_id)
                .ok_or_else(|| group_not_found(group_id, at))?;
            match rule_ids
                .iter()
                .find(|id| !group.ingress.iter().any(|r| &r.rule_id == *id))
            {
                Some(missing) => Err(CloudError::NotFound(format!(
                    "InvalidSecurityGroupRuleId.NotFound: rule {missing} is not in {group_id}"
                ))),
                None => Ok(()),
            }
        })?;
        self.with_state_mut(|s| {
            let group = sg_mut(s, at, group_id)?;
            group.ingress.retain(|r| !rule_ids.contains(&r.rule_id));
            Ok(())
        })
    }

    async fn authorize_ingress(
        &self,
        at: &Target,
        group_id: &str,
        rules: &[IngressRule],
    ) -> Result<Vec<IngressRule>, CloudError> {
        Ec2::security_group(self, at, group_id).await?;
        let clock = self.now().to_rfc3339();
        self.with_state_mut(|s| {
            let group = sg_mut(s, at, group_id)?;
            let mut added = Vec::new();
            for rule in rules {
                let duplicate = group.ingress.iter().any(|r| {
                    r.protocol == rule.protocol
                        && r.from_port == rule.from_port
                        && r.to_port == rule.to_port
                        && r.cidr_ipv4 == rule.cidr_ipv4
                        && r.cidr_ipv6 == rule.cidr_ipv6
                });
                if duplicate {
                    return Err(CloudError::InvalidInput(format!(
                        "InvalidPermission.Duplicate: {} from {} already exists in {group_id}",
                        rule.ports(),
                        rule.source()
                    )));
                }
                let seed = format!(
                    "{group_id}/{}/{}/{clock}/{}",
                    rule.ports(),
                    rule.source(),
                    added.len()
                );
                let new = IngressRule {
                    rule_id: format!("sgr-{:016x}a", fnv1a(0x5eed, &seed)),
                    ..rule.clone()
                };
                group.ingress.push(new.clone());
                added.push(new);
            }
            Ok(added)
        })
    }

    async fn ebs_encryption_by_default(&self, at: &Target) -> Result<bool, CloudError> {
        self.with_state(|s| Ok(region(s, at)?.ebs_encryption_by_default))
    }

    async fn set_ebs_encryption_by_default(
        &self,
        at: &Target,
        enabled: bool,
    ) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            region_mut(s, at)?.ebs_encryption_by_default = enabled;
            Ok(())
        })
    }
}
