//! Tests of the presign core: known answers, the seed, properties and the command line.
//!
//! One test binary (one link) with a module per concern.

mod cli;
mod known_answer;
mod properties;
mod seed_differential;
mod support;
