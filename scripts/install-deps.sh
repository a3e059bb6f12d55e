#!/usr/bin/env bash
# Install the system packages that frontdesk's tests and benchmarks need, only when missing.
#
#   scripts/install-deps.sh test    nginx, curl, python3 (with venv), redis-server   (tests)
#   scripts/install-deps.sh bench   the above + wrk, hey, slowhttptest, openssl, h2load
#                                   (bench/run.sh, bench/slowhttp.sh, bench/tls.sh, bench/grpc.sh;
#                                   h2load comes in Debian's nghttp2-client)
#
# Idempotent: does nothing when every tool is present; runs `apt-get update` at most once and only
# when something must be installed. Works as root, or through sudo when not root.
# nginx is used only as a contender/backend started by our own scripts with their own config
# (bench/*.conf.tmpl); the Debian package starts a system nginx on port 80, so we stop and disable
# it right after installing. Nothing relies on that system service. The same goes for redis-server:
# tests start their own on free ports; the Debian service is stopped and disabled.
set -euo pipefail

mode="${1:-test}"
case "$mode" in
  test)  wanted=(nginx curl python3 python3-venv redis-server) ;;
  bench) wanted=(nginx curl python3 python3-venv redis-server wrk hey slowhttptest openssl h2load) ;;
  *) echo "usage: $0 test|bench" >&2; exit 2 ;;
esac

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  SUDO=()
fi

# tool -> Debian package, and how to tell the tool is there
pkg_for() {   # a tool's Debian package has the tool's name, but h2load's (nghttp2-client)
  case "$1" in
    h2load) echo nghttp2-client ;;
    *) echo "$1" ;;
  esac
}
have() {
  case "$1" in
    nginx) [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 ;;
    # scripts/venv.sh needs `python3 -m venv` with pip (Debian splits it out of python3).
    python3-venv) python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
for tool in "${wanted[@]}"; do
  have "$tool" || missing+=("$tool")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all present (${wanted[*]})"
  exit 0
fi

if [[ $(id -u) -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
  echo "install-deps: missing ${missing[*]}, and not root and no sudo: install them by hand" >&2
  exit 1
fi

pkgs=()
for tool in "${missing[@]}"; do pkgs+=("$(pkg_for "$tool")"); done
echo "install-deps: installing ${pkgs[*]}"

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# policy-rc.d exit 101 keeps the package's postinst from starting services (where invoke-rc.d is
# honoured); we still stop/disable nginx below in case it was started anyway.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
  made_policy=1
fi
rc=0
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" || rc=$?
if [[ $made_policy -eq 1 ]]; then "${SUDO[@]}" rm -f "$policy"; fi
[[ $rc -eq 0 ]] || { echo "install-deps: apt-get install failed ($rc)" >&2; exit "$rc"; }

if [[ " ${missing[*]} " == *" nginx "* ]]; then
  # Make sure no system nginx is left listening on port 80.
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
  else
    "${SUDO[@]}" service nginx stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null 2>&1 && { "${SUDO[@]}" update-rc.d nginx disable >/dev/null 2>&1 || true; }
  fi
  if [[ -f /run/nginx.pid ]]; then
    "${SUDO[@]}" kill "$(cat /run/nginx.pid)" 2>/dev/null || true
  fi
fi

if [[ " ${missing[*]} " == *" redis-server "* ]]; then
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
  else
    "${SUDO[@]}" service redis-server stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null 2>&1 && { "${SUDO[@]}" update-rc.d redis-server disable >/dev/null 2>&1 || true; }
  fi
fi

for tool in "${wanted[@]}"; do
  have "$tool" || { echo "install-deps: $tool still missing after install" >&2; exit 1; }
done
echo "install-deps: done"
