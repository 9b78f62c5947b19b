//! The engine-api conformance kit, under default options and under tiny files with an eager
//! background merge (plus tiny files with merges only on `compact`).

mod defaults {
    engine_api::conformance_tests!(engine_api::testing::with_read_only(
        crate::common::default_factory,
        crate::common::read_only_factory(crate::common::options)
    ));
}

mod tiny_files {
    engine_api::conformance_tests!(engine_api::testing::with_read_only(
        crate::common::tiny_factory,
        crate::common::read_only_factory(crate::common::tiny)
    ));
}

mod tiny_files_manual_merge {
    engine_api::conformance_tests!(engine_api::testing::with_read_only(
        crate::common::tiny_manual_factory,
        crate::common::read_only_factory(crate::common::tiny_manual)
    ));
}
