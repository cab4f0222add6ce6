#!/usr/bin/env bash
# Packs one release tarball from a compiled teleport-email binary:
#
#   scripts/pack.sh <binary> <amd64|arm64> [outdir]
#
# writes <outdir>/teleport-access-email-v<version>-linux-<arch>-bin.tar.gz
# (outdir defaults to dist/ in the repository) and prints its path. The
# tarball unpacks to teleport-access-email/ holding teleport-email (0755),
# install (install.sh, 0755), teleport-email.service, README.md and VERSION
# (0644). Relative paths are taken from the current directory; the other
# files come from the repository this script lives in.
#
# Environment:
#   VERSION            overrides the version (default: deno.json "version")
#   SOURCE_DATE_EPOCH  timestamp of every member (default: the last commit's
#                      time, else now); with names sorted, owner root:root and
#                      gzip without a name or time, equal inputs give equal bytes.
set -euo pipefail

readonly PKG_DIR="teleport-access-email"

die() {
  printf 'pack: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  printf 'usage: %s <binary> <amd64|arm64> [outdir]\n' "$0" >&2
  exit 2
}

[[ $# -ge 2 && $# -le 3 ]] || usage
binary="$1"
arch="$2"
case "$arch" in
  amd64 | arm64) ;;
  *) die "unsupported architecture \"$arch\" (expected amd64 or arm64)" ;;
esac

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
outdir="${3:-$ROOT/dist}"

[[ -f "$binary" ]] || die "binary \"$binary\" does not exist or is not a file"
for f in install.sh teleport-email.service README.md deno.json; do
  [[ -f "$ROOT/$f" ]] || die "\"$ROOT/$f\" is missing"
done

version="${VERSION:-}"
if [[ -z "$version" ]]; then
  # The first "version" key in deno.json; deno fmt keeps it on one line.
  version="$(sed -n 's/^[[:space:]]*"version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' \
    "$ROOT/deno.json" | head -n 1)"
fi
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] ||
  die "version \"$version\" is not a semantic version (from VERSION or deno.json \"version\")"

if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
  SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || true)"
  [[ -n "$SOURCE_DATE_EPOCH" ]] || SOURCE_DATE_EPOCH="$(date +%s)"
fi
[[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] ||
  die "SOURCE_DATE_EPOCH must be whole seconds, got \"$SOURCE_DATE_EPOCH\""

mkdir -p -- "$outdir"
outdir="$(cd -- "$outdir" && pwd)"
name="teleport-access-email-v$version-linux-$arch-bin.tar.gz"
out="$outdir/$name"

stage="$(mktemp -d)"
trap 'rm -rf -- "$stage"; rm -f -- "$out.tmp.$$"' EXIT
pkg="$stage/$PKG_DIR"
install -d -m 0755 "$pkg"
install -m 0755 -- "$binary" "$pkg/teleport-email"
install -m 0755 -- "$ROOT/install.sh" "$pkg/install"
install -m 0644 -- "$ROOT/teleport-email.service" "$pkg/teleport-email.service"
install -m 0644 -- "$ROOT/README.md" "$pkg/README.md"
printf '%s\n' "$version" >"$pkg/VERSION"
chmod 0644 "$pkg/VERSION"

tar --create --format=gnu --sort=name \
  --owner=root:0 --group=root:0 \
  --mtime="@$SOURCE_DATE_EPOCH" \
  --directory="$stage" "$PKG_DIR" |
  gzip -n >"$out.tmp.$$"
mv -f -- "$out.tmp.$$" "$out"
printf '%s\n' "$out"
