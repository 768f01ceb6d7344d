//! The Security Runbook Jupyter kernel: protocol, magics and rendering.
//! It knows nothing of AWS APIs; the `runbook` library does the work.

pub mod context;
pub mod error;
pub mod exec;
pub mod install;
pub mod magics;
pub mod output;
pub mod protocol;
pub mod render;
pub mod rust_cells;
pub mod server;
pub mod session;
pub mod variables;
pub mod workflow;
