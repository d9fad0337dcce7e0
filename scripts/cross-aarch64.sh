#!/usr/bin/env bash
# Cross-builds the `meshtrace` binary for aarch64-unknown-linux-gnu (glibc
# Linux phones: PinePhone, Librem 5 with Mobian or PureOS; ARM boards) with
# Debian's Rust packages, and optionally tests it under user-mode QEMU and
# packages it. See docs/packaging.md §2.
#
#   scripts/cross-aarch64.sh            # install what is missing, build, print the size
#   scripts/cross-aarch64.sh --test     # also: protocol and node unit tests and
#                                       # `meshtrace demo --json` under qemu-aarch64-static
#   scripts/cross-aarch64.sh --deb      # also: the arm64 .deb from the cross binary
#   options: --release (release profile; default: dev, made lean for the cross
#            build: no debug info, crypto and sled at opt-level 3, other dependencies at 0),
#            -j N (parallel jobs; default 2)
#
# Why Debian's toolchain: this machine's rustup cannot fetch targets. Debian 12
# (bookworm-security) carries rustc-web/cargo-web with libstd-rust-web-dev,
# which is Multi-Arch: same, so its :arm64 copy installs beside the host's.
# Where rustup can fetch targets, `rustup target add aarch64-unknown-linux-gnu`
# and the same environment variables below do the same job.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
PROFILE=dev
JOBS=2
RUN_TESTS=0
BUILD_DEB=0
while [ $# -gt 0 ]; do
    case "$1" in
        --test) RUN_TESTS=1 ;;
        --deb) BUILD_DEB=1 ;;
        --release) PROFILE=release ;;
        -j) shift; JOBS="${1:?-j needs a number}" ;;
        -j*) JOBS="${1#-j}" ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "cross-aarch64.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$PROFILE" in dev) PROFILE_DIR=debug ;; *) PROFILE_DIR="$PROFILE" ;; esac

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# ---- 1. Packages, only those missing --------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need=()
for p in rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu \
         libc6-dev-arm64-cross qemu-user-static; do
    installed "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing: ${need[*]}"
    t0=$SECONDS
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        as_root dpkg --add-architecture arm64
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    echo "   installed in $((SECONDS - t0)) s"
fi

# ---- 2. Environment -------------------------------------------------------
# rustup's ~/.cargo/bin would shadow Debian's tools: call them by path.
CARGO=/usr/bin/cargo
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# No `-L /usr/aarch64-linux-gnu`: with it QEMU mixes the cross package's ld.so
# with the arm64 libc and hangs at the first thread spawn. The binaries find
# the arm64 loader and libc that libc6:arm64 (pulled in by
# libstd-rust-web-dev:arm64) puts at the usual paths.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
export CARGO_INCREMENTAL=0
profile_args=(--profile "$PROFILE")
if [ "$PROFILE" = dev ]; then
    # The dev cross build is lean (it is what CI runs; measured in
    # docs/packaging.md §3): no debug info, and the dependencies at opt-level
    # 0 except those the root Cargo.toml keeps at opt-level 3 (chacha20,
    # poly1305, blake3, curve25519-dalek, sha2, sled: the hot crypto and the
    # store). Our own crates keep the profile's opt-level 1. `cargo test`
    # builds in the test profile, which inherits dev's but sets its own
    # debug level, hence both. --release is not touched.
    profile_args+=(--config 'profile.dev.debug=0' --config 'profile.test.debug=0'
                   --config 'profile.dev.package."*".opt-level=0')
fi
"$CARGO" --version
"$RUSTC" --version

