//! Who may use the page. A port on 127.0.0.1 is reachable by every user of
//! the computer (unlike the owner-only control socket), so the page is
//! locked with a secret only the node's owner can read:
//!
//! * the secret: 32 random bytes in `DATA_DIR/ui.key` (0600; refused when
//!   another user could read or change it);
//! * `meshtrace ui` reads it and makes a **one-time login code**
//!   (`/login?t=CODE`): its expiry, a random nonce and a keyed BLAKE3 MAC.
//!   The server accepts each code once, within [`LOGIN_CODE_TTL_SECONDS`],
//!   and only codes made after it started (so a restart does not make a
//!   used code good again);
//! * the login sets a **session cookie** (HttpOnly, SameSite=Strict,
//!   Path=/) made the same way, valid for [`SESSION_TTL_SECONDS`];
//! * every form carries a **CSRF token** derived from the session (a keyed
//!   hash of its nonce), checked in constant time on every POST.
//!
//! Each use of the secret has its own derived key (BLAKE3 `derive_key`), so
//! a login code is never a valid cookie or token.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

use rand::Rng;
use zeroize::Zeroizing;

/// A one-time login code is accepted for this long after it is made
/// (seconds).
pub const LOGIN_CODE_TTL_SECONDS: u64 = 300;
/// A session cookie is accepted for this long after the login (seconds).
pub const SESSION_TTL_SECONDS: u64 = 30 * 86_400;
/// Most login codes remembered as used (each only until it expires); when
/// full, further logins wait for older codes to expire.
pub const MAX_USED_LOGIN_CODES: usize = 4_096;
/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "meshtrace_session";
/// Longest token, code or cookie value read (bytes).
pub const MAX_TOKEN_LEN: usize = 256;

const NONCE_BYTES: usize = 16;
const LOGIN_CONTEXT: &str = "meshtrace ui 2026-12 one-time login code";
const SESSION_CONTEXT: &str = "meshtrace ui 2026-12 session cookie";
const CSRF_CONTEXT: &str = "meshtrace ui 2026-12 csrf token";

