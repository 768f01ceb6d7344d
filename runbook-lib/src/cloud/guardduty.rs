//! GuardDuty: the region's detector. The operations the catalog's steps use, with the AWS
//! implementation and the sandbox's side by side.

use async_trait::async_trait;

use super::aws::AwsCloud;
use super::aws::support::*;
use super::sandbox::Sandbox;
use super::sandbox::ops::*;
use super::{CloudError, Target};
use crate::resources::{DetectorStatus, GuardDutyDetector};

/// GuardDuty: the region's detector.
#[async_trait]
pub trait GuardDuty: Send + Sync {
    /// GuardDuty ListDetectors + GetDetector; None when the region has no detector.
    async fn guardduty_detector(
        &self,
        at: &Target,
    ) -> Result<Option<GuardDutyDetector>, CloudError>;

    /// GuardDuty CreateDetector (enabled); returns the detector id.
    async fn create_detector(&self, at: &Target) -> Result<String, CloudError>;

    /// GuardDuty UpdateDetector --enable / --no-enable.
    async fn set_detector_enabled(
        &self,
        at: &Target,
        detector_id: &str,
        enabled: bool,
    ) -> Result<(), CloudError>;

    /// GuardDuty DeleteDetector (the inverse of creating one).
    async fn delete_detector(&self, at: &Target, detector_id: &str) -> Result<(), CloudError>;
}

#[async_trait]
impl GuardDuty for AwsCloud {
    async fn guardduty_detector(
        &self,
        at: &Target,
    ) -> Result<Option<GuardDutyDetector>, CloudError> {
        let guardduty = self.clients(at).await?.guardduty;
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

    async fn create_detector(&self, at: &Target) -> Result<String, CloudError> {
        const ACTION: &str = "guardduty:CreateDetector";
        let output = self
            .clients(at)
            .await?
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

    async fn set_detector_enabled(
        &self,
        at: &Target,
        detector_id: &str,
        enabled: bool,
    ) -> Result<(), CloudError> {
        const ACTION: &str = "guardduty:UpdateDetector";
        self.clients(at)
            .await?
            .guardduty
            .update_detector()
            .detector_id(detector_id)
            .enable(enabled)
            .send()
            .await
            .map_err(|e| Self::detector_error(ACTION, at, detector_id, e))?;
        Ok(())
    }

    async fn delete_detector(&self, at: &Target, detector_id: &str) -> Result<(), CloudError> {
        const ACTION: &str = "guardduty:DeleteDetector";
        self.clients(at)
            .await?
            .guardduty
            .delete_detector()
            .detector_id(detector_id)
            .send()
            .await
            .map_err(|e| Self::detector_error(ACTION, at, detector_id, e))?;
        Ok(())
    }
}

#[async_trait]
impl GuardDuty for Sandbox {
    async fn guardduty_detector(
        &self,
        at: &Target,
    ) -> Result<Option<GuardDutyDetector>, CloudError> {
        self.with_state(|s| Ok(region(s, at)?.guardduty.clone()))
    }

    async fn create_detector(&self, at: &Target) -> Result<String, CloudError> {
        self.with_state_mut(|s| {
            let region = region_mut(s, at)?;
            if region.guardduty.is_some() {
                return Err(CloudError::InvalidInput(
                    "BadRequestException: the request is rejected because a detector already exists for the current account".to_string(),
                ));
            }
            let detector_id = format!("{:016x}{:016x}", fnv1a(1, at.account.as_str()), fnv1a(2, &at.region));
            region.guardduty = Some(GuardDutyDetector {
                detector_id: detector_id.clone(),
                status: DetectorStatus::Enabled,
                finding_publishing_frequency: "SIX_HOURS".to_string(),
            });
            Ok(detector_id)
        })
    }

    async fn set_detector_enabled(
        &self,
        at: &Target,
        detector_id: &str,
        enabled: bool,
    ) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            if let Some(d) = Self::detector_mut(s, at, detector_id)? {
                d.status = if enabled {
                    DetectorStatus::Enabled
                } else {
                    DetectorStatus::Disabled
                };
            }
            Ok(())
        })
    }

    async fn delete_detector(&self, at: &Target, detector_id: &str) -> Result<(), CloudError> {
        self.with_state_mut(|s| {
            *Self::detector_mut(s, at, detector_id)? = None;
            Ok(())
        })
    }
}
