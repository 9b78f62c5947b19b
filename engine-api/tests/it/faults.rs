//! Fault sweeps against the reference engine.

use engine_api::testing::faults::{FaultConfig, sweep};
use engine_api::testing::reference_factory;

#[test]
fn reference_engine_survives_every_fault() {
    let report =
        sweep(&reference_factory(), &FaultConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.faults_injected > 0 && report.disk_full > 0 && report.poison_checks > 0);
    eprintln!("{report}");
}
