//! What a family of controls declares, in its one file: see [`Family`].

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{Action, CatalogError, FamilyPlan, PlanRejection, PolicyCitation, PolicyValues};
use crate::cloud::sandbox::OrgState;
use crate::cloud::sandbox::controls::{ControlDef, Evaluation};
use crate::cloud::{Cloud, Target};
use crate::finding::{ControlId, Finding};
use crate::settings::Lang;

/// What a family needs to plan for one finding.
pub struct PlanRequest<'a> {
    pub finding: &'a Finding,
    /// The catalog's spelling of the finding's control, e.g. `IAM.15`.
    pub control: &'static str,
    pub cloud: &'a dyn Cloud,
    /// The finding's account and region: where every step acts.
    pub at: Target,
    pub lang: Lang,
    /// Organisation policy values from the knowledge base.
    pub policy: &'a PolicyValues,
}

/// What a family is, as data: its name, the controls it fixes and its title.
pub struct About {
    /// Short identifier, e.g. `kms_key_rotation`.
    pub name: &'static str,
    pub controls: &'static [&'static ControlDef],
    /// What is wrong when these controls fail, in a few words.
    pub title_en: &'static str,
    pub title_ja: &'static str,
}

/// One plan step as the model's tool schema offers it.
pub struct ToolSpec {
    /// The step's name (`Action::name`); the tool calls it by its snake_case form.
    pub step: &'static str,
    /// What it does, with the controls it is for, for the model.
    pub description: &'static str,
    /// JSON-schema properties of its parameters (besides `action`).
    pub properties: Value,
    pub required: &'static [&'static str],
}

/// Controls fixed the same way, declared in one file: the controls (with their
/// titles, severities and sandbox evaluation), how to plan a fix, what a model may
/// propose and how that is checked, and the texts in English and Japanese. Its
/// steps implement [`super::Step`].
#[async_trait]
pub trait Family: Sync {
    /// Its name, controls and title.
    fn about(&self) -> &'static About;

    /// Short identifier, e.g. `kms_key_rotation`.
    fn name(&self) -> &'static str {
        self.about().name
    }

    /// The Security Hub controls it fixes.
    fn controls(&self) -> &'static [&'static ControlDef] {
        self.about().controls
    }

    /// What is wrong when these controls fail, in a few words.
    fn title(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.about().title_en,
            Lang::Ja => self.about().title_ja,
        }
    }

    /// One tool-schema entry per plan step.
    fn tools(&self) -> Vec<ToolSpec>;

    /// The deterministic fix for a finding, from its live state.
    async fn plan(&self, req: &PlanRequest<'_>) -> Result<FamilyPlan, CatalogError>;

    /// A model's tool action (`step` is one of this family's plan steps, `input`
    /// its parameters) as a step, reading the live state where the step needs its
    /// prior state. Anything outside the finding is refused.
    async fn step_from_model(
        &self,
        step: &str,
        input: &Map<String, Value>,
        req: &PlanRequest<'_>,
    ) -> Result<(Action, Vec<PolicyCitation>), CatalogError>;

    /// Checks a plan step of this family against the finding.
    fn validate(
        &self,
        action: &Action,
        control: &ControlId,
        finding: &Finding,
    ) -> Result<(), PlanRejection>;

    /// What was found, why it matters, and next steps.
    fn explain(
        &self,
        finding: &Finding,
        control: &str,
        lang: Lang,
    ) -> (String, String, Vec<String>);

    /// The organisation policy parameters a control's plans take, if any.
    fn policy_parameters(&self, _control: &str) -> Option<Vec<&'static str>> {
        None
    }

    /// One instance of every step the family registers (plan and undo steps),
    /// for the completeness test and the documentation.
    fn examples(&self) -> Vec<Action>;

    /// How the sandbox account evaluates these controls.
    fn evaluate(&self, state: &OrgState) -> Vec<Evaluation>;
}
