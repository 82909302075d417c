#!/usr/bin/env bash
# Builds KenLM's `lmplz` and `build_binary` into tools/kenlm/bin, for `w2v2 lm build`.
#
#   bash tools/install_kenlm.sh            # from the repository root (or anywhere: paths are resolved)
#
# Source: the Debian `kenlm` source package (`apt-get source kenlm`, through a temporary deb-src list and a
# private apt state directory, so the system's apt configuration is left untouched); if that fails, the
# PyPI `kenlm` sdist (`pip download --no-binary :all: kenlm`), which carries the same C++ tree.
# Needs: build-essential, cmake, Boost (program_options, system, thread, test), zlib/bz2/lzma headers
# (tools/install_system_deps.sh installs them). Idempotent: exits at once when both programs already run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix="$here/kenlm"            # everything we build lives here (gitignored)
bindir="$prefix/bin"            # lmplz and build_binary end up here
jobs="${KENLM_JOBS:-$(nproc)}"  # parallel compile jobs

log() { echo "[install_kenlm] $*" >&2; }

if [ -x "$bindir/lmplz" ] && [ -x "$bindir/build_binary" ] && "$bindir/build_binary" 2>&1 | grep -qi usage; then
  log "already installed: $bindir"
  exit 0
fi

for tool in cmake make g++; do
  command -v "$tool" >/dev/null || { log "missing '$tool': run 'bash tools/install_system_deps.sh' first"; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/kenlm-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Tries the Debian source package; prints the source directory on success.
fetch_debian() {
  local apt_dir="$work/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/src"
  # One deb-src line per deb line of the system's configuration (same mirror and suite).
  local suite mirror
  mirror="http://deb.debian.org/debian"
  suite="$( (. /etc/os-release && echo "${VERSION_CODENAME:-}") 2>/dev/null || true)"
  [ -n "$suite" ] || return 1
  echo "deb-src $mirror $suite main" > "$apt_dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
              -o "Dir::State::Lists=$apt_dir/lists" -o "APT::Sandbox::User=root")
  apt-get "${opts[@]}" update -qq >&2 || return 1
  (cd "$apt_dir/src" && apt-get "${opts[@]}" source -qq kenlm >&2) || return 1
  local dir
  dir="$(find "$apt_dir/src" -mindepth 1 -maxdepth 1 -type d -name 'kenlm*' | head -n 1)"
  [ -n "$dir" ] && [ -f "$dir/CMakeLists.txt" ] || return 1
  echo "$dir"
}

# Falls back to the PyPI sdist; prints the source directory on success.
fetch_pypi() {
  local pip_dir="$work/pip"
  mkdir -p "$pip_dir"
  # pip builds the sdist's metadata in this environment (no build isolation: an isolated build env would fetch
  # its own setuptools); that needs setuptools and wheel (bdist_wheel) here, which fresh venvs lack
  python3 -m pip install -q setuptools wheel >&2 || return 1
  python3 -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$pip_dir" kenlm >&2 || return 1
  local archive
  archive="$(find "$pip_dir" -maxdepth 1 -name 'kenlm*' -type f | head -n 1)"
  [ -n "$archive" ] || return 1
  case "$archive" in
    *.zip) (cd "$pip_dir" && python3 -m zipfile -e "$archive" .) ;;
    *) tar -xf "$archive" -C "$pip_dir" ;;
  esac
  local dir
  dir="$(find "$pip_dir" -mindepth 1 -maxdepth 2 -name CMakeLists.txt -printf '%h\n' | head -n 1)"
  [ -n "$dir" ] || return 1
  echo "$dir"
}

log "fetching the kenlm source (Debian source package)"
if ! src="$(fetch_debian)"; then
  log "Debian source package unavailable; falling back to the PyPI sdist"
  src="$(fetch_pypi)" || { log "could not fetch the kenlm source from Debian or PyPI"; exit 1; }
fi
log "building from $src with $jobs job(s)"

build="$work/build"
mkdir -p "$build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_POSITION_INDEPENDENT_CODE=ON >"$work/cmake.log" 2>&1 \
  || { tail -n 30 "$work/cmake.log" >&2; log "cmake failed (Boost/zlib headers missing? run tools/install_system_deps.sh)"; exit 1; }
cmake --build "$build" --target lmplz build_binary -j "$jobs" >"$work/make.log" 2>&1 \
  || { tail -n 30 "$work/make.log" >&2; log "compilation failed"; exit 1; }

# Install atomically: copy into a temporary directory beside bin/, then rename over it.
mkdir -p "$prefix"
stage="$(mktemp -d "$prefix/bin.tmp.XXXXXX")"
cp "$build/bin/lmplz" "$build/bin/build_binary" "$stage/"
chmod 755 "$stage" "$stage/lmplz" "$stage/build_binary"
rm -rf "$bindir"
mv "$stage" "$bindir"
log "installed: $bindir/lmplz $bindir/build_binary"
