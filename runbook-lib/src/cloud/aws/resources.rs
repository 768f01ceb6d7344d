//! Resource operations on AWS: EC2, GuardDuty, IAM, S3 Control, KMS and STS.
//! Each acts in its target's region; semantics and errors follow the sandbox
//! (`cloud/sandbox/ops.rs`), so plans behave the same on both backends.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Ipv6Range, SecurityGroupRule};
use aws_sdk_guardduty::types::DetectorStatus as GdStatus;
use aws_sdk_kms::types::KeyManagerType;
use aws_sdk_s3control::types::PublicAccessBlockConfiguration;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::errors::error_code;
use super::{AwsCloud, Caller, cloud_error};
use crate::cloud::{CloudError, Target};
use crate::resources::{
    DetectorStatus, GuardDutyDetector, IngressRule, KeyManager, KmsKey, PasswordPolicy,
    PublicAccessBlock, SecurityGroup,
};

/// What IAM's UpdateAccountPasswordPolicy uses when no minimum length is given.
const IAM_DEFAULT_MIN_PASSWORD_LENGTH: u8 = 6;
/// GuardDuty's default publishing frequency.
const DEFAULT_PUBLISHING_FREQUENCY: &str = "SIX_HOURS";

/// Maps an SDK error of `action` (an IAM action name such as
/// `ec2:RevokeSecurityGroupIngress`) in the target's region.
fn fail<E, R>(action: &str, service: &str, at: &Target, error: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    cloud_error(action, service, &at.region, error)
}

fn is_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>, codes: &[&str]) -> bool {
    error_code(error).is_some_and(|c| codes.contains(&c))
}

fn group_not_found(group_id: &str, at: &Target) -> CloudError {
    CloudError::NotFound(format!(
        "InvalidGroup.NotFound: the security group '{group_id}' does not exist in {at}"
    ))
}

/// A number from AWS that must fit our type, or an error naming the field.
fn fit<T: TryFrom<i32>>(field: &str, value: i32) -> Result<T, CloudError> {
    T::try_from(value)
        .map_err(|_| CloudError::Other(format!("AWS returned an out-of-range {field}: {value}")))
}