# ---- 3. Build ------------------------------------------------------------
# One target directory (target/$TARGET/...), one profile and, with --test,
# one cargo invocation: the binary and the unit tests are built together, so
# every dependency is built once with one feature set. (Built separately,
# the tests' dev-dependencies change the features of serde, smallvec,
# zerocopy, ..., and cargo builds everything above them again -- libp2p,
# hickory, sled: 127 more units.) `--test demo_cli` is in the invocation
# only because cargo builds a package's binary, as a normal binary, for its
# integration tests; that test is not run here (it starts the binary as a
# child process, which qemu-user does not follow).
BIN_SELECT=(-p meshtrace)
if [ "$RUN_TESTS" -eq 1 ]; then
    BIN_SELECT=(-p meshtrace -p meshtrace-protocol -p meshtrace-node)
    # The features the joined build resolves must not include test helpers
    # (a dev-dependency could turn test-utils on for the binary too).
    if "$CARGO" tree --locked --target "$TARGET" "${BIN_SELECT[@]}" -e features \
        | grep -q 'test-utils'; then
        echo "cross-aarch64.sh: a dev-dependency enables a test-utils feature: built with the tests," \
             "the binary would carry test helpers" >&2
        exit 1
    fi
fi
what=meshtrace
[ "$RUN_TESTS" -eq 1 ] && what="meshtrace and the unit tests"
echo "== building $what for $TARGET (profile $PROFILE, -j $JOBS)"
t0=$SECONDS
artifacts=$(mktemp)
stripped=$(mktemp)
trap 'rm -f "$artifacts" "$stripped"' EXIT
if [ "$RUN_TESTS" -eq 1 ]; then
    "$CARGO" test --no-run --locked --target "$TARGET" "${profile_args[@]}" -j "$JOBS" \
        --message-format=json-render-diagnostics \
        -p meshtrace-protocol -p meshtrace-node --lib -p meshtrace --test demo_cli >"$artifacts"
else
    "$CARGO" build --locked --target "$TARGET" "${profile_args[@]}" -j "$JOBS" \
        --message-format=json-render-diagnostics -p meshtrace >"$artifacts"
fi
echo "   built in $((SECONDS - t0)) s"
# The paths of what was built, from cargo's messages: the binary, and the
# unit-test executables of the two crates ("crate path" a line).
python3 - "$artifacts" >"$artifacts.paths" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    name, kind = m["target"]["name"], m["target"]["kind"]
    if kind == ["bin"] and name == "meshtrace" and not m["profile"]["test"]:
        print("bin", m["executable"])
    elif m["profile"]["test"] and "lib" in kind and name in ("meshtrace_protocol", "meshtrace_node"):
        print(name, m["executable"])
PY
trap 'rm -f "$artifacts" "$artifacts.paths" "$stripped"' EXIT
BIN=$(awk '$1 == "bin" { print $2 }' "$artifacts.paths")
[ -n "$BIN" ] || { echo "cross-aarch64.sh: cargo reported no meshtrace binary" >&2; exit 1; }
BIN=$(realpath --relative-to=. "$BIN")
file "$BIN" 2>/dev/null | sed 's/^/   /' || true
aarch64-linux-gnu-strip -o "$stripped" "$BIN"
echo "   size: $(stat -c %s "$BIN") bytes, stripped $(stat -c %s "$stripped") bytes ($(( $(stat -c %s "$stripped") / 1048576 )) MiB)"

# ---- 4. Tests under qemu-aarch64-static -----------------------------------
if [ "$RUN_TESTS" -eq 1 ]; then
    # qemu-user does not translate the IP_MULTICAST_ALL socket option
    # (ENOPROTOOPT), so the UDP-multicast simulated radio cannot start under
    # it: its tests (radio::udp::...) are skipped here by name. They run
    # natively in `cargo test --workspace`; real aarch64 hardware is untested.
    QEMU_SKIP=(--skip radio::udp::)
    echo "== protocol and node unit tests under qemu-aarch64-static (skipped: ${QEMU_SKIP[*]})"
    t0=$SECONDS
    # Run as cargo would: from the crate's directory (cargo test cannot be
    # asked to run them without re-resolving the features for a narrower
    # selection, which would rebuild).
    for crate in meshtrace_protocol:protocol meshtrace_node:node; do
        exe=$(awk -v n="${crate%%:*}" '$1 == n { print $2 }' "$artifacts.paths")
        [ -n "$exe" ] || { echo "cross-aarch64.sh: cargo reported no unit-test executable for ${crate%%:*}" >&2; exit 1; }
        echo "   ${crate%%:*} ($(realpath --relative-to=. "$exe"))"
        (cd "${crate#*:}" && CARGO_MANIFEST_DIR="$PWD" qemu-aarch64-static "$exe" "${QEMU_SKIP[@]}")
    done
    echo "   tests ran in $((SECONDS - t0)) s"

    echo "== meshtrace demo --json under qemu-aarch64-static"
    t0=$SECONDS
    demo_dir=$(mktemp -d)
    trap 'rm -f "$artifacts" "$artifacts.paths" "$stripped"; rm -rf "$demo_dir"' EXIT
    qemu-aarch64-static "$BIN" demo --json --out "$demo_dir/out" >"$demo_dir/summary.json"
    echo "   demo ran in $((SECONDS - t0)) s"
    # The summary is checked against the script's ground truth: every true
    # contact warned, nobody else, the report at every other node.
    python3 - "$demo_dir/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
