//! Workflows that ship with the product, as the TOML a user could have written.

use crate::definition::WorkflowDefinition;

/// The customer onboarding example (see the comments in the file).
pub const ONBOARDING_TOML: &str = include_str!("onboarding.toml");

pub fn onboarding() -> WorkflowDefinition {
    WorkflowDefinition::from_toml(ONBOARDING_TOML).expect("the built-in onboarding workflow is valid")
}

/// Every built-in workflow as (name, TOML source), for installing them for a user.
pub fn all() -> Vec<(&'static str, &'static str)> {
    vec![("customer_onboarding", ONBOARDING_TOML)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Action;

    #[test]
    fn onboarding_is_valid_and_has_the_four_steps() {
        let d = onboarding();
        let names: Vec<&str> = d.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["create_account", "send_welcome", "notify_crm", "wait_crm_confirmation"]);
        assert!(matches!(d.steps[3].action, Action::WaitInbound { .. }));
        assert!(d.steps[..3].iter().all(|s| s.compensate.is_some()), "everything before the wait can be undone");
        assert_eq!(all()[0].0, d.name);
    }
}
