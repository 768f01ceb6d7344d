//! S3 Control's endpoint, kept reachable when the endpoint URL is an IP address.
//!
//! S3 Control's endpoint rules put the account id in front of the host name:
//! `https://{AccountId}.s3-control.{region}.amazonaws.com`, and with an endpoint
//! override (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3_CONTROL`) they do the same to
//! the override: `http://123456789012.127.0.0.1:5000`, which no resolver can find.
//! (The SDK has no `disable_host_prefix` switch: the prefix comes from the
//! endpoint rule set, driven by the operation's `RequiresAccountId` parameter.)
//!
//! We wrap the generated resolver rather than rewrite URIs in an interceptor: the
//! endpoint is decided once, before signing, so the signed `Host` matches the
//! request and the auth scheme (signing name `s3`, region) still comes from the
//! rules. Only when the override's host is an IP literal or `localhost`, hosts
//! that can never carry a DNS label in front, do we resolve with
//! `RequiresAccountId=false`; the account id still travels in the
//! `x-amz-account-id` header, which is what S3 Control (and moto) read. Real AWS
//! endpoints and DNS-named overrides (such as VPC endpoints) resolve exactly as the
//! SDK would.

use std::net::IpAddr;

use aws_sdk_s3control::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_smithy_runtime_api::client::endpoint::EndpointFuture;

#[derive(Debug, Default)]
pub struct S3ControlEndpoint {
    rules: DefaultResolver,
}

impl ResolveEndpoint for S3ControlEndpoint {
    fn resolve_endpoint<'a>(&'a self, params: &'a Params) -> EndpointFuture<'a> {
        if !params.endpoint().is_some_and(host_takes_no_prefix) {
            return ResolveEndpoint::resolve_endpoint(&self.rules, params);
        }
        match without_account_prefix(params) {
            Ok(local) => EndpointFuture::new(Box::pin(async move {
                ResolveEndpoint::resolve_endpoint(&self.rules, &local).await
            })),
            Err(e) => EndpointFuture::ready(Err(e.into())),
        }
    }
}

/// The same parameters, asking for no account id in the host name.
fn without_account_prefix(
    params: &Params,
) -> Result<Params, aws_sdk_s3control::config::endpoint::InvalidParams> {
    Params::builder()
        .set_region(params.region().map(str::to_string))
        .set_use_fips(params.use_fips())
        .set_use_dual_stack(params.use_dual_stack())
        .set_endpoint(params.endpoint().map(str::to_string))
        .set_account_id(params.account_id().map(str::to_string))
        .set_requires_account_id(Some(false))
        .set_outpost_id(params.outpost_id().map(str::to_string))
        .set_bucket(params.bucket().map(str::to_string))
        .set_access_point_name(params.access_point_name().map(str::to_string))
        .set_use_arn_region(params.use_arn_region())
        .set_resource_arn(params.resource_arn().map(str::to_string))
        .set_use_s3_express_control_endpoint(params.use_s3_express_control_endpoint())
        .build()
}

/// Whether the endpoint URL's host is an IP address or `localhost`.
fn host_takes_no_prefix(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(endpoint: Option<&str>) -> String {
        let mut params = Params::builder()
            .region("us-east-1")
            .account_id("123456789012")
            .requires_account_id(true);
        if let Some(e) = endpoint {
            params = params.endpoint(e);
        }
        let params = params.build().expect("valid params");
        let resolver = S3ControlEndpoint::default();
        let future = resolver.resolve_endpoint(&params);
        let endpoint = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
            .expect("resolved");
        endpoint.url().to_string()
    }

    #[test]
    fn real_aws_keeps_the_account_prefix() {
        assert_eq!(
            resolve(None),
            "https://123456789012.s3-control.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn the_rules_alone_would_prefix_an_ip_address() {
        let params = Params::builder()
            .region("us-east-1")
            .account_id("123456789012")
            .requires_account_id(true)
            .endpoint("http://127.0.0.1:5000")
            .build()
            .expect("valid params");
        let endpoint = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(ResolveEndpoint::resolve_endpoint(
                &DefaultResolver::new(),
                &params,
            ))
            .expect("resolved");
        assert_eq!(endpoint.url(), "http://123456789012.127.0.0.1:5000");
    }

    #[test]
    fn dns_named_overrides_keep_the_account_prefix() {
        assert_eq!(
            resolve(Some("https://control.example.com")),
            "https://123456789012.control.example.com"
        );
    }

    #[test]
    fn ip_and_localhost_overrides_are_used_as_given() {
        assert_eq!(
            resolve(Some("http://127.0.0.1:5000")),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            resolve(Some("http://localhost:5000")),
            "http://localhost:5000"
        );
        assert_eq!(resolve(Some("http://[::1]:5000")), "http://[::1]:5000");
    }

    #[test]
    fn hosts_are_read_from_urls() {
        assert!(host_takes_no_prefix("http://127.0.0.1:5000/"));
        assert!(host_takes_no_prefix("http://user@10.0.0.1"));
        assert!(host_takes_no_prefix("http://[::1]:80"));
        assert!(host_takes_no_prefix("LOCALHOST"));
        assert!(!host_takes_no_prefix(
            "https://s3-control.us-east-1.amazonaws.com"
        ));
        assert!(!host_takes_no_prefix("https://127.0.0.1.nip.io"));
    }
}
