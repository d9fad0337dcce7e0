//! The generated bindings: the committed Kotlin and Swift files are what
//! the library generates today (so `generate-bindings.sh` runs without a
//! diff), and the same FFI surface works end to end through the generated
//! Python bindings (`tests/test_bindings.py`: two nodes, the real mesh on
//! loopback, an issuer, bad input from the host).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/debug` (or the profile directory the tests run from).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/bindings-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lies in target/<profile>/deps")
        .to_owned()
}

/// The built cdylib (cargo builds it with the library for these tests);
/// the newer copy when both places hold one.
fn cdylib() -> PathBuf {
    let name = format!(
        "{}meshtrace_mobile{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    // `cargo build` copies it to target/<profile>; `cargo test` leaves it in
    // deps/ (a cdylib's name carries no hash).
    let dir = profile_dir();
    let candidates = [dir.join(&name), dir.join("deps").join(&name)];
    candidates
        .iter()
        .filter(|p| p.is_file())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .cloned()
        .unwrap_or_else(|| panic!("{name} was not built in {} or its deps/", dir.display()))
}

/// Runs the crate's bindgen on the built library.
fn generate(language: &str, out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_uniffi-bindgen"))
        .args(["generate", "--library"])
        .arg(cdylib())
        .args(["--language", language, "--no-format", "--out-dir"])
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("uniffi-bindgen runs");
    assert!(status.success(), "uniffi-bindgen {language}: {status}");
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap_or(&p).to_owned();
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn committed_kotlin_and_swift_bindings_are_what_the_library_generates() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings");
    for language in ["kotlin", "swift"] {
        let tmp = tempfile::tempdir().unwrap();
        generate(language, tmp.path());
        let fresh = files(tmp.path());
        let have = files(&committed.join(language));
        assert!(!fresh.is_empty(), "no {language} bindings were generated");
        let names = |m: &BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&have),
            names(&fresh),
            "the committed {language} files differ from the generated ones: run \
             mobile/generate-bindings.sh"
        );
        for (name, bytes) in &fresh {
            assert!(
                have.get(name) == Some(bytes),
                "mobile/bindings/{language}/{} is out of date: run mobile/generate-bindings.sh",
                name.display()
            );
        }
    }
}

/// The `meshtrace` binary for the issuer (only `issuer keygen` and
/// `issuer certify` are used): `MESHTRACE_BIN`, else the one `cargo test
/// --workspace` has built beside this test, else built now.
fn meshtrace_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MESHTRACE_BIN") {
        return PathBuf::from(p);
    }
    let built = profile_dir().join("meshtrace");
    if built.is_file() {
        return built;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "meshtrace", "--bin", "meshtrace"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building meshtrace: {status}");
    let bin = profile_dir().join("meshtrace");
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

#[test]
fn the_ffi_surface_works_end_to_end_through_the_python_bindings() {
    let dir = tempfile::tempdir().unwrap();
    generate("python", dir.path());
    // The generated module loads the library from its own directory.
    let lib = cdylib();
    std::fs::copy(&lib, dir.path().join(lib.file_name().unwrap())).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/test_bindings.py");
    let out = Command::new("python3")
        .arg(&script)
        .env("MESHTRACE_PY_BINDINGS", dir.path())
        .env("MESHTRACE_BIN", meshtrace_bin())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs (it is needed for this test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "test_bindings.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("mobile bindings: all checks passed"),
        "{stdout}\n{stderr}"
    );
}
