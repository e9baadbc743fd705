//! A minimal W3C WebDriver client over reqwest, for the dashboard's browser test: it starts
//! Debian's `chromedriver` on a free port, opens a headless Chromium session, and offers the
//! few commands the test needs (navigate, find by CSS, text, attribute, click, execute
//! script, screenshot). chromedriver does the launching and the version check, so nothing
//! here knows about Chromium's own protocol.
//!
//! The commands are those of <https://www.w3.org/TR/webdriver2/>; every answer is
//! `{"value": ...}`, and an error is `{"value": {"error": "no such element", ...}}`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The browser Debian's `chromium` package installs.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The key under which W3C WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `chromedriver`, on PATH or where Debian's `chromium-driver` puts it.
pub fn chromedriver() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromedriver"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/bin/chromedriver");
        debian.is_file().then_some(debian)
    })
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A WebDriver error: the command, and what the driver said.
#[derive(Debug)]
pub struct WebDriverError {
    pub command: String,
    /// The W3C error code (`no such element`, `stale element reference`, ...), or `http`.
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.command, self.error, self.message)
    }
}

pub type Result<T> = std::result::Result<T, WebDriverError>;

/// A running chromedriver, killed when dropped.
pub struct ChromeDriver {
    child: Child,
    pub url: String,
}

impl ChromeDriver {
    /// Starts `driver` on a free port and waits until it says it is ready.
    pub async fn start(driver: &Path) -> ChromeDriver {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{}/status", driver.url)).send().await;
            if let Ok(answer) = ready
                && let Ok(body) = answer.json::<Value>().await
                && body["value"]["ready"] == json!(true)
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not get ready on {}",
                driver.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An element reference of a session.
#[derive(Debug, Clone)]
pub struct Element(String);

/// A browser session. Call [`Session::close`] at the end (the driver's death ends it too).
pub struct Session {
    http: reqwest::Client,
    base: String,
}

impl Session {
    /// Opens headless Chromium with a profile in `profile` and a 1280×900 window.
    pub async fn new(driver: &ChromeDriver, profile: &Path) -> Result<Session> {
        let http = reqwest::Client::new();
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            // Without these Chromium keeps calling home, and here there is no home to call.
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            format!("--user-data-dir={}", profile.display()),
            "--window-size=1280,900".to_owned(),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            // Keeps the page's console for `browser_errors`.
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let value = call(
            "new session",
            http.post(format!("{}/session", driver.url)).json(&caps),
        )
        .await?;
        let id = value["sessionId"].as_str().ok_or_else(|| WebDriverError {
            command: "new session".into(),
            error: "protocol".into(),
            message: format!("no sessionId in {value}"),
        })?;
        Ok(Session {
            base: format!("{}/session/{id}", driver.url),
            http,
        })
    }

    async fn post(&self, command: &str, path: &str, body: Value) -> Result<Value> {
        let request = self.http.post(format!("{}{path}", self.base)).json(&body);
        call(command, request).await
    }

    async fn get(&self, command: &str, path: &str) -> Result<Value> {
        call(command, self.http.get(format!("{}{path}", self.base))).await
    }

    /// Loads `url` (returns once the page's load event fired).
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post("navigate", "/url", json!({"url": url}))
            .await
            .map(drop)
    }

    /// The page's current address.
    pub async fn current_url(&self) -> Result<String> {
        let v = self.get("current url", "/url").await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching the CSS selector, if any.
    pub async fn find(&self, css: &str) -> Result<Option<Element>> {
        match self
            .post(
                "find element",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await
        {
            Ok(v) => Ok(element(&v)),
            Err(e) if e.error == "no such element" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every element matching the CSS selector.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self
            .post(
                "find elements",
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(element).collect())
            .unwrap_or_default())
    }

    /// The element's rendered text.
    pub async fn text(&self, el: &Element) -> Result<String> {
        let v = self
            .get("element text", &format!("/element/{}/text", el.0))
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// An attribute of the element (`class`, `data-restarts`, ...), if it has it.
    pub async fn attribute(&self, el: &Element, name: &str) -> Result<Option<String>> {
        let v = self
            .get(
                "element attribute",
                &format!("/element/{}/attribute/{name}", el.0),
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Clicks the element (scrolled into view first by the driver).
    pub async fn click(&self, el: &Element) -> Result<()> {
        self.post(
            "element click",
            &format!("/element/{}/click", el.0),
            json!({}),
        )
        .await
        .map(drop)
    }

    /// Runs `script` (a function body: `return ...`) in the page with `args`; its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.post(
            "execute script",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.get("take screenshot", "/screenshot").await?;
        base64_decode(v.as_str().unwrap_or_default()).ok_or_else(|| WebDriverError {
            command: "take screenshot".into(),
            error: "protocol".into(),
            message: "the screenshot is not base64".into(),
        })
    }

    /// Saves a PNG of the viewport to `path` (its folder is created).
    pub async fn save_screenshot(&self, path: &Path) -> Result<()> {
        let png = self.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        Ok(())
    }

    /// The page's errors since the last call: console errors, uncaught exceptions, failed
    /// loads (chromedriver's log endpoint, not part of W3C WebDriver).
    pub async fn browser_errors(&self) -> Result<Vec<String>> {
        let v = self
            .post("browser log", "/se/log", json!({"type": "browser"}))
            .await?;
        let entries = v.as_array().cloned().unwrap_or_default();
        Ok(entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect())
    }

    /// Ends the session (closes the browser).
    pub async fn close(self) -> Result<()> {
        call("delete session", self.http.delete(&self.base))
            .await
            .map(drop)
    }

    /// Polls `probe` every 100 ms until it gives `Some`, or panics naming `what` after
    /// `limit`. Driver errors in between (a stale element while the page redraws) count as
    /// "not yet".
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let deadline = Instant::now() + limit;
        let mut last_error = None;
        loop {
            match probe().await {
                Ok(Some(found)) => return found,
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
            if Instant::now() > deadline {
                panic!("waited {limit:?} for {what}; last driver error: {last_error:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn element(v: &Value) -> Option<Element> {
    v[ELEMENT_KEY].as_str().map(|id| Element(id.to_owned()))
}

/// Sends a command and unwraps `{"value": ...}`, turning W3C errors into [`WebDriverError`].
async fn call(command: &str, request: reqwest::RequestBuilder) -> Result<Value> {
    let fail = |error: &str, message: String| WebDriverError {
        command: command.to_owned(),
        error: error.to_owned(),
        message,
    };
    let answer = request
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| fail("http", e.to_string()))?;
    let status = answer.status();
    let body: Value = answer
        .json()
        .await
        .map_err(|e| fail("http", format!("{status}: {e}")))?;
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let message = value["message"]
            .as_str()
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        return Err(fail(error, message));
    }
    if !status.is_success() {
        return Err(fail("http", format!("{status}: {body}")));
    }
    Ok(value)
}

/// Standard base64 (with padding) to bytes; `None` on anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if !clean.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[test]
fn base64_decodes_with_and_without_padding() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
    assert!(base64_decode("a$==").is_none());
}
