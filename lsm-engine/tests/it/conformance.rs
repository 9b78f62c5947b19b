//! The engine-api conformance suite under default options and under tiny sizes (constant
//! rotation, flushes, manifest rollovers and multi-file compactions).

mod default_options {
    engine_api::conformance_tests!(crate::common::with_read_only(
        crate::common::default_factory(),
        crate::common::default_options
    ));
}

mod tiny_sizes {
    engine_api::conformance_tests!(crate::common::with_read_only(
        crate::common::tiny_factory(),
        crate::common::tiny_options
    ));
}
