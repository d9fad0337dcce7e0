//! Who may change the files that steer a node. Like ssh's `StrictModes`, a
//! config file, key file, data directory or exposure-hook script is refused
//! when another user could change it: when it is writable by its group or
//! by everyone, or when it belongs to another user (root's files are
//! trusted). Otherwise a local user could edit the config's `on_exposure`
//! hook and have it run as the node's user.
//!
//! The errors are one line naming the file and the command that fixes it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// What the checked path is, for the fix the message suggests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A private file (config, key): fixed with `chmod 600`.
    File,
    /// A private directory (the data directory): fixed with `chmod 700`.
    Dir,
    /// A program (the hook script): fixed with `chmod go-w`.
    Script,
}

/// The user id this process runs as (the owner of `/proc/self`), or `None`
/// where `/proc` is missing; then ownership is not checked.
pub fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// `path` quoted for a shell command line when it needs it.
pub(crate) fn shell_quote(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Refuses `path` (described as `what`, e.g. "config") when other users can
/// change it. A missing path is not an error here (the caller's own open
/// reports it).
pub fn check_not_writable_by_others(path: &Path, what: &str, kind: Kind) -> Result<(), String> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o7777;
    if let Some(me) = current_uid()
        && meta.uid() != me
        && meta.uid() != 0
    {
        return Err(format!(
            "{what} {} belongs to another user (user id {}), who could change what this node \
             does; make it yours with `chown {me} {}` (as root) or use your own copy",
            path.display(),
            meta.uid(),
            shell_quote(path)
        ));
    }
    if mode & 0o022 != 0 {
        let fix = match kind {
            Kind::File => "chmod 600",
            Kind::Dir => "chmod 700",
            Kind::Script => "chmod go-w",
        };
        return Err(format!(
            "{what} {}: other users can change it (permissions {:o}); run `{fix} {}`",
            path.display(),
            mode & 0o777,
            shell_quote(path)
        ));
    }
    Ok(())
}

/// A warning when other users can read into the data directory `dir` (its
/// database files are created with the umask), or `None`.
pub(crate) fn readable_by_others_warning(dir: &Path) -> Option<String> {
    let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "data directory {} is open to other users (permissions {mode:o}): they can read \
             its database files (sealed, but their sizes and times show activity); run \
             `chmod 700 {}`",
            dir.display(),
            shell_quote(dir)
        )
    })
}

/// The script an exposure hook runs, when its first word is a path to a
/// file (`/usr/local/bin/notify x` → that file). Bare command names are
/// found through `PATH` in system directories and are not checked.
pub(crate) fn hook_script(command: &str) -> Option<&Path> {
    let first = command.split_whitespace().next()?;
    let p = Path::new(first);
    (first.contains('/') && p.is_file()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with_mode(dir: &Path, name: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn group_or_world_writable_files_are_refused_with_the_chmod_to_run() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, kind, fix) in [
            (0o666, Kind::File, "chmod 600"),
            (0o620, Kind::File, "chmod 600"),
            (0o777, Kind::Script, "chmod go-w"),
        ] {
            let p = file_with_mode(dir.path(), "f", mode);
            let e = check_not_writable_by_others(&p, "config", kind).unwrap_err();
            assert!(e.contains(&format!("`{fix} {}`", p.display())), "{e}");
            assert!(e.contains(&format!("{mode:o}")), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        for mode in [0o600, 0o644, 0o400, 0o755] {
            let p = file_with_mode(dir.path(), "f", mode);
            check_not_writable_by_others(&p, "config", Kind::File).unwrap();
        }
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_not_writable_by_others(&d, "data directory", Kind::Dir).unwrap_err();
        assert!(e.contains("chmod 700"), "{e}");
        assert!(readable_by_others_warning(&d).is_some());
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        check_not_writable_by_others(&d, "data directory", Kind::Dir).unwrap();
        assert_eq!(readable_by_others_warning(&d), None);
    }

    /// Needs root to give a file away (the CI runs as root); elsewhere it
    /// checks only that one's own file passes.
    #[test]
    fn a_file_of_another_user_is_refused_and_roots_own_are_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let p = file_with_mode(dir.path(), "config.toml", 0o600);
        check_not_writable_by_others(&p, "config", Kind::File).unwrap();
        if current_uid() != Some(0) {
            eprintln!("not root: cannot hand a file to another user; skipped that part");
            return;
        }
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let e = check_not_writable_by_others(&p, "config", Kind::File).unwrap_err();
        assert!(e.contains("user id 65534"), "{e}");
        assert!(e.contains(&format!("chown 0 {}", p.display())), "{e}");
    }

    #[test]
    fn paths_in_hints_are_quoted_for_the_shell() {
        assert_eq!(shell_quote(Path::new("/a/b.toml")), "/a/b.toml");
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }

    #[test]
    fn the_hook_script_is_the_first_word_when_it_is_a_file_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = file_with_mode(dir.path(), "hook.sh", 0o700);
        let cmd = format!("{} --flag", p.display());
        assert_eq!(hook_script(&cmd), Some(p.as_path()));
        assert_eq!(hook_script("notify-send hi"), None);
        assert_eq!(hook_script("cat > /tmp/x"), None);
        assert_eq!(hook_script("   "), None);
    }
}
