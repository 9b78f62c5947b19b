//! Test kit (feature `testing`): a conformance suite every [`crate::Engine`] must pass, a
//! model-based test against `BTreeMap` with reopen, compact and crash steps, and a small
//! reference engine that proves the kit and serves host code as a test double.
//!
//! An engine crate runs the whole suite with one macro call:
//!
//! ```text
//! mod conformance {
//!     engine_api::conformance_tests!(my_engine_factory());
//! }
//! ```
//!
//! where the factory is anything implementing [`EngineFactory`], such as a closure
//! `|storage, dir, sync| -> Result<Box<dyn Engine>>`.

pub mod conformance;
pub mod crash_points;
pub mod damage;
pub mod failed_sync;
pub mod faults;
pub mod fuzz;
pub mod gate;
pub mod hooked;
pub mod kill;
pub mod linearizability;
pub mod model;
mod reference;
mod rng;

use std::path::Path;
use std::sync::Arc;

pub use reference::RefEngine;

use crate::{CommonOptions, Engine, Result, Storage, SyncPolicy};

/// Opens an engine of the kind under test, on the given storage, directory and policy, with
/// whatever engine-specific options the test chose (tiny files, tiny memtables, ...).
pub trait EngineFactory: Send + Sync {
    /// Opens (creating if needed) the engine in `dir`.
    ///
    /// # Errors
    /// Whatever the engine's open returns.
    fn open(
        &self,
        storage: Arc<dyn Storage>,
        dir: &Path,
        sync: SyncPolicy,
    ) -> Result<Box<dyn Engine>>;

    /// Opens the existing engine in `dir` read-only ([`CommonOptions::read_only`]), or `None`
    /// if this factory cannot (a plain closure cannot: wrap it with [`with_read_only`]). The
    /// conformance check [`conformance::read_only_open_writes_nothing`] fails on `None`.
    fn open_read_only(
        &self,
        storage: Arc<dyn Storage>,
        dir: &Path,
    ) -> Option<Result<Box<dyn Engine>>> {
        let _ = (storage, dir);
        None
    }
}

/// A factory for read-write opens joined with one for read-only opens: see [`with_read_only`].
pub struct WithReadOnly<F, G> {
    read_write: F,
    read_only: G,
}

/// Joins a read-write factory with a read-only one (`|storage, dir| -> Result<Box<dyn Engine>>`,
/// opening with [`CommonOptions::read_only`] set and otherwise the same options).
pub fn with_read_only<F, G>(read_write: F, read_only: G) -> WithReadOnly<F, G>
where
    F: EngineFactory,
    G: Fn(Arc<dyn Storage>, &Path) -> Result<Box<dyn Engine>> + Send + Sync,
{
    WithReadOnly {
        read_write,
        read_only,
    }
}

impl<F, G> EngineFactory for WithReadOnly<F, G>
where
    F: EngineFactory,
    G: Fn(Arc<dyn Storage>, &Path) -> Result<Box<dyn Engine>> + Send + Sync,
{
    fn open(
        &self,
        storage: Arc<dyn Storage>,
        dir: &Path,
        sync: SyncPolicy,
    ) -> Result<Box<dyn Engine>> {
        self.read_write.open(storage, dir, sync)
    }

    fn open_read_only(
        &self,
        storage: Arc<dyn Storage>,
        dir: &Path,
    ) -> Option<Result<Box<dyn Engine>>> {
        Some((self.read_only)(storage, dir))
    }
}

impl<F> EngineFactory for F
where
    F: Fn(Arc<dyn Storage>, &Path, SyncPolicy) -> Result<Box<dyn Engine>> + Send + Sync,
{
    fn open(
        &self,
        storage: Arc<dyn Storage>,
        dir: &Path,
        sync: SyncPolicy,
    ) -> Result<Box<dyn Engine>> {
        self(storage, dir, sync)
    }
}

/// The factory for [`RefEngine`], read-write and read-only.
pub fn reference_factory() -> impl EngineFactory {
    let read_write =
        |storage: Arc<dyn Storage>, dir: &Path, sync: SyncPolicy| -> Result<Box<dyn Engine>> {
            let options = CommonOptions {
                sync,
                storage,
                ..CommonOptions::default()
            };
            Ok(Box::new(RefEngine::open(dir, options)?))
        };
    let read_only = |storage: Arc<dyn Storage>, dir: &Path| -> Result<Box<dyn Engine>> {
        let options = CommonOptions {
            storage,
            read_only: true,
            ..CommonOptions::default()
        };
        Ok(Box::new(RefEngine::open(dir, options)?))
    };
    with_read_only(read_write, read_only)
}

/// Generates one `#[test]` per conformance check, for the given factory expression. Call it
/// inside a module of an integration test; the factory expression is evaluated once per test.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@each $factory;
            basic_semantics, limits_are_enforced, batches_are_atomic_and_ordered,
            scans_at_the_edges, scan_sees_a_consistent_view, overwrite_and_delete_churn,
            reopen_keeps_everything, second_open_is_locked, failed_sync_poisons,
            always_policy_survives_power_loss, sync_makes_never_policy_durable,
            concurrent_writers_and_readers, stats_count_user_bytes, model_always,
            model_never, crash_at_every_durability_point, writes_visible_only_once_durable,
            read_only_open_writes_nothing, read_only_open_after_a_crash_writes_nothing,
            periodic_policy_loses_at_most_one_period,
            new_directory_survives_power_loss);
    };
    (@each $factory:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                $crate::testing::conformance::$check(&$factory);
            }
        )*
    };
}
