# frontdesk — the front door. `make demo` runs the gateway on the embedded demo,
# `make test` runs every test. See README.md.
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: demo test lint fmt crds deploy check-packaging images e2e-kind conformance bench bench-slowhttp bench-tls bench-cache bench-grpc bench-controller fuzz build clean

## demo: build, start the demo backends and a standalone proxy on examples/demo
demo:
	$(CARGO) build -p frontdesk-proxy -p frontdesk-demo
	scripts/demo.sh "$(TARGET_DIR)/debug"

## test: every test (unit, golden, CRD drift, real proxy processes and redis-server on 127.0.0.1,
## the e2e scenarios against local processes, the offline chart and manifest checks)
test:
	scripts/install-deps.sh test   # redis-server (rate limit tests), nginx, curl, python3 + venv
	$(MAKE) check-packaging
	$(CARGO) build --workspace --bins   # the e2e tests run these binaries as real processes
	$(CARGO) test --workspace --lib --bins --tests
	$(CARGO) test --workspace --doc

## check-packaging: render and lint the chart with Helm's engine, validate every rendered object,
## deploy/install.yaml and examples/ + e2e/ manifests against the Kubernetes and CRD schemas
check-packaging:
	scripts/venv.sh
	.venv/bin/python scripts/packaging-checks.py check

## deploy: regenerate deploy/install.yaml from the chart (commit the result)
deploy:
	scripts/venv.sh
	.venv/bin/python scripts/packaging-checks.py render-install

## images: the controller, proxy and demo container images (needs a Docker engine)
images:
	scripts/build-images.sh

## e2e-kind: the e2e scenarios on a kind cluster (needs Docker, kind, kubectl, helm)
e2e-kind:
	scripts/e2e-kind.sh

## conformance: e2e-kind, then the Gateway API conformance suite on that cluster (also needs go
## and cloud-provider-kind running); the report lands in target/conformance/report.yaml
conformance:
	E2E_CONFORMANCE=1 GATEWAY_API_VERSION=$${GATEWAY_API_VERSION:-v1.6.3} scripts/e2e-kind.sh

## lint: formatting and clippy with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## crds: regenerate charts/frontdesk/crds from the Rust types (commit the result)
crds:
	$(CARGO) run -q -p frontdesk-crds --bin crdgen -- charts/frontdesk/crds

## bench: frontdesk vs direct vs nginx, side by side (installs wrk, hey, nginx, h2load)
bench:
	bench/run.sh
	BENCH_SKIP_BUILD=1 bench/tls.sh
	BENCH_SKIP_BUILD=1 bench/cache.sh
	$(CARGO) build -q --release -p frontdesk-demo --bin frontdesk-demo
	BENCH_SKIP_BUILD=1 bench/grpc.sh
	$(CARGO) bench -q -p frontdesk-proxy --bench route_lookup
	$(CARGO) bench -q -p frontdesk-proxy --bench jwt_verify
	$(CARGO) build -q --release -p frontdesk-proxy
	$(CARGO) bench -q -p frontdesk-e2e --bench aggregate

## bench-slowhttp: how long slow-header, slow-body and slow-read clients (slowhttptest) hold a
## connection on frontdesk and on nginx, both at default timeouts (~8 min; installs slowhttptest)
bench-slowhttp:
	bench/slowhttp.sh

## bench-cache: cache hits, frontdesk (a Policy cache section) against nginx's proxy_cache
bench-cache:
	bench/cache.sh

## bench-grpc: gRPC unary calls (h2load -c4 -m16 over h2c), direct to the demo backend and through
## frontdesk (a grpc route to an h2c backend): calls/s, CPU-us per call (installs nghttp2-client)
bench-grpc:
	bench/grpc.sh

## bench-tls: TLS termination, frontdesk (a Gateway's HTTPS listener) against nginx with the same
## certificate (ECDSA P-256 and RSA 2048): keep-alive req/s and CPU, full handshakes per second
bench-tls:
	scripts/install-deps.sh bench
	bench/tls.sh

## fuzz: each fuzz target under libFuzzer for FUZZ_SECONDS (default 300) from the committed
## corpus (new inputs go to fuzz/corpus/, not committed); needs
## a nightly toolchain (cargo-fuzz is installed if missing). A crash lands in fuzz/artifacts/:
## fix it and add the input to fuzz-targets/corpus/<target>/ (make test runs the corpus).
FUZZ_SECONDS ?= 300
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	for t in path manifests snapshot wire; do \
	  mkdir -p fuzz/corpus/$$t && (cd fuzz && cargo +nightly fuzz run $$t corpus/$$t ../fuzz-targets/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS)) || exit 1; \
	done

## bench-controller: compile time for 10,000 Routes and 10,000 HTTPRoutes, propagation to proxies for 1,000 of each
bench-controller:
	$(CARGO) build --release -p frontdesk-controller -p frontdesk-proxy
	$(CARGO) bench -q -p frontdesk-e2e --bench controller

build:
	$(CARGO) build --workspace --release

clean:
	$(CARGO) clean
