#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bitcask_engine::fuzzing::merge_commit(data);
});
