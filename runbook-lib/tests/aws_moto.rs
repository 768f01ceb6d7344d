//! The AWS backend's resource operations, through the real SDK, against moto.
//!
//! Driven by tests/test_aws_resources.py, which starts `moto_server`, seeds it
//! with boto3 and passes what it made in environment variables:
//!
//! - `RUNBOOK_MOTO_URL`: the server (required; without it this test skips itself)
//! - `RUNBOOK_MOTO_GROUP_ID`: a security group with ingress tcp 22 from 0.0.0.0/0
//!   and tcp 3389 from ::/0, attached to `RUNBOOK_MOTO_ENI_ID`, tagged Name=web
//! - `RUNBOOK_MOTO_KEY_ID`: a customer-managed symmetric KMS key, rotation off
//! - an account password policy with MinimumPasswordLength=8, MaxPasswordAge=90
//!   and HardExpiry=true; no GuardDuty detector, no account public access block,
//!   EBS encryption by default off.
//!
//! It prints `moto-result: key=value` lines for the Python test to check against
//! moto's state afterwards.

use std::future::Future;

use runbook::cloud::aws::{AwsCloud, load_sdk_config};
use runbook::cloud::{Cloud, CloudError, Ec2, GuardDuty, Iam, Kms, S3Control, Target};
use runbook::resources::{
    DetectorStatus, IngressRule, KeyManager, PasswordPolicy, PublicAccessBlock,
};
use runbook::settings::Settings;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set with RUNBOOK_MOTO_URL"))
}

/// Runs `f` on a thread with a 16 MiB stack: the SDK's deserializers need deep
/// stacks in debug builds.
fn on_big_stack<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::Builder::new()
        .name("aws-moto".into())
        .stack_size(16 * 1024 * 1024)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(f());
        })
        .expect("spawn test thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

fn result(key: &str, value: impl std::fmt::Display) {
    println!("moto-result: {key}={value}");
}

#[test]
fn aws_resource_operations_against_moto() {
    let Ok(url) = std::env::var("RUNBOOK_MOTO_URL") else {
        println!("skipped: RUNBOOK_MOTO_URL not set");
        return;
    };
    // SAFETY: set before any other thread of this test binary reads the
    // environment (this is its only test; the SDK threads start below).
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &url);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_SESSION_TOKEN", "testing");
        std::env::set_var("AWS_REGION", REGION);
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_ENDPOINT_URL_S3_CONTROL");
    }
    let group_id = var("RUNBOOK_MOTO_GROUP_ID");
    let eni_id = var("RUNBOOK_MOTO_ENI_ID");
    let key_id = var("RUNBOOK_MOTO_KEY_ID");
    on_big_stack(move || async move {
        let sdk = load_sdk_config(&Settings::default()).await;
        let cloud = AwsCloud::new(&sdk, "moto").expect("AwsCloud");
        let at = Target {
            account: ACCOUNT.parse().expect("account id"),
            region: REGION.to_string(),
        };
        identity(&cloud, &at).await;
        security_groups(&cloud, &at, &group_id, &eni_id).await;
        guardduty(&cloud, &at).await;
        password_policy(&cloud, &at).await;
        public_access_block(&cloud, &at).await;
        ebs(&cloud, &at).await;
        kms(&cloud, &at, &key_id).await;
    });
}

async fn identity(cloud: &AwsCloud, at: &Target) {
    let arn = cloud.caller_identity().await.expect("caller identity");
    assert!(
        arn.starts_with("arn:aws:") && arn.contains(ACCOUNT),
        "{arn}"
    );
    // Another account is read through its member role, assumed on first use
    // (moto's AssumeRole switches account): its own state, not the caller's.
    let elsewhere = Target {
        account: "111122223333".parse().expect("account id"),
        region: REGION.to_string(),
    };
    match cloud.ebs_encryption_by_default(&elsewhere).await {
        Ok(false) => {}
        other => panic!("the member account's default should be read there, got {other:?}"),
    }
    // The same account in another region is fine (its own regional client).
    assert!(
        !cloud
            .ebs_encryption_by_default(&Target {
                account: at.account.clone(),
                region: "eu-west-1".into()
            })
            .await
            .expect("ebs in eu-west-1")
    );
}

