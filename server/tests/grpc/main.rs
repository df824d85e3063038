//! The `kestrel serve` server in process on 127.0.0.1:0, driven by the generated clients:
//! every rpc of Katib's three services, health and the management API, happy and error
//! paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod hostile;
mod katib_services;
mod manager;
mod suggestion;
