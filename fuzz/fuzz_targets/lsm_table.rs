#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lsm_engine::fuzzing::table(data);
});
