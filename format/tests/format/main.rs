//! Integration tests of the capture format, in one test binary.

mod checksum;
mod common;
mod errors;
mod fixture;
mod recover;
mod roundtrip;
