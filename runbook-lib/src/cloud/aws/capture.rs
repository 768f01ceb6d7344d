//! Keeps the raw JSON body of a response. Findings are read from the ASFF JSON
//! exactly as Security Hub sent it, so the same parser serves the sandbox and AWS,
//! and the finding shown (or given to a model) is the real one, not a re-encoding.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Clone, Default)]
pub struct CaptureBody {
    body: Arc<Mutex<Option<Vec<u8>>>>,
}

impl CaptureBody {
    /// The body of the last successful attempt.
    pub fn take(&self) -> Option<Vec<u8>> {
        self.body.lock().ok().and_then(|mut b| b.take())
    }
}

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "CaptureBody"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The orchestrator has read a non-streaming body into memory by now.
        if let Some(bytes) = context.response().body().bytes()
            && let Ok(mut slot) = self.body.lock()
        {
            *slot = Some(bytes.to_vec());
        }
        Ok(())
    }
}
