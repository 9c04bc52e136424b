//! The five products' access models of the scenarios, each end to end over
//! gRPC.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod scenario_app_roles;
mod scenario_commerce_groups;
mod scenario_hr_integration;
mod scenario_hr_service_user;
mod scenario_workforce_dual;
