//! The `trace_context` target: [`eventsource_fuzz::trace_context`] says its input and its checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventsource_fuzz::trace_context::check(data));
