//! The event types endpoints can subscribe to. An endpoint with an empty list gets all of them.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventType {
    pub name: &'static str,
    pub description: &'static str,
}

pub const NOTIFICATION_DELIVERED: &str = "notification.delivered";
pub const NOTIFICATION_DEAD_LETTERED: &str = "notification.dead_lettered";
pub const WORKFLOW_COMPLETED: &str = "workflow.completed";
pub const WORKFLOW_FAILED: &str = "workflow.failed";
pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";
pub const TEST_PING: &str = "test.ping";
pub const CUSTOMER_CREATED: &str = "customer.created";
pub const CUSTOMER_ONBOARDING_CANCELLED: &str = "customer.onboarding_cancelled";

/// Every event type, for the settings page and validation.
pub const CATALOGUE: &[EventType] = &[
    EventType { name: NOTIFICATION_DELIVERED, description: "A notification reached its recipient." },
    EventType { name: NOTIFICATION_DEAD_LETTERED, description: "A notification failed for the last time." },
    EventType { name: WORKFLOW_COMPLETED, description: "A workflow run finished successfully." },
    EventType { name: WORKFLOW_FAILED, description: "A workflow run failed." },
    EventType { name: ENDPOINT_DISABLED, description: "One of your endpoints was disabled after failing repeatedly." },
    EventType { name: TEST_PING, description: "Sent by \"Send test event\"." },
    EventType {
        name: CUSTOMER_CREATED,
        description: "The onboarding workflow created a customer account (confirm it with an inbound `crm` webhook).",
    },
    EventType { name: CUSTOMER_ONBOARDING_CANCELLED, description: "The onboarding workflow undid a customer account." },
];

pub fn is_known(name: &str) -> bool {
    CATALOGUE.iter().any(|e| e.name == name)
}
