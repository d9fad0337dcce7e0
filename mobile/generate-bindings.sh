#!/bin/sh
# Generates the Kotlin and Swift bindings of meshtrace-mobile into
# mobile/bindings/ (committed), from the built library (UniFFI library
# mode, with the crate's own uniffi-bindgen binary). Run it after changing
# the library's exported API; `cargo test -p meshtrace-mobile` fails while
# the committed files differ from what the library generates.
set -eu
cd "$(dirname "$0")/.."
cargo build -p meshtrace-mobile --lib --bin uniffi-bindgen
root="$(pwd)"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
target="$target/debug"
case "$(uname -s)" in
    Darwin) lib="$target/libmeshtrace_mobile.dylib" ;;
    *) lib="$target/libmeshtrace_mobile.so" ;;
esac
for language in kotlin swift; do
    out="$root/mobile/bindings/$language"
    rm -rf "$out"
    mkdir -p "$out"
    # --no-format: the output must not depend on ktlint/swiftformat being
    # installed (the test compares it byte for byte).
    (cd mobile && "$target/uniffi-bindgen" generate --library "$lib" \
        --language "$language" --no-format --out-dir "$out")
done
echo "bindings written to mobile/bindings/{kotlin,swift}"