async fn security_groups(cloud: &AwsCloud, at: &Target, group_id: &str, eni_id: &str) {
    let group = cloud
        .security_group(at, group_id)
        .await
        .expect("security group");
    assert_eq!(group.group_id, group_id);
    assert_eq!(group.group_name, "runbook-open");
    assert!(group.vpc_id.starts_with("vpc-"), "{group:?}");
    assert_eq!(group.tags.get("Name").map(String::as_str), Some("web"));
    assert_eq!(group.network_interfaces, vec![eni_id.to_string()]);
    let open: Vec<&IngressRule> = group
        .ingress
        .iter()
        .filter(|r| r.is_open_to_world())
        .collect();
    assert_eq!(open.len(), 2, "{:?}", group.ingress);
    let ssh = open
        .iter()
        .find(|r| r.allows_tcp_port(22))
        .expect("ssh rule");
    let rdp = open
        .iter()
        .find(|r| r.allows_tcp_port(3389))
        .expect("rdp rule");
    assert_eq!(ssh.cidr_ipv4.as_deref(), Some("0.0.0.0/0"));
    assert_eq!(ssh.description.as_deref(), Some("ssh from anywhere"));
    assert_eq!(rdp.cidr_ipv6.as_deref(), Some("::/0"));
    assert!(ssh.rule_id.starts_with("sgr-") && rdp.rule_id.starts_with("sgr-"));
    let revoked: Vec<IngressRule> = vec![(*ssh).clone(), (*rdp).clone()];
    let ids: Vec<String> = revoked.iter().map(|r| r.rule_id.clone()).collect();

    // A missing group is NotFound, naming the group.
    let missing = "sg-0123456789abcdef0";
    match cloud.security_group(at, missing).await {
        Err(CloudError::NotFound(m)) => assert!(m.contains(missing), "{m}"),
        other => panic!("missing group should be NotFound, got {other:?}"),
    }

    // Revoke by rule id: the rules are gone.
    cloud
        .revoke_ingress(at, group_id, &ids)
        .await
        .expect("revoke");
    let after = cloud
        .security_group(at, group_id)
        .await
        .expect("group after revoke");
    assert!(
        after.ingress.iter().all(|r| !ids.contains(&r.rule_id)),
        "{:?}",
        after.ingress
    );
    assert!(!after.ingress.iter().any(IngressRule::is_open_to_world));
    // Revoking them again: NotFound.
    match cloud.revoke_ingress(at, group_id, &ids).await {
        Err(CloudError::NotFound(m)) => assert!(m.contains("NotFound"), "{m}"),
        other => panic!("revoking unknown rules should be NotFound, got {other:?}"),
    }

    // The inverse: authorize the same rules; they come back with new ids.
    let wanted: Vec<IngressRule> = revoked
        .iter()
        .map(|r| IngressRule {
            rule_id: String::new(),
            ..r.clone()
        })
        .collect();
    let added = cloud
        .authorize_ingress(at, group_id, &wanted)
        .await
        .expect("authorize");
    assert_eq!(added.len(), 2, "{added:?}");
    for (new, old) in added.iter().zip(&revoked) {
        assert!(
            new.rule_id.starts_with("sgr-") && new.rule_id != old.rule_id,
            "{new:?}"
        );
        assert_eq!(
            IngressRule {
                rule_id: old.rule_id.clone(),
                ..new.clone()
            },
            *old
        );
    }
    let restored = cloud
        .security_group(at, group_id)
        .await
        .expect("group after authorize");
    for new in &added {
        assert!(
            restored.ingress.contains(new),
            "{new:?} not in {:?}",
            restored.ingress
        );
    }
    // Authorizing an existing rule again is refused.
    match cloud.authorize_ingress(at, group_id, &wanted[..1]).await {
        Err(CloudError::InvalidInput(m)) => assert!(m.contains("Duplicate"), "{m}"),
        other => panic!("a duplicate rule should be InvalidInput, got {other:?}"),
    }
    result("revoked", ids.join(","));
    result(
        "authorized",
        added
            .iter()
            .map(|r| r.rule_id.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
}

async fn guardduty(cloud: &AwsCloud, at: &Target) {
    assert_eq!(
        cloud.guardduty_detector(at).await.expect("no detector"),
        None
    );
    let first = cloud.create_detector(at).await.expect("create detector");
    let detector = cloud
        .guardduty_detector(at)
        .await
        .expect("detector")
        .expect("one detector");
    assert_eq!(detector.detector_id, first);
    assert_eq!(detector.status, DetectorStatus::Enabled);
    assert!(!detector.finding_publishing_frequency.is_empty());

    cloud
        .set_detector_enabled(at, &first, false)
        .await
        .expect("disable");
    let disabled = cloud
        .guardduty_detector(at)
        .await
        .expect("detector")
        .expect("one detector");
    assert_eq!(disabled.status, DetectorStatus::Disabled);
    cloud
        .set_detector_enabled(at, &first, true)
        .await
        .expect("enable");
    let enabled = cloud
        .guardduty_detector(at)
        .await
        .expect("detector")
        .expect("one detector");
    assert_eq!(enabled.status, DetectorStatus::Enabled);

    match cloud
        .set_detector_enabled(at, "0123456789abcdef0123456789abcdef", true)
        .await
    {
        Err(CloudError::NotFound(m)) => {
            assert!(m.contains("0123456789abcdef0123456789abcdef"), "{m}")
        }
        other => panic!("an unknown detector should be NotFound, got {other:?}"),
    }

    cloud
        .delete_detector(at, &first)
        .await
        .expect("delete detector");
    assert_eq!(
        cloud.guardduty_detector(at).await.expect("no detector"),
        None
    );

    // Leave one enabled detector for the Python side to find.
    let last = cloud
        .create_detector(at)
        .await
        .expect("create detector again");
    assert_ne!(last, first);
    result("deleted_detector", &first);
    result("detector", &last);
}

async fn password_policy(cloud: &AwsCloud, at: &Target) {
    let seeded = cloud
        .password_policy(at)
        .await
        .expect("policy")
        .expect("a seeded policy");
    assert_eq!(seeded.minimum_password_length, 8);
    assert_eq!(seeded.max_password_age, Some(90));
    assert!(seeded.hard_expiry);
    // The plan merges its change into the current policy and sends every field.
    let stronger = PasswordPolicy {
        minimum_password_length: 14,
        ..seeded.clone()
    };
    cloud
        .set_password_policy(at, &stronger)
        .await
        .expect("set policy");
    let now = cloud
        .password_policy(at)
        .await
        .expect("policy")
        .expect("a policy");
    assert_eq!(now, stronger);
    assert_eq!(now.max_password_age, Some(90));
    assert!(now.hard_expiry);

    cloud
        .delete_password_policy(at)
        .await
        .expect("delete policy");
    assert_eq!(cloud.password_policy(at).await.expect("no policy"), None);
    match cloud.delete_password_policy(at).await {
        Err(CloudError::NotFound(m)) => assert!(m.contains("NoSuchEntity"), "{m}"),
        other => panic!("deleting no policy should be NotFound, got {other:?}"),
    }
    cloud
        .set_password_policy(at, &stronger)
        .await
        .expect("restore policy");
    result("password_length", stronger.minimum_password_length);
}

async fn public_access_block(cloud: &AwsCloud, at: &Target) {
    assert_eq!(cloud.public_access_block(at).await.expect("no block"), None);
    let partial = PublicAccessBlock {
        block_public_acls: true,
        ..PublicAccessBlock::default()
    };
    cloud
        .set_public_access_block(at, &partial)
        .await
        .expect("put partial block");
    assert_eq!(
        cloud.public_access_block(at).await.expect("block"),
        Some(partial)
    );
    cloud
        .delete_public_access_block(at)
        .await
        .expect("delete block");
    assert_eq!(cloud.public_access_block(at).await.expect("no block"), None);
    // Deleting what is not there is fine, as in the sandbox.
    cloud
        .delete_public_access_block(at)
        .await
        .expect("delete no block");
    cloud
        .set_public_access_block(at, &PublicAccessBlock::ALL_ON)
        .await
        .expect("put block");
    let block = cloud
        .public_access_block(at)
        .await
        .expect("block")
        .expect("a block");
    assert!(block.all_on());
    result("public_access_block", "all_on");
}

async fn ebs(cloud: &AwsCloud, at: &Target) {
    assert!(!cloud.ebs_encryption_by_default(at).await.expect("ebs"));
    cloud
        .set_ebs_encryption_by_default(at, true)
        .await
        .expect("enable ebs");
    assert!(cloud.ebs_encryption_by_default(at).await.expect("ebs"));
    cloud
        .set_ebs_encryption_by_default(at, false)
        .await
        .expect("disable ebs");
    assert!(!cloud.ebs_encryption_by_default(at).await.expect("ebs"));
    cloud
        .set_ebs_encryption_by_default(at, true)
        .await
        .expect("enable ebs again");
    result("ebs_default", true);
}

async fn kms(cloud: &AwsCloud, at: &Target, key_id: &str) {
    let key = cloud.kms_key(at, key_id).await.expect("key");
    assert_eq!(key.key_id, key_id);
    assert_eq!(key.description, "runbook test key");
    assert_eq!(key.key_manager, KeyManager::Customer);
    assert_eq!(key.key_spec, "SYMMETRIC_DEFAULT");
    assert_eq!(key.key_state, "Enabled");
    assert!(!key.rotation_enabled);
    assert!(key.rotation_applies());
    assert!(key.creation_date.contains('T'), "{}", key.creation_date);

    let arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}");
    cloud
        .set_key_rotation(at, &arn, true)
        .await
        .expect("enable rotation");
    assert!(
        cloud
            .kms_key(at, key_id)
            .await
            .expect("key")
            .rotation_enabled
    );
    cloud
        .set_key_rotation(at, key_id, false)
        .await
        .expect("disable rotation");
    assert!(
        !cloud
            .kms_key(at, key_id)
            .await
            .expect("key")
            .rotation_enabled
    );

    let missing = "11111111-2222-3333-4444-555555555555";
    match cloud.kms_key(at, missing).await {
        Err(CloudError::NotFound(m)) => assert!(m.contains(missing), "{m}"),
        other => panic!("a missing key should be NotFound, got {other:?}"),
    }
    cloud
        .set_key_rotation(at, key_id, true)
        .await
        .expect("enable rotation again");
    result("key_rotation", true);
}
