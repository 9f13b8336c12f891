//! Integration tests of the service: the real server on 127.0.0.1, called over HTTP.
//!
//! One test binary with a module per concern (see STYLE.md).

mod auth;
mod bodies;
mod browser;
mod client;
mod companion;
mod config;
mod container;
mod deploy;
mod dev;
mod doctor;
mod e2e;
mod events;
mod events_shared;
mod fake_store;
mod faults;
mod health;
mod helpers;
mod integrity;
mod integrity_in_process;
mod multipart;
mod observability;
mod openapi;
mod races;
mod receiver;
mod scale;
mod schemathesis;
mod store;
mod traces;
mod uploads;
mod uppy;
mod walkthrough;
