//! Empty library target: it lets `recorder` declare a build-dependency on this package so that
//! cargo rebuilds the eBPF binary (src/main.rs) when it changes.
#![no_std]
