//! Helpers for the tests of the local web pages (the node's page served by
//! `meshtrace run`, the clinic's page served by `meshtrace issuer serve`):
//! a real headless browser ([`browser`]) and plain HTTP requests beside it
//! ([`http`]).

pub mod browser;
pub mod http;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{CLI_WAIT, meshtrace_bin};

/// A running `meshtrace issuer serve` (the clinic's page), stopped when
/// dropped.
#[derive(Debug)]
pub struct IssuerPage {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The one-time login link it printed.
    pub login: String,
    log: PathBuf,
}

impl IssuerPage {
    /// Starts `meshtrace issuer serve --key KEY --listen 127.0.0.1:0
    /// --print-url EXTRA` (stderr to `LOG`) and waits (bounded) for the
    /// login link on its standard output.
    pub fn start(key: &Path, log: &Path, extra: &[&str]) -> IssuerPage {
        let mut child = Command::new(meshtrace_bin())
            .args(["issuer", "serve", "--key"])
            .arg(key)
            .args(["--listen", "127.0.0.1:0", "--print-url"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("spawn meshtrace issuer serve");
        let out = child.stdout.take().expect("stdout");
        // One line is expected; the reader thread ends with the process.
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let limit = crate::deadline(CLI_WAIT);
        let until = Instant::now() + limit;
        let login = loop {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                break line;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "issuer serve exited at start ({status}): {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < until,
                "issuer serve printed no link within {limit:?}"
            );
        };
        let url = login
            .split("/login?")
            .next()
            .filter(|u| u.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("not a login link: {login:?}"))
            .to_owned();
        IssuerPage {
            child: Some(child),
            url,
            login,
            log: log.to_owned(),
        }
    }

    /// Its socket address.
    pub fn addr(&self) -> SocketAddr {
        self.url
            .trim_start_matches("http://")
            .parse()
            .expect("a socket address")
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let limit = crate::deadline(CLI_WAIT);
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!("issuer serve did not stop after SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for IssuerPage {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `Set-Cookie` value's `name=value` part of a response, for sending it
/// back.
pub fn session_cookie(r: &http::Response) -> Option<String> {
    r.set_cookies()
        .into_iter()
        .filter_map(|c| c.split(';').next())
        .find(|kv| kv.starts_with("meshtrace_session="))
        .map(str::to_owned)
}
