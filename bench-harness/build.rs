//! Takes each peer's exact version from the workspace's `Cargo.lock`, so the report names the
//! release that was really built rather than one typed by hand. Exposed to the crate as
//! `PEER_VERSION_<CRATE>` (`-` becomes `_`); "unknown" where the lock file does not say.

use std::path::Path;

const PEERS: [&str; 4] = ["fjall", "rocksdb", "librocksdb-sys", "redb"];

fn main() {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    println!("cargo::rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    for name in PEERS {
        let version = locked_version(&text, name).unwrap_or("unknown");
        let var = name.replace('-', "_").to_ascii_uppercase();
        println!("cargo::rustc-env=PEER_VERSION_{var}={version}");
    }
}

/// The version of the package called `name` in a `Cargo.lock` (the first, if several).
fn locked_version<'a>(lock: &'a str, name: &str) -> Option<&'a str> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    lines.find(|line| line.trim() == wanted)?;
    let version = lines.next()?.trim().strip_prefix("version = \"")?;
    version.strip_suffix('"')
}
