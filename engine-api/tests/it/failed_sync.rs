//! The failed-sync-then-reopen check against the reference engine.

use engine_api::testing::failed_sync::{FailedSyncConfig, check};
use engine_api::testing::reference_factory;

#[test]
fn reference_engine_survives_a_failed_sync_a_reopen_and_a_power_loss() {
    let report =
        check(&reference_factory(), &FailedSyncConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.failures > 0 && report.power_losses > 0);
    eprintln!("{report}");
}
