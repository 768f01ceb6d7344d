//! SDK errors turned into [`CloudError`]s that say what to do.

use aws_sdk_securityhub::error::{ProvideErrorMetadata, SdkError};

use crate::cloud::CloudError;

/// Error codes AWS uses for throttling across services.
const THROTTLING: &[&str] = &[
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
];

/// Error codes meaning the named resource (or configuration) does not exist.
const NOT_FOUND: &[&str] = &[
    "ResourceNotFoundException",
    "NotFoundException",
    // IAM (e.g. no account password policy)
    "NoSuchEntity",
    // EC2
    "InvalidGroup.NotFound",
    "InvalidSecurityGroupRuleId.NotFound",
    "InvalidPermission.NotFound",
    "InvalidNetworkInterfaceID.NotFound",
    // S3 Control
    "NoSuchPublicAccessBlockConfiguration",
];

/// Error codes meaning the request itself cannot succeed as asked.
const INVALID_INPUT: &[&str] = &[
    "InvalidInputException",
    "ValidationException",
    "InvalidParameterValue",
    "InvalidParameter",
    "InvalidParameterCombination",
    "MissingParameter",
    // IAM
    "ValidationError",
    "MalformedPolicyDocument",
    // EC2
    "InvalidGroupId.Malformed",
    "InvalidSecurityGroupRuleId.Malformed",
    "InvalidPermission.Duplicate",
    "InvalidPermission.Malformed",
    "RulesPerSecurityGroupLimitExceeded",
    // S3 Control
    "InvalidRequest",
    // GuardDuty answers most bad requests with this one code.
    "BadRequestException",
    // KMS
    "UnsupportedOperationException",
    "KMSInvalidStateException",
    "DisabledException",
    "InvalidArnException",
];

/// The error code of an SDK error, if the service sent one.
pub fn error_code<E, R>(error: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    error.code().filter(|c| !c.is_empty())
}

/// An access-denied answer: an explicit deny (which no Allow can fix) says which
/// kind of policy denied, as AWS's message names it; anything else is a missing Allow.
pub fn denied(action: &str, message: String) -> CloudError {
    const KINDS: &[&str] = &[
        "service control policy",
        "resource control policy",
        "permissions boundary",
        "session policy",
        "identity-based policy",
        "resource-based policy",
        "VPC endpoint policy",
    ];
    let lower = message.to_ascii_lowercase();
    let Some(at) = lower.find("explicit deny") else {
        return CloudError::AccessDenied {
            action: action.to_string(),
            message,
        };
    };
    let after = &lower[at..];
    let by = KINDS
        .iter()
        .find(|k| after.contains(&k.to_ascii_lowercase()))
        .map_or("a policy", |k| k);
    let article = if by.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let by = if by == "a policy" {
        by.to_string()
    } else {
        format!("{article} {by}")
    };
    // The action AWS names ("perform: ec2:Revoke...") beats the one we asked for.
    let named = message
        .split("perform: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|a| a.trim_end_matches([',', '.']).to_string())
        .filter(|a| a.contains(':'));
    CloudError::ExplicitDeny {
        action: named.unwrap_or_else(|| action.to_string()),
        by,
        message,
    }
}

/// Maps an SDK error from `action` (e.g. `securityhub:GetFindings`) in `region`.
pub fn cloud_error<E, R>(
    action: &str,
    service: &str,
    region: &str,
    error: SdkError<E, R>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(ref context) = error {
        let err = context.err();
        let code = err.code().unwrap_or_default();
        let message = err.message().unwrap_or_default().to_string();
        return match code {
            "AccessDeniedException"
            | "AccessDenied"
            | "UnauthorizedOperation"
            | "AuthorizationError" => denied(action, message),
            "InvalidAccessException" | "SubscriptionRequiredException" | "OptInRequired" => {
                CloudError::NotEnabled {
                    service: format!("{service} ({message})"),
                    region: region.to_string(),
                }
            }
            c if THROTTLING.contains(&c) => CloudError::Throttled {
                action: action.to_string(),
            },
            c if NOT_FOUND.contains(&c) => {
                CloudError::NotFound(format!("{action}: {code}: {message}"))
            }
            c if INVALID_INPUT.contains(&c) => {
                CloudError::InvalidInput(format!("{action}: {code}: {message}"))
            }
            "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "AuthFailure"
            | "InvalidAccessKeyId" => {
                CloudError::NoCredentials(format!("{action} was refused: {code}: {message}"))
            }
            "" => CloudError::Other(format!("{action} failed: {}", describe_chain(&error))),
            _ => CloudError::Other(format!("{action} failed: {code}: {message}")),
        };
    }
    let detail = describe_chain(&error);
    if detail.contains("credentials") || detail.contains("Credentials") {
        return CloudError::NoCredentials(detail);
    }
    match error {
        SdkError::TimeoutError(_) => CloudError::Other(format!("{action} timed out: {detail}")),
        SdkError::DispatchFailure(_) => CloudError::Other(format!(
            "cannot reach {service} in {region} for {action}: {detail}"
        )),
        _ => CloudError::Other(format!("{action} failed: {detail}")),
    }
}

/// The error and its sources, joined, since the SDK's top-level text is often vague.
fn describe_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_deny_names_the_policy_kind_and_the_action() {
        let message = "You are not authorized to perform this operation. User: arn:aws:sts::222222222222:assumed-role/SecurityRunbookMember/alice+plan-1 is not authorized to perform: ec2:RevokeSecurityGroupIngress on resource: arn:aws:ec2:us-east-1:222222222222:security-group/sg-1 with an explicit deny in a service control policy. Encoded authorization failure message: abc";
        match denied("ec2:RevokeSecurityGroupIngress", message.to_string()) {
            CloudError::ExplicitDeny { action, by, .. } => {
                assert_eq!(action, "ec2:RevokeSecurityGroupIngress");
                assert_eq!(by, "a service control policy");
            }
            other => panic!("{other:?}"),
        }
        let boundary = "User: x is not authorized to perform: kms:EnableKeyRotation on resource: k with an explicit deny in a permissions boundary";
        let err = denied("kms:EnableKeyRotation", boundary.to_string());
        assert!(
            err.to_string()
                .contains("explicit deny in a permissions boundary"),
            "{err}"
        );
        let implicit = "User: x is not authorized to perform: kms:EnableKeyRotation on resource: k because no identity-based policy allows the kms:EnableKeyRotation action";
        assert!(matches!(
            denied("kms:EnableKeyRotation", implicit.to_string()),
            CloudError::AccessDenied { .. }
        ));
    }
}
