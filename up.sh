#!/usr/bin/env bash
# Cutover on this machine in one command, from nothing installed (Debian): PostgreSQL and
# RabbitMQ are installed and started when absent by .ci/services.sh (the script CI uses), Rust
# by rustup when cargo is absent, then `cutover up` runs the api and a worker on
# http://127.0.0.1:8080. Arguments go to `cutover up`. The installs need root or sudo.
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

as_root bash .ci/services.sh

# a C compiler and linker for the crates that build native code; curl and certificates for rustup
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
if ! command -v cargo >/dev/null 2>&1; then
  if [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fi
  export PATH="$HOME/.cargo/bin:$PATH"
fi

exec cargo run --release -p cutover -- up "$@"