people = s["people"]
true_contacts = [p["name"] for p in people if p["true_contact"]]
warned = [p["name"] for p in people if p["alerted"]]
missed = sorted(set(true_contacts) - set(warned))
false_alarms = sorted(set(warned) - set(true_contacts))
print(f"   demo result (aarch64 under qemu-user): {len(set(true_contacts) & set(warned))}/{len(true_contacts)} "
      f"true contacts warned, {len(false_alarms)} false alarms, report at {s['report_reached']}/{s['nodes'] - 1} "
      f"other nodes, {s['timings_ms']['total']} ms in all")
problems = []
if not true_contacts:
    problems.append("the script has no true contact: nothing was tested")
if missed:
    problems.append("true contacts not warned: " + ", ".join(missed))
if false_alarms:
    problems.append("warned without a true contact (false alarms): " + ", ".join(false_alarms))
totals = (s["true_contacts"], s["alerted"], s["false_positives"], s["false_negatives"])
if totals != (len(true_contacts), len(warned), len(false_alarms), len(missed)):
    problems.append("the summary's totals disagree with its list of people")
if s["report_reached"] != s["nodes"] - 1:
    problems.append(f"the report reached only {s['report_reached']} of {s['nodes'] - 1} other nodes")
for p in problems:
    print("cross-aarch64.sh: demo under qemu: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
fi

# ---- 5. The arm64 package from the cross binary ---------------------------
if [ "$BUILD_DEB" -eq 1 ]; then
    # cargo-deb runs on the host's (rustup) cargo; --no-build packages the
    # binary built above. Its strip and dpkg-shlibdeps must read arm64 ELF:
    # the cross binutils' strip/objcopy, and the arm64 libc installed above.
    if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb ${CARGO_DEB_VERSION:-3.8.0}" ]; then
        echo "== installing cargo-deb"
        t0=$SECONDS
        env -u RUSTC -u RUSTDOC cargo install cargo-deb --version "${CARGO_DEB_VERSION:-3.8.0}" --locked --quiet
        echo "   installed in $((SECONDS - t0)) s"
    fi
    echo "== arm64 package (cargo deb --no-build, profile $PROFILE)"
    # (cargo-deb warns that a dev-profile package is not a release: CI
    # packages the dev build to test the packaging; --release for a release.)
    if ! out=$(env -u RUSTC -u RUSTDOC \
        "STRIP_$TARGET=aarch64-linux-gnu-strip" "OBJCOPY_$TARGET=aarch64-linux-gnu-objcopy" \
        cargo deb -p meshtrace --no-build --locked --target "$TARGET" --profile "$PROFILE" \
        --output target/debian/ 2>&1); then
        printf '%s\n' "$out" >&2
        echo "cross-aarch64.sh: cargo deb failed (above)" >&2
        exit 1
    fi
    deb=$(ls -t target/debian/meshtrace_*_arm64.deb | head -1)
    dpkg-deb --field "$deb" Package Version Architecture Depends | sed 's/^/   /'
    echo "   $deb: $(stat -c %s "$deb") bytes"
fi
