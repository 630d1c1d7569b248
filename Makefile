# meshd: the two set-up commands are `make run` and `make test`.
.PHONY: run test build bench conformance lint

# Runs `meshd serve` on its embedded defaults (certificates created under certs/ on first start).
run:
	cargo run --release -- serve

# Runs every test (installs what the tests need first).
test:
	scripts/test.sh

build:
	cargo build --release

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

bench:
	cargo bench --bench inject
	scripts/bench-https.sh

# Istio's reference cases; needs the ../shared kit beside the checkout.
conformance: build
	../shared/conformance/inject/run --meshd target/release/meshd
