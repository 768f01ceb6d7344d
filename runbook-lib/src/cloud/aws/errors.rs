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
            | "AuthorizationError" => CloudError::AccessDenied {
                action: action.to_string(),
                message,
            },
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
