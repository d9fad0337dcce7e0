//! What the shipped `meshtrace` binary is built from.

use std::process::Command;

/// The features of the workspace's test helpers (`build_announcements_unchecked`,
/// `publish_unchecked`: misbehaving peers for the tests).
const TEST_FEATURE: &str = "test-utils";

#[test]
fn the_binary_is_built_without_the_test_helpers() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "tree",
            "-p",
            "meshtrace",
            "-e",
            "features",
            "--offline",
            "--locked",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The tree names the binary's own package, so it cannot pass empty.
    assert!(tree.contains("meshtrace-node"), "unexpected tree:\n{tree}");
    let offending: Vec<&str> = tree.lines().filter(|l| l.contains(TEST_FEATURE)).collect();
    assert!(
        offending.is_empty(),
        "the meshtrace binary would contain the test helpers:\n{}",
        offending.join("\n")
    );
}