/// The page's secret (zeroized on drop, never printed).
pub struct Secret(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Refuses a secret file another user could read or change.
fn check_private(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if let Some(me) = meshtrace_node::perms::current_uid()
        && meta.uid() != me
    {
        return Err(format!(
            "the page's secret {} belongs to another user (user id {}); remove it and start \
             meshtrace again to make a new one",
            path.display(),
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the page's secret {}: other users can read or change it (permissions {mode:o}); \
             run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

impl Secret {
    /// A secret from its bytes (tests, and the file's contents).
    pub fn from_bytes(bytes: [u8; 32]) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    /// Reads the secret file (64 hex digits), refusing one other users
    /// could read or change.
    pub fn load(path: &Path) -> Result<Secret, String> {
        check_private(path)?;
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        let bytes = Zeroizing::new(
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(text.trim().as_bytes())
                .map_err(|_| {
                    format!(
                        "the page's secret {} is damaged; remove it and start meshtrace again",
                        path.display()
                    )
                })?,
        );
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "the page's secret {} is damaged; remove it and start meshtrace again",
                path.display()
            )
        })?;
        Ok(Secret::from_bytes(arr))
    }

    /// Reads the secret file, or creates it (owner-only) with a new random
    /// secret when there is none.
    pub fn load_or_create(path: &Path) -> Result<Secret, String> {
        if path.exists() {
            return Secret::load(path);
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        let text = Zeroizing::new(data_encoding::HEXLOWER.encode(bytes.as_ref()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create the page's secret {}: {e}", path.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write the page's secret {}: {e}", path.display()))?;
        Ok(Secret(bytes))
    }

    fn mac(&self, context: &str, input: &[u8]) -> blake3::Hash {
        let key = Zeroizing::new(blake3::derive_key(context, self.0.as_ref()));
        blake3::keyed_hash(&key, input)
    }

    /// `expiry.nonce.mac` for `context`.
    fn token(&self, context: &str, expiry: u64) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let body = format!("{expiry}.{}", data_encoding::HEXLOWER.encode(&nonce));
        let mac = self.mac(context, body.as_bytes());
        format!("{body}.{}", mac.to_hex())
    }

    /// Checks `expiry.nonce.mac` (the MAC in constant time) and returns
    /// (expiry, nonce) when it is authentic and not expired at `now`.
    fn check_token(&self, context: &str, value: &str, now: u64) -> Option<(u64, String)> {
        if value.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (body, mac_hex) = value.rsplit_once('.')?;
        let (expiry, nonce) = body.split_once('.')?;
        let given = blake3::Hash::from_hex(mac_hex).ok()?;
        // blake3::Hash compares in constant time.
        if self.mac(context, body.as_bytes()) != given {
            return None;
        }
        let expiry: u64 = expiry.parse().ok()?;
        if nonce.len() != 2 * NONCE_BYTES || now > expiry {
            return None;
        }
        Some((expiry, nonce.to_owned()))
    }

    /// A new one-time login code, made at `now` (UNIX seconds).
    pub fn login_code(&self, now: u64) -> String {
        self.token(LOGIN_CONTEXT, now.saturating_add(LOGIN_CODE_TTL_SECONDS))
    }

    /// A new session cookie value, made at `now`.
    pub fn session_cookie(&self, now: u64) -> String {
        self.token(SESSION_CONTEXT, now.saturating_add(SESSION_TTL_SECONDS))
    }

    /// The session of a cookie value, when it is authentic and current.
    pub fn session(&self, cookie: &str, now: u64) -> Option<Session> {
        self.check_token(SESSION_CONTEXT, cookie, now)
            .map(|(_, nonce)| Session { nonce })
    }

    /// The CSRF token of a session (put in every form).
    pub fn csrf_token(&self, session: &Session) -> String {
        self.mac(CSRF_CONTEXT, session.nonce.as_bytes())
            .to_hex()
            .to_string()
    }

    /// Whether `given` is the session's CSRF token (compared in constant
    /// time).
    pub fn check_csrf(&self, session: &Session, given: &str) -> bool {
        match blake3::Hash::from_hex(given.trim()) {
            Ok(h) => self.mac(CSRF_CONTEXT, session.nonce.as_bytes()) == h,
            Err(_) => false,
        }
    }
}

/// A logged-in browser session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    nonce: String,
}

/// Why a login code is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// Not authentic, expired, made before the server started, or used.
    Invalid,
    /// Too many recent logins are remembered; try again in a few minutes.
    Busy,
}

/// The one-time rule: remembers the codes used until they expire.
#[derive(Debug)]
pub struct LoginGuard {
    started_at: u64,
    used: Mutex<HashMap<String, u64>>,
}

impl LoginGuard {
    /// A guard for a server started at `started_at` (UNIX seconds): codes
    /// made before then are refused.
    pub fn new(started_at: u64) -> LoginGuard {
        LoginGuard {
            started_at,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// Accepts `code` once, at `now`.
    pub fn accept(&self, secret: &Secret, code: &str, now: u64) -> Result<(), LoginRefused> {
        let (expiry, nonce) = secret
            .check_token(LOGIN_CONTEXT, code, now)
            .ok_or(LoginRefused::Invalid)?;
        let made_at = expiry.saturating_sub(LOGIN_CODE_TTL_SECONDS);
        if made_at < self.started_at {
            return Err(LoginRefused::Invalid);
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        used.retain(|_, exp| *exp >= now);
        if used.contains_key(&nonce) {
            return Err(LoginRefused::Invalid);
        }
        if used.len() >= MAX_USED_LOGIN_CODES {
            return Err(LoginRefused::Busy);
        }
        used.insert(nonce, expiry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::from_bytes([9; 32])
    }

    #[test]
    fn login_codes_work_once_and_expire() {
        let s = secret();
        let g = LoginGuard::new(1_000);
        let code = s.login_code(1_000);
        assert_eq!(g.accept(&s, &code, 1_001), Ok(()));
        assert_eq!(g.accept(&s, &code, 1_002), Err(LoginRefused::Invalid));
        let late = s.login_code(1_010);
        assert_eq!(
            g.accept(&s, &late, 1_011 + LOGIN_CODE_TTL_SECONDS),
            Err(LoginRefused::Invalid)
        );
        // Made before the server started.
        let old = s.login_code(999);
        assert_eq!(g.accept(&s, &old, 1_001), Err(LoginRefused::Invalid));
        // Another secret's code, a code used as a cookie, garbage.
        let other = Secret::from_bytes([8; 32]).login_code(1_000);
        assert_eq!(g.accept(&s, &other, 1_001), Err(LoginRefused::Invalid));
        assert_eq!(s.session(&s.login_code(1_000), 1_001), None);
        for junk in ["", ".", "1.2.3", &"a".repeat(5000), "9999999999.00.zz"] {
            assert_eq!(g.accept(&s, junk, 1_001), Err(LoginRefused::Invalid));
        }
    }

    #[test]
    fn tampered_codes_are_refused() {
        let s = secret();
        let g = LoginGuard::new(0);
        let code = s.login_code(1_000);
        let (exp, rest) = code.split_once('.').unwrap();
        let later = format!("{}.{rest}", exp.parse::<u64>().unwrap() + 1_000);
        assert_eq!(g.accept(&s, &later, 1_001), Err(LoginRefused::Invalid));
    }

    #[test]
    fn sessions_and_csrf_tokens_belong_together() {
        let s = secret();
        let cookie = s.session_cookie(5_000);
        let session = s.session(&cookie, 5_001).unwrap();
        let token = s.csrf_token(&session);
        assert!(s.check_csrf(&session, &token));
        let other = s.session(&s.session_cookie(5_000), 5_001).unwrap();
        assert!(!s.check_csrf(&other, &token));
        assert!(!s.check_csrf(&session, ""));
        assert!(!s.check_csrf(&session, "00"));
        assert_eq!(s.session(&cookie, 5_001 + SESSION_TTL_SECONDS), None);
    }

    #[test]
    fn the_secret_file_is_owner_only_and_refused_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ui.key");
        let a = Secret::load_or_create(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = Secret::load_or_create(&p).unwrap();
        assert_eq!(a.0.as_ref(), b.0.as_ref());
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = Secret::load(&p).unwrap_err();
        assert!(e.contains("chmod 600") && e.contains("640"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, "not hex").unwrap();
        assert!(Secret::load(&p).unwrap_err().contains("damaged"));
    }
}
