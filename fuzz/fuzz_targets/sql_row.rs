//! The `sql_row` target: [`eventsource_fuzz::sql_row`] says its input and its checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventsource_fuzz::sql_row::check(data));
