#!/usr/bin/env bash
# Starts the demo backends and a standalone proxy on examples/demo; Ctrl-C stops both.
set -euo pipefail
bin="${1:-target/debug}"
cd "$(dirname "$0")/.."
# The manifests: examples/demo (linked, so edits reload) and the demo's Gateway with a
# certificate made for this run (never kept in the repository).
run=$(mktemp -d)
backends=
trap 'kill $backends 2>/dev/null || true; rm -rf "$run"' EXIT INT TERM
ln -s "$PWD/examples/demo" "$run/examples"
"$bin/frontdesk-demo" tls "$run/tls" 8080 8443
"$bin/frontdesk-demo" &
backends=$!
sleep 0.5
cat <<MSG

frontdesk is serving examples/demo on http://127.0.0.1:8080 and https://localhost:8443
(admin on 127.0.0.1:9901).
Try:
  curl -i http://127.0.0.1:8080/api/products/1                 # PathPrefix + prefix rewrite
  curl -i http://127.0.0.1:8080/api/v2/products/2              # Template capture -> rewrite
  curl -i 'http://127.0.0.1:8080/api/reviews?productId=1'     # twice: Cache-Status says hit, Age counts
  curl -i 'http://127.0.0.1:8080/api/reviews?productId=1&utm_source=mail'   # the same cached answer
  curl -X POST '127.0.0.1:9901/cache/purge?prefix=http://127.0.0.1:8080/api/reviews'   # purge
  curl -i http://127.0.0.1:8080/api/inventory/3
  curl -i -H 'x-canary: true' http://127.0.0.1:8080/api/products/1   # header match, 50/50 split
  curl -i http://127.0.0.1:8080/v1/products                   # redirect
  curl -i http://127.0.0.1:8080/healthz                       # direct response
  curl -s http://127.0.0.1:8080/api/product-details/1         # Aggregate: 3 backends + a dependent call, one JSON
  curl -i http://127.0.0.1:8080/nope                          # 404 problem+json
  curl -i http://127.0.0.1:8080/partner/products              # 401: API key required
  curl -i -H 'x-api-key: demo-key-acme' http://127.0.0.1:8080/partner/products   # consumer acme
  curl -i -X POST -H 'x-api-key: demo-key-acme' http://127.0.0.1:8080/partner/products   # 403
  for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' -H 'x-api-key: demo-key-acme' http://127.0.0.1:8080/partner/products; done   # 200s, then 429 (burst 5 per partner)
  curl -i -X OPTIONS -H 'origin: https://shop.example.com' -H 'access-control-request-method: GET' -H 'access-control-request-headers: x-api-key' http://127.0.0.1:8080/partner/products   # CORS preflight: 204
  curl --http2-prior-knowledge http://127.0.0.1:8080/api/products
  $bin/frontdesk-demo grpc http://127.0.0.1:8080 get 2     # gRPC through the gateway (h2c backend)
  $bin/frontdesk-demo grpc http://127.0.0.1:8080 list      # a server stream
  curl -i http://127.0.0.1:8080/catalog/products/2         # REST/JSON transcoded to the gRPC GetProduct
  curl -s http://127.0.0.1:8080/catalog/products           # a server stream as a JSON array
  curl -i -X POST -d '{"id":"7","name":"Tamper","priceCents":2500}' http://127.0.0.1:8080/catalog/products
  printf '\0\0\0\0\3\n\0012' | base64 | curl -s -H 'content-type: application/grpc-web-text' --data-binary @- http://127.0.0.1:8080/demo.Catalog/GetProduct | base64 -d | od -c   # gRPC-Web (text) from curl
  curl --cacert "$run/tls/ca.crt" https://localhost:8443/api/products/1   # HTTPS (HTTP/2 by ALPN)
  curl http://127.0.0.1:9901/config                           # the snapshot serving
  curl http://127.0.0.1:9901/metrics
Edit examples/demo/routes.yaml while it runs: it reloads within a second.
Access log (JSON) follows; Ctrl-C to stop.

MSG
"$bin/frontdesk-proxy" --manifests "$run" --listen 127.0.0.1:8080 --admin 127.0.0.1:9901
