#!/usr/bin/env bash
# Debian 13's Dovecot 2.4 for the e2e tests, in a root made by debootstrap and run with chroot
# (nothing from trixie goes onto the machine itself). The root is cached by the versions of the
# packages it holds: a run finds the versions in trixie's package index and reuses the root made
# for them, or makes a new one (about 45 s) and removes older ones.
#
#   test/support/dovecot-2.4-root.sh        prints the root's path (the tests find it by themselves)
#
# MAILSIGHT_TEST_CACHE (default /var/cache/mailsight-test) holds the roots and the link `dovecot-2.4`
# to the current one; DEBIAN_MIRROR (default http://deb.debian.org/debian) is where packages come from.
set -euo pipefail
cache=${MAILSIGHT_TEST_CACHE:-/var/cache/mailsight-test}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
# Sieve, Lua and the push plugins are part of trixie's dovecot-core.
packages=(dovecot-core dovecot-imapd dovecot-lmtpd)
arch=$(dpkg --print-architecture)
mkdir -p "$cache"

# The versions the index offers now, one "name version" line each.
versions=$(curl -fsS --max-time 60 "$mirror/dists/$suite/main/binary-$arch/Packages.xz" | xz -dc | awk -v want="${packages[*]}" '
  BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) wanted[w[i]] = 1 }
  /^Package: / { pkg = $2 }
  /^Version: / && (pkg in wanted) { print pkg, $2; delete wanted[pkg] }
' | sort) || versions=''
link="$cache/dovecot-2.4"
if [ -z "$versions" ]; then
  # No index (no network): a root made earlier is still good for the tests.
  if [ -x "$link/usr/sbin/dovecot" ]; then
    echo "dovecot-2.4-root: trixie's index is unreachable; using the root made earlier" >&2
    readlink -f "$link"
    exit 0
  fi
  echo "dovecot-2.4-root: trixie's index at $mirror is unreachable and no root was made before" >&2
  exit 1
fi
key=$(printf '%s\n' "$versions" | sha256sum | cut -c1-16)
root="$cache/dovecot-2.4-$key"
if [ ! -f "$root/.mailsight-versions" ]; then
  rm -rf "$root.new"
  include=$(IFS=,; echo "${packages[*]}")
  if ! debootstrap --variant=minbase --include="$include" "$suite" "$root.new" "$mirror" >"$cache/debootstrap.log" 2>&1; then
    tail -20 "$cache/debootstrap.log" >&2
    exit 1
  fi
  chroot "$root.new" dpkg-query -W "${packages[@]}" >"$root.new/.mailsight-versions"
  mv "$root.new" "$root"
fi
ln -sfn "$root" "$link"
# Roots made for older versions.
for old in "$cache"/dovecot-2.4-*; do
  [ "$old" = "$root" ] || [ ! -d "$old" ] || rm -rf "$old"
done
echo "$root"
