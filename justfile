# Lotsen's verbs. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Run all of Lotsen locally (lots dev) with the Norrköping example; `just run --demo` plays a scenario.
run *args:
    cargo run --locked -p lots-cli --bin lots -- dev {{args}}

# Run every test (unit, property and end-to-end) against real NATS and PostgreSQL.
test *args:
    cargo nextest run --workspace --locked --no-tests=pass {{args}}

# Benchmarks against real NATS and Postgres (release build): load, sla scale, then criterion.
bench:
    cargo build --release --locked -p lots-bench
    ./target/release/lots-bench load
    ./target/release/lots-bench sla-scale
    cargo bench --locked -p lots-domain
    cargo bench --locked -p lots-routing --bench decide

# Formatting check and clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Download every dependency once, so later builds can run offline.
fetch:
    cargo fetch --locked

# Start the local servers the tests and `just run` use, if they are not running.
deps:
    bash .ci/deps

# Everything CI checks.
verify: lint test
