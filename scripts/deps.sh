#!/usr/bin/env bash
# Installs what airlock needs to build, test and benchmark, and nothing twice.
# Debian packages of DESIGN.md section 7 (apt-get update only when something is
# missing), then the npm packages of the client tests from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential pkg-config git ca-certificates curl
  libuv1-dev libhttp-parser-dev libcurl4-openssl-dev libyajl-dev libfyaml-dev
  libssl-dev libsqlite3-dev sqlite3 libcmocka-dev libvectorscan-dev
  clang libclang-rt-14-dev llvm
  nodejs npm
  wrk nginx-light
)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node and npm may come from outside Debian's packages; accept them if present.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Client-test packages, pinned by the committed lock file.
if [[ -f tests/client/package-lock.json ]]; then
  if [[ ! -d tests/client/node_modules ]] || \
     [[ tests/client/package-lock.json -nt tests/client/node_modules/.stamp ]]; then
    (cd tests/client && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.stamp)
  fi
fi
