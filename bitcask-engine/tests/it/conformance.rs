//! The engine-api conformance kit, under default options and under tiny files with an eager
//! background merge (plus tiny files with merges only on `compact`).

mod defaults {
    engine_api::conformance_tests!(crate::common::default_factory);
}

mod tiny_files {
    engine_api::conformance_tests!(crate::common::tiny_factory);
}

mod tiny_files_manual_merge {
    engine_api::conformance_tests!(crate::common::tiny_manual_factory);
}
