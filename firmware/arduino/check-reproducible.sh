#!/usr/bin/env bash
# Rebuilds every board's firmware into a temporary directory and fails if any hex differs from dist/.
# Run from anywhere: firmware/arduino/check-reproducible.sh
set -euo pipefail
cd "$(dirname "$0")"
command -v avr-gcc >/dev/null || { echo "avr-gcc missing: apt-get install gcc-avr avr-libc binutils-avr" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for board in uno nano mega; do
  make -s BOARD="$board" OUT="$tmp" BUILD_ROOT="$tmp/obj" >/dev/null
  if cmp -s "$tmp/ganglion-$board.hex" "dist/ganglion-$board.hex"; then
    echo "ok: ganglion-$board.hex is reproducible"
  else
    echo "DIFFERS: dist/ganglion-$board.hex does not match a fresh build (commit the rebuilt hex: make all)"
    status=1
  fi
done
exit $status
