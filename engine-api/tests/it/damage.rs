//! Damaged files against the reference engine.

use engine_api::testing::damage::{DamageConfig, check};
use engine_api::testing::reference_factory;

#[test]
fn reference_engine_reports_or_survives_every_damage() {
    let report =
        check(&reference_factory(), &DamageConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.refused > 0 && report.opened > 0);
    eprintln!("{report}");
}
