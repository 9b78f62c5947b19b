#!/usr/bin/env bash
# Regenerates every measured number in the book: the comparison report and charts under
# docs/results/ (bench-harness, with the peer engines as yardsticks), then docs/tradeoffs.md
# from its template. Takes several minutes; run it on an otherwise idle machine and commit the
# results. The committed results include every peer at three repeats; RocksDB compiles from C++
# source (13 to 22 minutes the first time) and needs libclang:
#   FEATURES=fjall,rocksdb,redb docs/regenerate.sh --repeat 3
# (set CARGO_TARGET_DIR to a target directory that already holds the RocksDB build to reuse it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p bench-harness --features "${FEATURES:-fjall,redb}" -- compare --out docs/results "$@"
cargo run --release -p docs --bin guide
