//! A headless Chromium for tests, driven through chromedriver's W3C WebDriver HTTP protocol
//! with the reqwest client the tests already use (no WebDriver crate needed for the few
//! commands we send). `.ci/run` installs Debian's `chromium` and `chromium-driver`.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: Child,
    _profile: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Screenshots the README shows: the test's name for it, and its file under docs/img/.
const README_SCREENSHOTS: &[(&str, &str)] = &[
    ("overview-live", "dashboard-overview.png"),
    ("task-page-live", "dashboard-task.png"),
    ("dead-letter-replayed", "dashboard-dead-letter.png"),
];

pub fn screenshot_dir() -> PathBuf {
    // target/screenshots, next to the tests' tmp dir
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    pub async fn start() -> Browser {
        let driver_path = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("chromedriver is not installed: apt-get install -y chromium chromium-driver");
        let port = free_port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{base}/status")).send().await.ok();
            if let Some(r) = ready {
                if r.json::<Value>().await.map(|v| v["value"]["ready"] == true).unwrap_or(false) {
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("cutover-chromium-{}", uuid::Uuid::new_v4().simple()));
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            // the console (with its Content-Security-Policy violations), read by `log`
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let answer: Value =
            http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session =
            answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_owned();
        Browser { http, session: format!("{base}/session/{session}"), _driver: driver, _profile: profile }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        request = request.json(&body.unwrap_or_else(|| json!({})));
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// Runs `script` (a function body; `arguments` as given) and answers its result.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.command(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Runs an async script: the last argument is the callback to call with the answer.
    pub async fn eval_async(&self, script: &str, args: Value) -> Value {
        self.command(reqwest::Method::POST, "/execute/async", Some(json!({"script": script, "args": args}))).await
    }

    pub async fn find(&self, css: &str) -> Option<String> {
        let v =
            self.command(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    pub async fn count(&self, css: &str) -> usize {
        self.eval("return document.querySelectorAll(arguments[0]).length", json!([css])).await.as_u64().unwrap_or(0)
            as usize
    }

    pub async fn text(&self, css: &str) -> String {
        self.eval("const e = document.querySelector(arguments[0]); return e ? e.textContent : null", json!([css]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until `css` matches an element; fails the test after `deadline`.
    pub async fn wait(&self, css: &str, deadline: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(id) = self.find(css).await {
                return id;
            }
            if started.elapsed() > deadline {
                let page = self.eval("return location.href + ' :: ' + document.body.innerText", json!([])).await;
                panic!("timed out waiting for `{css}`; the page: {page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `css`'s text satisfies `check`.
    pub async fn wait_text(&self, css: &str, deadline: Duration, check: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css).await;
            if check(&text) {
                return text;
            }
            assert!(started.elapsed() < deadline, "timed out waiting on the text of `{css}` (last: `{text}`)");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let id = self.wait(css, Duration::from_secs(10)).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/click"), None).await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.wait(css, Duration::from_secs(10)).await;
        self.command(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    /// The text of the `confirm()` that is open, waiting up to 5 s for one.
    pub async fn alert_text(&self) -> String {
        let started = Instant::now();
        loop {
            let v = self.command(reqwest::Method::GET, "/alert/text", None).await;
            if let Some(text) = v.as_str() {
                return text.to_owned();
            }
            assert!(started.elapsed() < Duration::from_secs(5), "no dialog open: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Accepts the `confirm()` that is open.
    pub async fn accept_alert(&self) {
        let started = Instant::now();
        loop {
            let v = self.command(reqwest::Method::POST, "/alert/accept", None).await;
            if v.is_null() {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "no dialog to accept: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The browser's console entries since the last call (chromedriver hands each out once):
    /// `level message` per entry, CSP violations among them.
    pub async fn log(&self) -> Vec<String> {
        let entries = self.command(reqwest::Method::POST, "/se/log", Some(json!({"type": "browser"}))).await;
        let entries = entries.as_array().unwrap_or_else(|| panic!("no browser log: {entries}"));
        entries.iter().map(|e| format!("{} {}", e["level"].as_str().unwrap_or("?"), e["message"])).collect()
    }

    /// Where the first element matching `css` is drawn: `[left, width]` in CSS pixels, from
    /// its bounding box (what is painted, not what its attributes say).
    pub async fn drawn(&self, css: &str) -> Option<(f64, f64)> {
        let v = self
            .eval(
                "const e = document.querySelector(arguments[0]); if (!e) return null;
                 const r = e.getBoundingClientRect(); return [r.left, r.width]",
                json!([css]),
            )
            .await;
        Some((v.get(0)?.as_f64()?, v.get(1)?.as_f64()?))
    }

    /// Saves a PNG of the window under target/screenshots/. The ones the README shows
    /// (`README_SCREENSHOTS`) are written over docs/img/ too when
    /// `CUTOVER_UPDATE_README_SCREENSHOTS=1`, so the README's pictures are these tests' own.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let v = self.command(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        let update = std::env::var("CUTOVER_UPDATE_README_SCREENSHOTS").is_ok_and(|v| v == "1");
        if let (true, Some((_, readme))) = (update, README_SCREENSHOTS.iter().find(|(n, _)| *n == name)) {
            let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/img").join(readme);
            std::fs::write(docs, &png).unwrap();
        }
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let session = self.session.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                let _ = reqwest::Client::new().delete(session).send().await;
            });
        })
        .join();
        let _ = std::fs::remove_dir_all(&self._profile);
    }
}
