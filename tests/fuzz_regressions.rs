//! Regression tests for defects the fuzz targets found, each named after
//! its bug. They include the fuzz crate's harness files, so each replays
//! its reproducer exactly as the target ran it.

#[allow(dead_code)]
#[path = "../fuzz/src/conn_driver.rs"]
mod conn_driver;
#[allow(dead_code)]
#[path = "../fuzz/src/ws_model.rs"]
mod ws_model;
