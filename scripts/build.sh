#!/usr/bin/env bash
# Builds teleport-email with `deno compile` for each Linux target and packs
# one release tarball per target (scripts/pack.sh):
#
#   scripts/build.sh            # or: deno task build
#
# produces dist/<amd64|arm64>/teleport-email and
# dist/teleport-access-email-v<version>-linux-<amd64|arm64>-bin.tar.gz.
#
# `deno compile` glues the program onto "denort", Deno's runtime binary for
# the target, which it normally downloads from Deno's release server. Where
# that server cannot be reached (our machines and CI), give it one of:
#   - the cache file Deno looks for before downloading, per target:
#       <denoDir>/dl/release/v<deno version>/denort-<target>.zip
#     (a zip holding one file named `denort`, exactly as Deno publishes it;
#     <denoDir> is `deno info --json`'s "denoDir", i.e. $DENO_DIR if set);
#   - DENORT_BIN=/path/to/denort, Deno's own override. It is one binary for
#     one target, so set TARGETS to that single target with it.
# Both are checked for every target before anything is built; where the
# release server is reachable, ALLOW_DENORT_DOWNLOAD=1 skips the check.
#
# Environment:
#   TARGETS             Rust target triples (default: x86_64-unknown-linux-gnu
#                       aarch64-unknown-linux-gnu)
#   DENORT_BIN          runtime binary to use instead of the download (above)
#   ALLOW_DENORT_DOWNLOAD=1  let deno compile download missing runtimes
#   DENO                deno executable (default: deno on PATH)
#   DENO_COMPILE_FLAGS  extra flags for `deno compile`, split on spaces
#                       (e.g. "--include proto/")
#   OUT_DIR             output directory (default: dist/ in the repository)
#
# The version comes from deno.json; src/lib/build_info.ts gets GIT_REF from
# `git describe --tags --always --dirty` for the build and is restored
# afterwards, also when the build fails or is interrupted.
set -euo pipefail
export DENO_NO_UPDATE_CHECK=1

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly ENTRY="main.ts"
readonly BUILD_INFO="src/lib/build_info.ts"
DENO="${DENO:-deno}"
TARGETS="${TARGETS:-x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu}"
OUT_DIR="${OUT_DIR:-$ROOT/dist}"

die() {
  printf 'build: error: %s\n' "$*" >&2
  exit 1
}

