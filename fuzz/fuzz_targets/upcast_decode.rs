//! The `upcast_decode` target: [`eventsource_fuzz::upcast_decode`] says its input and its checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventsource_fuzz::upcast_decode::check(data));
