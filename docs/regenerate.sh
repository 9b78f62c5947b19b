#!/usr/bin/env bash
# Regenerates every measured number in the book: the comparison report and charts under
# docs/results/ (bench-harness, with fjall as the yardstick), then docs/tradeoffs.md from its
# template. Takes several minutes; run it on an otherwise idle machine and commit the results.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p bench-harness --features fjall -- compare --out docs/results "$@"
cargo run --release -p docs --bin guide
