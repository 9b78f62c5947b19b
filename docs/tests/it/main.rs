//! Runs every example under `examples/` as a test, so an example that stops working fails CI
//! rather than a reader.

#[path = "../../../examples/embed.rs"]
mod embed;

#[path = "../../../examples/sync_policy.rs"]
mod sync_policy;

#[path = "../../../examples/stats.rs"]
mod stats;

#[path = "../../../examples/custom_workload.rs"]
mod custom_workload;

#[test]
fn example_embed() {
    embed::main().expect("the embed example");
}

#[test]
fn example_sync_policy() {
    sync_policy::main().expect("the sync_policy example");
}

#[test]
fn example_stats() {
    stats::main().expect("the stats example");
}

#[test]
fn example_custom_workload() {
    custom_workload::main().expect("the custom_workload example");
}
