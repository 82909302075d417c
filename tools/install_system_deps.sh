#!/usr/bin/env bash
# Installs the Debian packages w2v2's tests and recipes use: speech synthesis (espeak-ng, flite, festival with its
# three English voices), audio tools (sox with MP3 support, lame), NIST sclite (sctk), shellcheck (the recipe
# scripts' test), and the compilers and libraries KenLM is built with (tools/install_kenlm.sh). Safe to re-run: it
# skips the install when all are present.
set -euo pipefail
pkgs=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox libsox-fmt-mp3 lame sctk
      shellcheck build-essential cmake libboost-program-options-dev libboost-system-dev libboost-thread-dev
      libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