/// One `sgr-` rule from DescribeSecurityGroupRules / AuthorizeSecurityGroupIngress.
fn ingress_rule(rule: &SecurityGroupRule) -> IngressRule {
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
fn same_permission(a: &IngressRule, b: &IngressRule) -> bool {
    a.protocol.eq_ignore_ascii_case(&b.protocol)
        && (a.is_all_traffic() || (a.from_port == b.from_port && a.to_port == b.to_port))
        && a.cidr_ipv4 == b.cidr_ipv4
        && a.cidr_ipv6 == b.cidr_ipv6
}

/// The permission AuthorizeSecurityGroupIngress needs for one rule.
fn ip_permission(rule: &IngressRule) -> IpPermission {
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

fn group_filter(group_id: &str) -> Filter {
    Filter::builder().name("group-id").values(group_id).build()
}

/// `arn:aws:kms:...:key/<id>` or a bare key id -> the key id.
fn key_id_of(key: &str) -> &str {
    key.rsplit_once(":key/").map_or(key, |(_, id)| id)
}

impl AwsCloud {
    /// The caller (STS GetCallerIdentity), asked once and then remembered.
    async fn caller(&self) -> Result<Caller, CloudError> {
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

    /// Refuses to act in another account than the caller's: that needs a role to
    /// assume, which comes later. Acts anyway when the caller's account is unknown.
    async fn check_account(&self, at: &Target, action: &str) -> Result<(), CloudError> {
        let caller_account = self.caller().await.ok().and_then(|c| c.account);
        match caller_account {
            Some(account) if account != at.account.as_str() => Err(CloudError::AccessDenied {
                action: "sts:AssumeRole".to_string(),
                message: format!(
                    "{action} must run in account {}, but the credentials are for account {account}; \
                     cross-account action needs a role to assume in the target account (a later issue)",
                    at.account
                ),
            }),
            _ => Ok(()),
        }
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

    pub(super) async fn op_security_group(
        &self,
        at: &Target,
        group_id: &str,
    ) -> Result<SecurityGroup, CloudError> {
        self.check_account(at, "ec2:DescribeSecurityGroups").await?;
        let ec2 = self.clients(at).ec2;
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

    /// The group's ingress rules, every page.
    async fn ingress_rules(
        &self,
        at: &Target,
        group_id: &str,
    ) -> Result<Vec<IngressRule>, CloudError> {
        let ec2 = self.clients(at).ec2;
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
    async fn network_interfaces(
        &self,
        at: &Target,
        group_id: &str,
    ) -> Result<Vec<String>, CloudError> {
        let ec2 = self.clients(at).ec2;
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

    pub(super) async fn op_revoke_ingress(
        &self,
        at: &Target,
        group_id: &str,
        rule_ids: &[String],
    ) -> Result<(), CloudError> {
        const ACTION: &str = "ec2:RevokeSecurityGroupIngress";
        self.check_account(at, ACTION).await?;
        if rule_ids.is_empty() {
            return Ok(());
        }
        let output = self
            .clients(at)
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

    pub(super) async fn op_authorize_ingress(
        &self,
        at: &Target,
        group_id: &str,
        rules: &[IngressRule],
    ) -> Result<Vec<IngressRule>, CloudError> {
        const ACTION: &str = "ec2:AuthorizeSecurityGroupIngress";
        self.check_account(at, ACTION).await?;
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

    // GuardDuty

    /// GuardDuty's answer to an unknown detector is a BadRequestException.
    fn detector_error<E, R>(
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

    pub(super) async fn op_guardduty_detector(
        &self,
        at: &Target,
    ) -> Result<Option<GuardDutyDetector>, CloudError> {
        self.check_account(at, "guardduty:ListDetectors").await?;
        let guardduty = self.clients(at).guardduty;
        let list = guardduty
            .list_detectors()
            .send()
            .await
            .map_err(|e| fail("guardduty:ListDetectors", "GuardDuty", at, e))?;
        // A region has at most one detector per account.
        let Some(detector_id) = list.detector_ids().first() else {
            return Ok(None);
        };
        let detector = guardduty
            .get_detector()
            .detector_id(detector_id)
            .send()
            .await
            .map_err(|e| Self::detector_error("guardduty:GetDetector", at, detector_id, e))?;
        let status = match detector.status() {
            Some(GdStatus::Enabled) => DetectorStatus::Enabled,
            Some(GdStatus::Disabled) => DetectorStatus::Disabled,
            other => {
                return Err(CloudError::Other(format!(
                    "GuardDuty detector {detector_id} has an unknown status {:?}",
                    other.map(|s| s.as_str())
                )));
            }
        };
        Ok(Some(GuardDutyDetector {
            detector_id: detector_id.clone(),
            status,
            finding_publishing_frequency: detector
                .finding_publishing_frequency()
                .map_or(DEFAULT_PUBLISHING_FREQUENCY, |f| f.as_str())
                .to_string(),
        }))
    }

    pub(super) async fn op_create_detector(&self, at: &Target) -> Result<String, CloudError> {
        const ACTION: &str = "guardduty:CreateDetector";
        self.check_account(at, ACTION).await?;
        let output = self
            .clients(at)
            .guardduty
            .create_detector()
            .enable(true)
            .send()
            .await
            .map_err(|e| fail(ACTION, "GuardDuty", at, e))?;
        output
            .detector_id()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| CloudError::Other(format!("{ACTION} returned no detector id")))
    }

    pub(super) async fn op_set_detector_enabled(
        &self,
        at: &Target,
        detector_id: &str,
        enabled: bool,
    ) -> Result<(), CloudError> {
        const ACTION: &str = "guardduty:UpdateDetector";
        self.check_account(at, ACTION).await?;
        self.clients(at)
            .guardduty
            .update_detector()
            .detector_id(detector_id)
            .enable(enabled)
            .send()
            .await
            .map_err(|e| Self::detector_error(ACTION, at, detector_id, e))?;
        Ok(())
    }

    pub(super) async fn op_delete_detector(
        &self,
        at: &Target,
        detector_id: &str,
    ) -> Result<(), CloudError> {
        const ACTION: &str = "guardduty:DeleteDetector";
        self.check_account(at, ACTION).await?;
        self.clients(at)
            .guardduty
            .delete_detector()
            .detector_id(detector_id)
            .send()
            .await
            .map_err(|e| Self::detector_error(ACTION, at, detector_id, e))?;
        Ok(())
    }

    // IAM account password policy

    pub(super) async fn op_password_policy(
        &self,
        at: &Target,
    ) -> Result<Option<PasswordPolicy>, CloudError> {
        const ACTION: &str = "iam:GetAccountPasswordPolicy";
        self.check_account(at, ACTION).await?;
        let output = match self
            .clients(at)
            .iam
            .get_account_password_policy()
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if is_code(&e, &["NoSuchEntity"]) => return Ok(None),
            Err(e) => return Err(fail(ACTION, "IAM", at, e)),
        };
        let Some(p) = output.password_policy() else {
            return Ok(None);
        };
        let positive = |v: Option<i32>| v.filter(|n| *n > 0);
        Ok(Some(PasswordPolicy {
            minimum_password_length: match p.minimum_password_length() {
                Some(n) => fit("MinimumPasswordLength", n)?,
                None => IAM_DEFAULT_MIN_PASSWORD_LENGTH,
            },
            require_symbols: p.require_symbols(),
            require_numbers: p.require_numbers(),
            require_uppercase_characters: p.require_uppercase_characters(),
            require_lowercase_characters: p.require_lowercase_characters(),
            allow_users_to_change_password: p.allow_users_to_change_password(),
            // moto reports 0 for "never expires"; AWS leaves the field out.
            max_password_age: positive(p.max_password_age())
                .map(|n| fit("MaxPasswordAge", n))
                .transpose()?,
            password_reuse_prevention: positive(p.password_reuse_prevention())
                .map(|n| fit("PasswordReusePrevention", n))
                .transpose()?,
            hard_expiry: p.hard_expiry().unwrap_or(false),
        }))
    }

    pub(super) async fn op_set_password_policy(
        &self,
        at: &Target,
        policy: &PasswordPolicy,
    ) -> Result<(), CloudError> {
        const ACTION: &str = "iam:UpdateAccountPasswordPolicy";
        self.check_account(at, ACTION).await?;
        // Every field is sent: IAM resets the ones a request leaves out, and the
        // plan passes the whole merged policy.
        self.clients(at)
            .iam
            .update_account_password_policy()
            .minimum_password_length(i32::from(policy.minimum_password_length))
            .require_symbols(policy.require_symbols)
            .require_numbers(policy.require_numbers)
            .require_uppercase_characters(policy.require_uppercase_characters)
            .require_lowercase_characters(policy.require_lowercase_characters)
            .allow_users_to_change_password(policy.allow_users_to_change_password)
            .set_max_password_age(policy.max_password_age.map(i32::from))
            .set_password_reuse_prevention(policy.password_reuse_prevention.map(i32::from))
            .hard_expiry(policy.hard_expiry)
            .send()
            .await
            .map_err(|e| fail(ACTION, "IAM", at, e))?;
        Ok(())
    }

    pub(super) async fn op_delete_password_policy(&self, at: &Target) -> Result<(), CloudError> {
        const ACTION: &str = "iam:DeleteAccountPasswordPolicy";
        self.check_account(at, ACTION).await?;
        self.clients(at)
            .iam
            .delete_account_password_policy()
            .send()
            .await
            .map_err(|e| {
                if is_code(&e, &["NoSuchEntity"]) {
                    CloudError::NotFound(
                        "NoSuchEntity: the account has no password policy".to_string(),
                    )
                } else {
                    fail(ACTION, "IAM", at, e)
                }
            })?;
        Ok(())
    }

    // S3 Control account-level Block Public Access

    pub(super) async fn op_public_access_block(
        &self,
        at: &Target,
    ) -> Result<Option<PublicAccessBlock>, CloudError> {
        const ACTION: &str = "s3:GetAccountPublicAccessBlock";
        self.check_account(at, ACTION).await?;
        let output = match self
            .clients(at)
            .s3control
            .get_public_access_block()
            .account_id(at.account.as_str())
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if is_code(&e, &["NoSuchPublicAccessBlockConfiguration"]) => return Ok(None),
            Err(e) => return Err(fail(ACTION, "S3", at, e)),
        };
        Ok(output
            .public_access_block_configuration()
            .map(|c| PublicAccessBlock {
                block_public_acls: c.block_public_acls().unwrap_or(false),
                ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                block_public_policy: c.block_public_policy().unwrap_or(false),
                restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
            }))
    }

    pub(super) async fn op_set_public_access_block(
        &self,
        at: &Target,
        block: &PublicAccessBlock,
    ) -> Result<(), CloudError> {
        const ACTION: &str = "s3:PutAccountPublicAccessBlock";
        self.check_account(at, ACTION).await?;
        let configuration = PublicAccessBlockConfiguration::builder()
            .block_public_acls(block.block_public_acls)
            .ignore_public_acls(block.ignore_public_acls)
            .block_public_policy(block.block_public_policy)
            .restrict_public_buckets(block.restrict_public_buckets)
            .build();
        self.clients(at)
            .s3control
            .put_public_access_block()
            .account_id(at.account.as_str())
            .public_access_block_configuration(configuration)
            .send()
            .await
            .map_err(|e| fail(ACTION, "S3", at, e))?;
        Ok(())
    }

    pub(super) async fn op_delete_public_access_block(
        &self,
        at: &Target,
    ) -> Result<(), CloudError> {
        const ACTION: &str = "s3:PutAccountPublicAccessBlock";
        self.check_account(at, ACTION).await?;
        match self
            .clients(at)
            .s3control
            .delete_public_access_block()
            .account_id(at.account.as_str())
            .send()
            .await
        {
            // Deleting what is not there leaves the account as asked, as in the sandbox.
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, &["NoSuchPublicAccessBlockConfiguration"]) => Ok(()),
            Err(e) => Err(fail(ACTION, "S3", at, e)),
        }
    }

    // EC2 EBS encryption by default

    pub(super) async fn op_ebs_encryption_by_default(
        &self,
        at: &Target,
    ) -> Result<bool, CloudError> {
        const ACTION: &str = "ec2:GetEbsEncryptionByDefault";
        self.check_account(at, ACTION).await?;
        let output = self
            .clients(at)
            .ec2
            .get_ebs_encryption_by_default()
            .send()
            .await
            .map_err(|e| fail(ACTION, "EC2", at, e))?;
        Ok(output.ebs_encryption_by_default().unwrap_or(false))
    }

    pub(super) async fn op_set_ebs_encryption_by_default(
        &self,
        at: &Target,
        enabled: bool,
    ) -> Result<(), CloudError> {
        let ec2 = self.clients(at).ec2;
        if enabled {
            const ACTION: &str = "ec2:EnableEbsEncryptionByDefault";
            self.check_account(at, ACTION).await?;
            ec2.enable_ebs_encryption_by_default()
                .send()
                .await
                .map_err(|e| fail(ACTION, "EC2", at, e))?;
        } else {
            const ACTION: &str = "ec2:DisableEbsEncryptionByDefault";
            self.check_account(at, ACTION).await?;
            ec2.disable_ebs_encryption_by_default()
                .send()
                .await
                .map_err(|e| fail(ACTION, "EC2", at, e))?;
        }
        Ok(())
    }

    // KMS

    pub(super) async fn op_kms_key(&self, at: &Target, key_id: &str) -> Result<KmsKey, CloudError> {
        self.check_account(at, "kms:DescribeKey").await?;
        let kms = self.clients(at).kms;
        let described = kms
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| {
                if is_code(&e, &["NotFoundException"]) {
                    CloudError::NotFound(format!(
                        "NotFoundException: key '{}' does not exist in {at}",
                        key_id_of(key_id)
                    ))
                } else {
                    fail("kms:DescribeKey", "KMS", at, e)
                }
            })?;
        let meta = described.key_metadata().ok_or_else(|| {
            CloudError::Other(format!("kms:DescribeKey returned no metadata for {key_id}"))
        })?;
        let key_manager = match meta.key_manager() {
            Some(KeyManagerType::Customer) => KeyManager::Customer,
            // Unknown managers are treated as AWS's: their rotation is not ours to change.
            _ => KeyManager::Aws,
        };
        let rotation_enabled = match kms
            .get_key_rotation_status()
            .key_id(meta.key_id())
            .send()
            .await
        {
            Ok(status) => status.key_rotation_enabled(),
            // Keys that cannot rotate (asymmetric, pending deletion, ...) are not rotating.
            Err(e)
                if is_code(
                    &e,
                    &[
                        "UnsupportedOperationException",
                        "KMSInvalidStateException",
                        "DisabledException",
                    ],
                ) =>
            {
                false
            }
            Err(e) => return Err(fail("kms:GetKeyRotationStatus", "KMS", at, e)),
        };
        Ok(KmsKey {
            key_id: meta.key_id().to_string(),
            description: meta.description().unwrap_or_default().to_string(),
            key_manager,
            key_spec: meta
                .key_spec()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            key_state: meta
                .key_state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            rotation_enabled,
            creation_date: meta
                .creation_date()
                .and_then(|d| d.fmt(Format::DateTime).ok())
                .unwrap_or_default(),
        })
    }

    pub(super) async fn op_set_key_rotation(
        &self,
        at: &Target,
        key_id: &str,
        enabled: bool,
    ) -> Result<(), CloudError> {
        // As in the sandbox: only enabled, customer-managed symmetric keys rotate.
        let key = self.op_kms_key(at, key_id).await?;
        if !key.rotation_applies() {
            return Err(CloudError::InvalidInput(format!(
                "UnsupportedOperationException: rotation cannot be changed on key {} ({:?}, {}, {})",
                key.key_id, key.key_manager, key.key_spec, key.key_state
            )));
        }
        let kms = self.clients(at).kms;
        if enabled {
            kms.enable_key_rotation()
                .key_id(&key.key_id)
                .send()
                .await
                .map_err(|e| fail("kms:EnableKeyRotation", "KMS", at, e))?;
        } else {
            kms.disable_key_rotation()
                .key_id(&key.key_id)
                .send()
                .await
                .map_err(|e| fail("kms:DisableKeyRotation", "KMS", at, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
