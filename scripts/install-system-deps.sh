#!/usr/bin/env bash
# System packages the test suite uses (headless browser for HTML reports, bubblewrap for the
# sandbox). Installs only what is missing; needs root or sudo. Safe to run repeatedly.
set -euo pipefail
PACKAGES=(chromium)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
