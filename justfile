# Lotsen's verbs. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Run all of Lotsen locally (lots dev) with the Norrköping example; `just run --demo` plays a scenario.
run *args:
    cargo run --locked -p lots-cli --bin lots -- dev {{args}}

# Run every test (unit, property and end-to-end) against real NATS and PostgreSQL.
test *args:
    cargo nextest run --workspace --locked --no-tests=pass {{args}}

# Benchmarks against real NATS and Postgres (release build): load, sla scale, then criterion.
# The load runs on a nats-server of its own (>= 2.10, from .ci/deps) on port 14222; see
# BENCHMARKS.md for every figure's own command.
bench:
    bash .ci/deps
    cargo build --release --locked -p lots-bench
    dir=$(mktemp -d) && (nats-server -js -a 127.0.0.1 -p 14222 -sd "$dir" >"$dir/log" 2>&1 & echo $! >"$dir/pid") \
      && trap 'kill $(cat "$dir/pid") 2>/dev/null || true; while kill -0 $(cat "$dir/pid") 2>/dev/null; do sleep 0.1; done; rm -rf "$dir" || true' EXIT \
      && for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/14222) 2>/dev/null && break; sleep 0.1; done \
      && kill -0 $(cat "$dir/pid") || { echo "nats-server did not start on 14222:"; cat "$dir/log"; exit 1; } \
      && ./target/release/lots-bench --nats nats://127.0.0.1:14222 load --tenants 4 --rates 100,200,1000 --seconds 60 --overload-of 100 \
      && ./target/release/lots-bench --nats nats://127.0.0.1:14222 load --workload restaurant --rates 50 --seconds 30 --overload-of 50 --closed-loop-clients 16 \
      && ./target/release/lots-bench --nats nats://127.0.0.1:14222 sla-scale
    cargo bench --locked -p lots-domain
    cargo bench --locked -p lots-routing --bench decide

# The fault suite's long version: each fault under 50 cases/s for 60 s, the example's officers
# copied 40 times, services built in release (see README "Scaling out").
chaos:
    LOTS_CHAOS=1 cargo nextest run --release --locked -p lots-e2e --no-capture -E 'test(/^faults::/)'

# Property-based fuzzing of the parsers (org numbers, tenant TOML, iCalendar, RegisterCase) with
# many more cases than `just test`, for at most `minutes`; a failing case is saved beside its
# test (tests/fuzz.proptest-regressions) and replayed first from then on: commit it.
fuzz cases="20000" minutes="10":
    cargo build --locked --tests -p lots-domain -p lots-intake
    status=0; LOTS_FUZZ_CASES={{cases}} timeout {{minutes}}m cargo nextest run --locked --profile fuzz -p lots-domain -p lots-intake -E 'test(/fuzz_/)' || status=$?; \
    if [ "$status" = 124 ]; then echo "fuzz: {{minutes}} minutes are up; no failure so far"; else exit "$status"; fi

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
