//! A real browser for the page tests: Debian's headless Chromium driven
//! through `chromedriver` by `fantoccini`.
//!
//! One [`Browser`] per test binary: it starts one `chromedriver` on a free
//! loopback port and one Chromium session with a fresh profile directory,
//! and stops both when dropped. Its methods block (it owns a small tokio
//! runtime), so the tests stay plain `#[test]` functions like the rest of
//! this crate. Every wait polls the page with a deadline scaled to the
//! machine's load ([`crate::deadline`]); none sleeps and hopes.
//!
//! [`Browser::launch_or_skip`] skips (with a message saying what is missing)
//! when Chromium, chromedriver or axe-core is not installed — except under
//! `CI=true`, where a missing browser is a failure: CI installs them
//! (`.ci/run`).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// Bound on one wait for the page (a navigation, an element, a text), on an
/// idle machine; scaled by [`crate::deadline`].
pub const PAGE_WAIT: Duration = Duration::from_secs(30);

/// Bound on chromedriver's start and the browser session's creation, on an
/// idle machine (Chromium's first start on a busy machine takes seconds).
pub const START_WAIT: Duration = Duration::from_secs(60);

/// Where axe-core is installed (`npm ci --prefix tests/web`), relative to the
/// `tests/` crate.
pub const AXE_PATH: &str = "web/node_modules/axe-core/axe.min.js";

/// The phone and desktop viewports every page is photographed at.
pub const VIEWPORTS: [(u32, u32); 2] = [(390, 844), (1280, 800)];

/// Chromium's flags for running as root in a container: no sandbox (root),
/// no GPU, and nothing that talks to the internet on its own.
const CHROMIUM_ARGS: [&str; 10] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// One accessibility violation axe-core reported.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The rule's id (e.g. `color-contrast`).
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: String,
    /// What the rule checks.
    pub help: String,
    /// CSS selectors of the offending elements.
    pub targets: Vec<String>,
}

/// Tries to type into a field that a page replacement made stale.
pub const FILL_ATTEMPTS: u32 = 5;

/// A headless Chromium session and the chromedriver behind it.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    profile: tempfile::TempDir,
    axe: String,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("profile", &self.profile.path())
            .finish_non_exhaustive()
    }
}

/// Whether this run is CI's (`CI=true`): there a missing browser fails.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// What is missing for the browser tests, in words, or `None` when all is
/// installed.
pub fn missing() -> Option<String> {
    let mut gone = Vec::new();
    if on_path("chromium").is_none() {
        gone.push("chromium (apt-get install chromium)");
    }
    if on_path("chromedriver").is_none() {
        gone.push("chromedriver (apt-get install chromium-driver)");
    }
    if !axe_file().is_file() {
        gone.push("axe-core (npm ci --prefix tests/web)");
    }
    (!gone.is_empty()).then(|| gone.join(", "))
}

fn axe_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(AXE_PATH)
}

fn free_tcp_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

impl Browser {
    /// Starts the browser, or returns `None` after printing why the test is
    /// skipped (Chromium, chromedriver or axe-core missing). Under `CI=true`
    /// a missing piece panics instead: CI installs them.
    pub fn launch_or_skip(test: &str) -> Option<Browser> {
        if let Some(what) = missing() {
            assert!(
                !under_ci(),
                "{test}: the browser tests cannot run under CI=true without {what}"
            );
            eprintln!("{test}: SKIPPED — not installed: {what}");
            return None;
        }
        Some(Browser::launch())
    }

