#!/usr/bin/env bash
# Regenerates every measured number in the book: the comparison report and charts under
# docs/results/ (bench-harness, with the peer engines as yardsticks), then docs/tradeoffs.md
# from its template. Takes several minutes; run it on an otherwise idle machine and commit the
# results. The committed results include RocksDB, which compiles from C++ source (about 13
# minutes the first time) and needs libclang:  FEATURES=fjall,rocksdb docs/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p bench-harness --features "${FEATURES:-fjall}" -- compare --out docs/results "$@"
cargo run --release -p docs --bin guide
