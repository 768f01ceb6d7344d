//! Choosing the backend from the settings: sandbox, AWS, or auto (AWS when the
//! default credential chain has credentials, the sandbox otherwise).

use std::sync::Arc;

use crate::cloud::aws::{AwsCloud, load_sdk_config, probe_credentials};
use crate::cloud::{BackendInfo, Cloud, CloudError, MemberRole, Sandbox};
use crate::settings::{BackendChoice, FindingsApi, SettingKey, Settings};

/// The settings that decide which backend is built.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    backend: BackendChoice,
    region: Option<String>,
    profile: Option<String>,
    member_role: MemberRole,
    findings_api: FindingsApi,
}

impl Key {
    fn of(settings: &Settings) -> Key {
        Key {
            backend: settings.backend,
            region: settings.region.clone(),
            profile: settings.profile.clone(),
            member_role: MemberRole {
                name: settings.member_role.clone(),
                external_id: settings.external_id.clone(),
            },
            findings_api: settings.findings_api,
        }
    }
}

/// A backend in use and why it was chosen.
#[derive(Clone)]
pub struct Connected {
    pub cloud: Arc<dyn Cloud>,
    pub reason: String,
}

impl Connected {
    pub fn describe(&self) -> BackendInfo {
        BackendInfo {
            reason: self.reason.clone(),
            ..self.cloud.describe()
        }
    }
}

/// The session's backends. The sandbox lives as long as the session, so the
/// changes made to it survive switching backends back and forth.
pub struct Clouds {
    sandbox: Arc<Sandbox>,
    current: Option<(Key, Connected)>,
}

impl Default for Clouds {
    fn default() -> Self {
        Clouds::new(Sandbox::new())
    }
}

impl Clouds {
    pub fn new(sandbox: Sandbox) -> Clouds {
        Clouds {
            sandbox: Arc::new(sandbox),
            current: None,
        }
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// The backend chosen so far, without connecting.
    pub fn current(&self) -> Option<&Connected> {
        self.current.as_ref().map(|(_, c)| c)
    }

    /// The backend for these settings, connecting (and probing credentials) only
    /// when the deciding settings changed.
    pub async fn get(&mut self, settings: &Settings) -> Result<Connected, CloudError> {
        let key = Key::of(settings);
        self.sandbox.set_member_role(&settings.member_role);
        if let Some((cached, connected)) = &self.current
            && *cached == key
        {
            return Ok(connected.clone());
        }
        let connected = self.connect(settings).await?;
        self.current = Some((key, connected.clone()));
        Ok(connected)
    }

    fn sandbox_with(&self, reason: String) -> Connected {
        Connected {
            cloud: self.sandbox.clone(),
            reason,
        }
    }

    async fn connect(&self, settings: &Settings) -> Result<Connected, CloudError> {
        let source = settings.source(SettingKey::Backend);
        match settings.backend {
            BackendChoice::Sandbox => Ok(self.sandbox_with(format!(
                "backend=sandbox (set by {source}): the built-in simulated organisation; nothing touches AWS"
            ))),
            BackendChoice::Aws => {
                let sdk = load_sdk_config(settings).await;
                let reason = format!("backend=aws (set by {source}): the default credential chain");
                let cloud = AwsCloud::new(&sdk, reason.clone())?
                    .with_member_role(Key::of(settings).member_role)
                    .with_findings_api(settings.findings_api);
                Ok(Connected {
                    cloud: Arc::new(cloud),
                    reason,
                })
            }
            BackendChoice::Auto => {
                let sdk = load_sdk_config(settings).await;
                match probe_credentials(&sdk).await {
                    Ok(found) => {
                        let reason = format!("backend=auto: {found}, so AWS is used");
                        let cloud = AwsCloud::new(&sdk, reason.clone())?
                            .with_member_role(Key::of(settings).member_role)
                    .with_findings_api(settings.findings_api);
                        Ok(Connected {
                            cloud: Arc::new(cloud),
                            reason,
                        })
                    }
                    Err(why) => Ok(self.sandbox_with(format!(
                        "backend=auto: no AWS credentials ({why}), so the built-in sandbox is used"
                    ))),
                }
            }
        }
    }
}