    /// Starts chromedriver and a headless Chromium session (panics with the
    /// cause when either fails).
    pub fn launch() -> Browser {
        let axe = std::fs::read_to_string(axe_file())
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", axe_file().display()));
        let profile = tempfile::tempdir().expect("a profile directory");
        let port = free_tcp_port();
        let log = profile.path().join("chromedriver.log");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut b = Browser {
            rt,
            client: None,
            driver,
            profile,
            axe,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let limit = crate::deadline(START_WAIT);
        let until = Instant::now() + limit;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = b.driver.try_wait() {
                panic!(
                    "chromedriver exited at start ({status}): {}",
                    b.driver_log()
                );
            }
            assert!(
                Instant::now() < until,
                "chromedriver did not listen within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let user_data = b.profile.path().join("chromium");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", user_data.display()));
        args.push("--lang=en-US".into());
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "args": args,
                "prefs": { "intl.accept_languages": "en-US,en" },
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!("a JSON object"),
        };
        let url = format!("http://{addr}");
        let client =
            b.rt.block_on(async {
                tokio::time::timeout(limit, async {
                    ClientBuilder::new(HttpConnector::new())
                        .capabilities(caps)
                        .connect(&url)
                        .await
                })
                .await
            })
            .unwrap_or_else(|_| panic!("no browser session within {limit:?}"))
            .unwrap_or_else(|e| panic!("cannot start Chromium: {e}; {}", b.driver_log()));
        b.client = Some(client);
        b
    }

    fn driver_log(&self) -> String {
        let text = std::fs::read_to_string(self.profile.path().join("chromedriver.log"))
            .unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("a browser session")
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.block(self.c().goto(url))
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The address the browser shows now.
    pub fn url(&self) -> String {
        self.block(self.c().current_url())
            .map(|u| u.to_string())
            .expect("the current URL")
    }

    /// Runs `script` in the page (its `return` value as JSON).
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.block(self.c().execute(script, args))
            .unwrap_or_else(|e| panic!("script failed: {e}: {script}"))
    }

    /// The page's text as a person sees it (`document.body.innerText`).
    pub fn body_text(&self) -> String {
        self.js(
            "return document.body ? document.body.innerText : '';",
            vec![],
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// The page's `<html lang>`.
    pub fn lang(&self) -> String {
        self.js("return document.documentElement.lang;", vec![])
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The elements matching `css` now (possibly none).
    pub fn all(&self, css: &str) -> Vec<Element> {
        self.block(self.c().find_all(Locator::Css(css)))
            .unwrap_or_default()
    }

    /// Polls until `f` returns `Some` (bounded by [`PAGE_WAIT`], scaled);
    /// panics naming `what` and showing the page's text otherwise.
    pub fn wait_until<T>(&self, what: &str, mut f: impl FnMut(&Browser) -> Option<T>) -> T {
        let limit = crate::deadline(PAGE_WAIT);
        let until = Instant::now() + limit;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            assert!(
                Instant::now() < until,
                "timed out ({limit:?}) waiting for {what}; the page ({}) shows:\n{}",
                self.url(),
                self.body_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for an element matching `css` and returns it.
    pub fn wait_for(&self, css: &str) -> Element {
        self.wait_until(&format!("an element {css}"), |b| {
            b.all(css).into_iter().next()
        })
    }

    /// Waits until the page's text contains `needle`.
    pub fn wait_text(&self, needle: &str) {
        self.wait_until(&format!("the text {needle:?}"), |b| {
            b.body_text().contains(needle).then_some(())
        })
    }

    /// Reloads the page until its text contains `needle` (for state the
    /// server changes on its own, such as an exposure arriving).
    pub fn reload_until_text(&self, needle: &str) {
        self.wait_until(&format!("the text {needle:?} after reloads"), |b| {
            if b.body_text().contains(needle) {
                return Some(());
            }
            let _ = b.block(b.c().refresh());
            b.body_text().contains(needle).then_some(())
        })
    }

    /// The visible text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let e = self.wait_for(css);
        self.block(e.text()).expect("element text")
    }

    /// An attribute of the first element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let e = self.wait_for(css);
        self.block(e.attr(name)).expect("element attribute")
    }

    /// Replaces the value of the field matching `css` with `value`.
    ///
    /// A page that was still being replaced when the field was found (after
    /// a form post) leaves a stale element: the field is found again in the
    /// new page, up to [`FILL_ATTEMPTS`] times.
    pub fn fill(&self, css: &str, value: &str) {
        let mut attempt = 1;
        loop {
            let e = self.wait_for(css);
            match self.block(async {
                e.clear().await?;
                e.send_keys(value).await
            }) {
                Ok(()) => return,
                Err(err) if attempt < FILL_ATTEMPTS && is_stale(&err.to_string()) => {
                    attempt += 1;
                }
                Err(err) => panic!("cannot type into {css}: {err}"),
            }
        }
    }

    /// Sets the value of a field that typing cannot set well (a date input:
    /// its format follows the browser's locale) through the DOM.
    pub fn set_value(&self, css: &str, value: &str) {
        self.wait_for(css);
        self.js(
            "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
             e.dispatchEvent(new Event('change', {bubbles: true})); return e.value;",
            vec![json!(css), json!(value)],
        );
    }

    /// Chooses `path` in the file input matching `css`.
    pub fn upload(&self, css: &str, path: &Path) {
        let e = self.wait_for(css);
        let p = path.display().to_string();
        self.block(e.send_keys(&p))
            .unwrap_or_else(|e| panic!("cannot choose {p} in {css}: {e}"));
    }

    /// Clicks the element matching `css` (a button or a link) and waits for
    /// the page it leads to, if any.
    pub fn click(&self, css: &str) {
        let e = self.wait_for(css);
        self.block(e.click())
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
        self.wait_until("the page to load", |b| {
            (b.js("return document.readyState;", vec![]) == json!("complete")).then_some(())
        });
    }

    /// Removes every cookie of the current site.
    pub fn delete_cookies(&self) {
        self.block(self.c().delete_all_cookies())
            .expect("delete cookies");
    }

    /// Names of the current site's cookies.
    pub fn cookie_names(&self) -> Vec<String> {
        self.block(self.c().get_all_cookies())
            .expect("cookies")
            .iter()
            .map(|c| c.name().to_owned())
            .collect()
    }

    /// Runs axe-core in the page and returns its violations (every impact).
    pub fn axe(&self) -> Vec<Violation> {
        self.block(self.c().execute(&self.axe, vec![]))
            .expect("inject axe-core");
        let found = self
            .block(self.c().execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, {resultTypes: ['violations']})\
                   .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact || '', \
                      help: v.help, targets: v.nodes.map(n => n.target.join(' '))}))))\
                   .catch(e => done({error: String(e)}));",
                vec![],
            ))
            .expect("run axe-core");
        if let Some(err) = found.get("error") {
            panic!("axe-core failed: {err}");
        }
        found
            .as_array()
            .expect("a list of violations")
            .iter()
            .map(|v| Violation {
                id: v["id"].as_str().unwrap_or_default().to_owned(),
                impact: v["impact"].as_str().unwrap_or_default().to_owned(),
                help: v["help"].as_str().unwrap_or_default().to_owned(),
                targets: v["targets"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Asserts that axe-core finds no serious or critical violation in the
    /// page (`page` names it in the failure).
    pub fn assert_accessible(&self, page: &str) {
        let bad: Vec<Violation> = self
            .axe()
            .into_iter()
            .filter(|v| v.impact == "serious" || v.impact == "critical")
            .collect();
        assert!(
            bad.is_empty(),
            "axe-core: serious or critical violations on {page}:\n{}",
            bad.iter()
                .map(|v| format!(
                    "  {} ({}): {} — {}",
                    v.id,
                    v.impact,
                    v.help,
                    v.targets.join(", ")
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Sizes the viewport (the page's area, not the window) to `w`×`h` CSS
    /// pixels.
    pub fn set_viewport(&self, (w, h): (u32, u32)) {
        let c = self.c();
        self.block(c.set_window_size(w, h)).expect("window size");
        // The window is larger than its viewport by the browser's own
        // frame (none in headless mode, but that is the browser's choice):
        // correct once by the measured difference.
        let inner = self.js("return [window.innerWidth, window.innerHeight];", vec![]);
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(u64::from(w)) as u32,
            inner[1].as_u64().unwrap_or(u64::from(h)) as u32,
        );
        if (iw, ih) != (w, h) {
            self.block(c.set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih)))
                .expect("window size");
        }
    }

    /// Saves a PNG of the viewport at each of [`VIEWPORTS`] as
    /// `DIR/NAME-WxH.png`; returns the files written. The window is left at
    /// the last size.
    pub fn screenshots(&self, dir: &Path, name: &str) -> Vec<PathBuf> {
        std::fs::create_dir_all(dir).expect("screenshot directory");
        let mut out = Vec::new();
        for size in VIEWPORTS {
            self.set_viewport(size);
            let png = self.block(self.c().screenshot()).expect("screenshot");
            assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
            let file = dir.join(format!("{name}-{}x{}.png", size.0, size.1));
            std::fs::write(&file, png).expect("write the screenshot");
            out.push(file);
        }
        out
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let limit = crate::deadline(Duration::from_secs(10));
            let _ = self
                .rt
                .block_on(async move { tokio::time::timeout(limit, c.close()).await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where the screenshots go: `target/ui-screenshots/` of this workspace (or
/// `MESHTRACE_SCREENSHOTS`).
pub fn screenshot_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MESHTRACE_SCREENSHOTS") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/
    exe.ancestors()
        .nth(3)
        .map(|t| t.join("ui-screenshots"))
        .expect("target/<profile>/deps layout")
}

/// Whether a WebDriver error says the element left the page (it was
/// replaced by a reload or a form post): chromedriver reports it either as
/// a stale element or, when the page changes mid-command, as a node that
/// "does not belong to the document".
fn is_stale(err: &str) -> bool {
    err.contains("stale element") || err.contains("does not belong to the document")
}
