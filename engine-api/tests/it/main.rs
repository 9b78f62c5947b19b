//! engine-api's integration tests: the conformance suite against the reference engine, and the
//! simulated storage's own behaviour.

mod reference {
    engine_api::conformance_tests!(engine_api::testing::reference_factory());
}

mod accounting;
mod damage;
mod failed_sync;
mod faults;
mod fuzz;
mod group_commit;
mod kill;
mod linearizability;
mod os_storage;
mod periodic;
mod sim_storage;
