//! The browser of the real-browser test: chromedriver and Chromium driven over the W3C WebDriver protocol
//! (https://www.w3.org/TR/webdriver2/) with plain HTTP, and the screenshots kept for CI.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any one step (a page load, an element appearing) may take.
pub(super) const STEP: Duration = Duration::from_secs(30);
/// W3C WebDriver §12.1: the key of a web element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub(super) struct BrowserTools {
    chromedriver: PathBuf,
    chromium: PathBuf,
}

/// Finds chromedriver and Chromium. `None` (after printing how to install them) only outside CI.
pub(super) fn browser_tools() -> Option<BrowserTools> {
    let chromedriver = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| in_path("chromedriver"));
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| in_path("chromium"))
        .or_else(|| in_path("chromium-browser"));
    match (chromedriver, chromium) {
        (Some(chromedriver), Some(chromium)) if chromedriver.is_file() && chromium.is_file() => {
            Some(BrowserTools {
                chromedriver,
                chromium,
            })
        }
        _ if std::env::var_os("CI").is_some() => panic!(
            "the real-browser test needs chromedriver and chromium, and CI is set: \
             install them (apt-get install chromium chromium-driver) or set CHROMEDRIVER and CHROMIUM"
        ),
        _ => {
            // Straight to stderr, past the test harness's output capture, so the note shows on a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "NOTE: skipping the real-browser test: chromedriver or chromium not found. \
                 Install them with `apt-get install chromium chromium-driver` (or set CHROMEDRIVER and CHROMIUM); \
                 in CI (CI set) this test fails instead."
            );
            None
        }
    }
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A chromedriver process and one session. Dropping it deletes the session (which ends Chromium) and kills
/// chromedriver and anything left in its process group, so nothing outlives a failed test.
pub(super) struct Browser {
    http: reqwest::Client,
    port: u16,
    base: String,
    session: String,
    driver: Child,
    /// Chromium's profile and chromedriver's log; removed after both have ended.
    profile: tempfile::TempDir,
}

impl Browser {
    pub(super) async fn start(tools: &BrowserTools) -> Browser {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap();
        let mut last_error = String::new();
        // chromedriver needs an explicit port: take a free one, and retry if another process won the race.
        for _ in 0..3 {
            let profile = tempfile::tempdir().unwrap();
            let port = free_port();
            let log = profile.path().join("chromedriver.log");
            let mut cmd = Command::new(&tools.chromedriver);
            cmd.arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            #[cfg(unix)]
            {
                use std::os::unix::process::CommandExt as _;
                cmd.process_group(0);
            }
            let mut browser = Browser {
                http: http.clone(),
                port,
                base: format!("http://127.0.0.1:{port}"),
                session: String::new(),
                driver: cmd.spawn().unwrap(),
                profile,
            };
            match browser.wait_ready().await {
                Ok(()) => {
                    browser.new_session(&tools.chromium).await;
                    return browser;
                }
                Err(e) => {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    last_error = format!("{e}\nchromedriver log:\n{log}");
                }
            }
        }
        panic!("chromedriver did not start: {last_error}");
    }

