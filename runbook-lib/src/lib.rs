//! The security runbook library: findings, remediation plans, execution and audit.
//! It knows nothing of Jupyter; the kernel crate renders what it returns.

pub mod advisor;
pub mod agent;
pub mod approval;
pub mod audit;
pub mod catalog;
pub mod cloud;
pub mod execute;
pub mod export;
pub mod finding;
pub mod iac;
pub mod kb;
pub mod plan;
pub mod planner;
pub mod recover;
pub mod resources;
pub mod rollout;
pub mod settings;
pub mod severity;

pub use finding::{AccountId, ControlId, Finding, FindingFilter, FindingRef};
pub use severity::Severity;

/// The library version, shown by the kernel.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
