"""Local stand-ins for AWS services the kernel calls, for end-to-end tests.

Each server binds 127.0.0.1 on a free port, serves from a daemon thread, and
speaks the service's wire protocol closely enough for the official SDKs
(boto3 and the AWS SDK for Rust) to be pointed at it with an endpoint URL.
Standard library only.
"""