    /// Polls `GET /status` until chromedriver is ready (WebDriver §8.3).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(format!("chromedriver exited with {status}"));
            }
            if let Ok(resp) = self.http.get(format!("{}/status", self.base)).send().await {
                if let Ok(v) = resp.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        return Ok(());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("chromedriver was not ready in time".into())
    }

    /// `POST /session` (WebDriver §8.1) with a fresh profile and a phone-sized headless window.
    async fn new_session(&mut self, chromium: &Path) {
        let profile = format!(
            "--user-data-dir={}",
            self.profile.path().join("profile").display()
        );
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": STEP.as_millis() as u64, "script": 10_000, "implicit": 0},
            "goog:chromeOptions": {
                "binary": chromium,
                // A phone's viewport: headless Chromium will not make a window narrower than 500 px, and
                // emulation also honours the pages' `<meta name="viewport">` as a phone does.
                "mobileEmulation": {"deviceMetrics": {
                    "width": 412, "height": 915, "pixelRatio": 1.0, "mobile": true, "touch": true,
                }},
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=412,915", profile,
                ],
            },
        }}});
        let value = self
            .command(reqwest::Method::POST, "", Some(caps))
            .await
            .unwrap_or_else(|e| panic!("could not start Chromium: {e}"));
        self.session = value["sessionId"].as_str().unwrap().to_owned();
    }

    /// One WebDriver command on the session; `Err` carries the WebDriver error (§6.6).
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = if self.session.is_empty() {
            format!("{}/session{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        } else if method == reqwest::Method::POST {
            req = req.json(&json!({}));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let ok = resp.status().is_success();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(format!(
                "{method} {path}: {} {}",
                v["value"]["error"], v["value"]["message"]
            ))
        }
    }

    pub(super) async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await
            .unwrap();
    }

    async fn current_url(&self) -> String {
        let v = self
            .command(reqwest::Method::GET, "/url", None)
            .await
            .unwrap();
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The visible text of the page.
    pub(super) async fn text(&self) -> String {
        let v = self
            .command(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": "return document.body ? document.body.innerText : '';", "args": []})),
            )
            .await
            .unwrap();
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body; `return` gives the result) in the page (WebDriver §13.2.1).
    pub(super) async fn script(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
        .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    /// Waits for an element matching `css` and returns its reference (WebDriver §12.3.2).
    pub(super) async fn element(&self, css: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let found = self
                .command(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            match found {
                Ok(v) => match v[ELEMENT_KEY].as_str() {
                    Some(id) => return id.to_owned(),
                    None => panic!("{css}: not an element reference: {v}"),
                },
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "no {css} on {}: {e}\npage text: {}",
                        self.current_url().await,
                        self.text().await
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub(super) async fn type_into(&self, css: &str, text: &str) {
        let el = self.element(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{el}/clear"), None)
            .await
            .unwrap();
        self.command(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await
        .unwrap();
    }

    pub(super) async fn click(&self, css: &str) {
        let el = self.element(css).await;
        self.command(reqwest::Method::POST, &format!("/element/{el}/click"), None)
            .await
            .unwrap();
    }

    pub(super) async fn wait_for_url(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let url = self.current_url().await;
            if done(&url) {
                return url;
            }
            if Instant::now() > deadline {
                panic!(
                    "the browser did not reach {what}; it is at {url}\npage text: {}",
                    self.text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(super) async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("the page never showed {needle:?}; it shows: {text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /session/{id}/screenshot` (WebDriver §17.1): a PNG of the viewport.
    async fn screenshot(&self) -> Vec<u8> {
        let v = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await
            .unwrap();
        STANDARD.decode(v.as_str().unwrap()).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Blocking on purpose: Drop cannot await, and this also runs while unwinding from a failed assert.
            delete_session(self.port, &self.session);
        }
        let _ = self.driver.kill();
        #[cfg(unix)]
        {
            // Chromium processes, if any survived, are in chromedriver's process group (ours, by id).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.driver.id())])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/{id}` (WebDriver §8.2) over a plain socket; returns once chromedriver has answered (it
/// answers after Chromium has quit), reading only as far as `Content-Length` since it keeps the connection open.
fn delete_session(port: u16, session: &str) {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let mut reader = BufReader::new(s);
    let _ = write!(
        reader.get_mut(),
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    );
    let mut length = 0;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {
                if let Some((k, v)) = line.split_once(':') {
                    if k.trim().eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Saves PNGs to `<target>/browser-screenshots/<test>-<page>.png`.
pub(super) struct Screenshots {
    dir: PathBuf,
    test: &'static str,
}

impl Screenshots {
    pub(super) fn new(test: &'static str) -> Screenshots {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| {
                if t.is_relative() {
                    workspace.join(t)
                } else {
                    t
                }
            })
            .unwrap_or_else(|| workspace.join("target"));
        let dir = target.join("browser-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        Screenshots { dir, test }
    }

    pub(super) async fn take(&self, browser: &Browser, page: &str) {
        let png = browser.screenshot().await;
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let path = self.dir.join(format!("{}-{page}.png", self.test));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}
