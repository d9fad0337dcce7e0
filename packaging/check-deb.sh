#!/usr/bin/env bash
# Checks a meshtrace .deb without installing it on this system: extracts it
# into a clean directory tree (dpkg-deb -x), runs the packaged binary's
# --version (under qemu-aarch64-static for arm64), verifies the packaged user
# unit with `systemd-analyze --user verify`, and checks what the package
# promises: Depends on bluez, a copyright file, and no maintainer scripts or
# .wants links (installing it enables and starts nothing).
#
#   packaging/check-deb.sh target/debian/meshtrace_0.1.0-1_amd64.deb
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: packaging/check-deb.sh PACKAGE.deb (exactly one package)" >&2; exit 2; }
deb=$1
[ -f "$deb" ] || { echo "check-deb.sh: $deb: no such file" >&2; exit 2; }
fail() { echo "check-deb.sh: $deb: $*" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

arch=$(dpkg-deb --field "$deb" Architecture)
version=$(dpkg-deb --field "$deb" Version)
depends=$(dpkg-deb --field "$deb" Depends)
echo "$deb: $arch, version $version, Depends: $depends"
grep -Eq '(^|, )bluez($|[ ,(])' <<<"$depends" || fail "does not depend on bluez"

dpkg-deb --control "$deb" "$root/control"
for script in preinst postinst prerm postrm; do
    [ ! -e "$root/control/$script" ] || fail "has a $script script: installing it must enable and start nothing"
done

tree=$root/tree
dpkg-deb --extract "$deb" "$tree"
bin=$tree/usr/bin/meshtrace
unit=$tree/usr/lib/systemd/user/meshtrace.service
[ -x "$bin" ] || fail "no executable usr/bin/meshtrace"
[ -f "$unit" ] || fail "no systemd user unit usr/lib/systemd/user/meshtrace.service"
[ -f "$tree/usr/share/doc/meshtrace/copyright" ] || fail "no usr/share/doc/meshtrace/copyright"
wants=$(find "$tree" -name '*.wants' -o -name '*.requires')
[ -z "$wants" ] || fail "enables units on installation: ${wants//$tree/}"

# The packaged binary runs and is the packaged version.
case "$arch" in
    amd64) runner=() ;;
    arm64) runner=(qemu-aarch64-static) ;;
    *) fail "unexpected architecture $arch" ;;
esac
printed=$("${runner[@]}" "$bin" --version)
[ "$printed" = "meshtrace ${version%-*}" ] || fail "--version printed '$printed', expected 'meshtrace ${version%-*}'"
echo "extracted usr/bin/meshtrace --version: $printed"

# The unit, as the user manager reads it. `verify` cannot look into another
# root in --user mode, so it reads a copy whose ExecStart names the extracted
# binary; that the original names the packaged path is checked here first.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
program=${exec_start%% *}
[ "$program" = /usr/bin/meshtrace ] || fail "the unit runs '$program', not the packaged /usr/bin/meshtrace"
export XDG_RUNTIME_DIR=$root/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
sed "s|^ExecStart=/usr/bin/meshtrace|ExecStart=$bin|" "$unit" >"$XDG_RUNTIME_DIR/meshtrace.service"
# verify exits 0 on unknown keys (it only warns): any output is a failure.
if ! said=$(systemd-analyze --user --man=no verify "$XDG_RUNTIME_DIR/meshtrace.service" 2>&1) || [ -n "$said" ]; then
    fail "systemd-analyze --user verify: ${said:-failed}"
fi
echo "systemd-analyze --user verify usr/lib/systemd/user/meshtrace.service: clean"