[[ "$OUT_DIR" == /* ]] || OUT_DIR="$PWD/$OUT_DIR"
cd "$ROOT"

read -r -a targets <<<"$TARGETS"
[[ ${#targets[@]} -gt 0 ]] || die "TARGETS is empty"
read -r -a extra_flags <<<"${DENO_COMPILE_FLAGS:-}"

arch_of() {
  case "$1" in
    x86_64-unknown-linux-gnu) echo amd64 ;;
    aarch64-unknown-linux-gnu) echo arm64 ;;
    *) die "unsupported target \"$1\" (expected x86_64-unknown-linux-gnu or aarch64-unknown-linux-gnu)" ;;
  esac
}

# --- Preflight: everything that can be known before building. ---------------
[[ -f "$ENTRY" ]] || die "entry point \"$ROOT/$ENTRY\" is missing"
[[ -f "$BUILD_INFO" ]] || die "\"$ROOT/$BUILD_INFO\" is missing"
grep -Eq '^export const GIT_REF = "[^"]*";' "$BUILD_INFO" ||
  die "\"$ROOT/$BUILD_INFO\" has no line 'export const GIT_REF = \"...\";' to stamp"

deno_version="$("$DENO" --version | sed -n '1s/^deno \([^ ]*\).*/\1/p')"
[[ -n "$deno_version" ]] || die "cannot read the version of \"$DENO\""
deno_dir="$("$DENO" info --no-config --json | sed -n 's/^[[:space:]]*"denoDir"[[:space:]]*:[[:space:]]*"\(.*\)",\{0,1\}[[:space:]]*$/\1/p')"
[[ -n "$deno_dir" ]] || die "cannot find the Deno cache directory in \`$DENO info --json\`"

for target in "${targets[@]}"; do
  arch_of "$target" >/dev/null
done
if [[ -n "${DENORT_BIN:-}" ]]; then
  [[ -f "$DENORT_BIN" && -x "$DENORT_BIN" ]] ||
    die "DENORT_BIN=\"$DENORT_BIN\" is not an executable file"
  [[ ${#targets[@]} -eq 1 ]] ||
    die "DENORT_BIN is one runtime binary for one target, but TARGETS has ${#targets[@]}" \
      "(\"$TARGETS\"); set TARGETS to the target DENORT_BIN was built for"
  printf 'build: using DENORT_BIN=%s for %s\n' "$DENORT_BIN" "${targets[0]}" >&2
elif [[ "${ALLOW_DENORT_DOWNLOAD:-}" != 1 ]]; then
  for target in "${targets[@]}"; do
    cached="$deno_dir/dl/release/v$deno_version/denort-$target.zip"
    if [[ ! -f "$cached" ]]; then
      cat >&2 <<EOF
build: error: no Deno runtime (denort) for $target; deno compile would try to
download it from Deno's release server. Either:
  - seed the cache file "$cached"
    with denort-$target.zip of Deno v$deno_version (a zip holding one file named denort), or
  - set DENORT_BIN=/path/to/denort (built for $target) and TARGETS=$target, or
  - set ALLOW_DENORT_DOWNLOAD=1 where that server is reachable.
EOF
      exit 1
    fi
  done
fi

# --- Stamp the git ref; restore the file on any exit. -----------------------
git_ref="$(git describe --tags --always --dirty 2>/dev/null || true)"
[[ "$git_ref" =~ ^[A-Za-z0-9._/+-]+$ ]] || git_ref="unknown"
backup="$(mktemp)"
cp -p -- "$BUILD_INFO" "$backup"
restore() {
  cat -- "$backup" >"$ROOT/$BUILD_INFO"
  rm -f -- "$backup"
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
sed -E "s|^export const GIT_REF = \"[^\"]*\";|export const GIT_REF = \"$git_ref\";|" \
  "$backup" >"$BUILD_INFO"
printf 'build: GIT_REF=%s\n' "$git_ref" >&2

# --- Check once, then compile and pack each target. -------------------------
# deno compile embeds every npm package of the lockfile, so cache them all
# first: the excludes below name paths in that cache.
"$DENO" install --quiet
"$DENO" check "$ENTRY"

# deno compile 2.9.6 dies of a stack overflow ("thread 'tokio-runtime-worker'
# has overflowed its stack") when it embeds bintrees (prom-client -> tdigest ->
# bintrees): its test/perf/100k, a 2 MB extensionless list of numbers, is what
# kills it (removing that file alone fixes the build). Nothing loads those test
# files at run time, so leave them out of the binary.
excludes=()
for dir in "$deno_dir"/npm/*/bintrees/*/test; do
  if [[ -d "$dir" ]]; then excludes+=(--exclude "$dir"); fi
done

# The V8 flags the plugin runs with (scripts/v8_flags.ts), embedded in the binary.
v8_flags="$("$DENO" run --quiet --no-config "$ROOT/scripts/v8_flags.ts")"
if [[ -n "$v8_flags" ]]; then extra_flags+=("--v8-flags=$v8_flags"); fi

for target in "${targets[@]}"; do
  arch="$(arch_of "$target")"
  mkdir -p -- "$OUT_DIR/$arch"
  "$DENO" compile --allow-all --no-check \
    ${excludes[@]+"${excludes[@]}"} ${extra_flags[@]+"${extra_flags[@]}"} \
    --target "$target" --output "$OUT_DIR/$arch/teleport-email" "$ENTRY"
  bash "$ROOT/scripts/pack.sh" "$OUT_DIR/$arch/teleport-email" "$arch" "$OUT_DIR"
done
