#!/usr/bin/env bash
# Build the project environment in .venv: Debian packages when missing, then one pip command.
# Usage: scripts/bootstrap.sh PYTHON VENV   (called by the Makefile; safe to re-run)
set -euo pipefail
PYTHON=${1:-python3.11}
VENV=${2:-.venv}
TORCH_PIN="torch==2.13.0"   # the CPU build; always installed in the same pip command as torch dependents

apt_install() {
  local runner=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then runner=(sudo -n); else
      echo "bootstrap: need Debian packages: $*; install them as root (apt-get install -y $*) and re-run" >&2
      exit 1
    fi
  fi
  echo "bootstrap: apt-get install $*"
  "${runner[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${runner[@]}" apt-get install -y -qq "$@" >/dev/null
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "bootstrap: $PYTHON not found; install Python 3.11 (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
missing=()
"$PYTHON" -c "import ensurepip, venv" 2>/dev/null || missing+=("python3-venv")
# open3d (synthetic data, point clouds) needs libusb at import time.
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s libusb-1.0-0 >/dev/null 2>&1; then missing+=("libusb-1.0-0"); fi
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
echo "bootstrap: installing Python packages into $VENV (first run: about a minute)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "$TORCH_PIN" -r requirements.txt -e .
