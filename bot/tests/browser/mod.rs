//! A small Chrome DevTools Protocol client, enough to drive the dashboard
//! in a real headless Chromium: open a page, run JavaScript in it to fill
//! and submit forms, wait for the next page, read text. Chromium is the
//! one named by `SWITCHBOARD_TEST_CHROMIUM` (`ops/test.sh` installs
//! Debian's `chromium` and sets it).

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A headless Chromium with one page open.
pub struct Browser {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    child: tokio::process::Child,
    _profile: tempfile::TempDir,
}

/// The Chromium binary the tests use.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("SWITCHBOARD_TEST_CHROMIUM").unwrap_or_else(|| {
        panic!(
            "SWITCHBOARD_TEST_CHROMIUM is not set: the dashboard tests drive a real headless \
             Chromium. Run them with ops/test.sh (it installs Debian's `chromium` package and sets \
             the variable), or `apt-get install chromium` and set SWITCHBOARD_TEST_CHROMIUM=/usr/bin/chromium"
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "SWITCHBOARD_TEST_CHROMIUM names `{}`, which is not a file; install Debian's `chromium` package",
        path.display()
    );
    path
}

impl Browser {
    /// Starts Chromium and opens a blank page.
    pub async fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        // Chromium writes its port and browser path once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let mut endpoint = None;
        for _ in 0..300 {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let [port, path] = text.lines().collect::<Vec<_>>()[..]
            {
                endpoint = Some(format!("ws://127.0.0.1:{port}{path}"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let endpoint = endpoint.expect("chromium did not open its DevTools port within 30 s");
        let (ws, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .expect("connect to chromium's DevTools");
        let mut browser = Browser {
            ws,
            session: String::new(),
            next_id: 0,
            child,
            _profile: profile,
        };
        let target = browser
            .call("Target.createTarget", json!({"url": "about:blank"}), false)
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
                false,
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// Sends one command and waits for its result (events are skipped).
    async fn call(&mut self, method: &str, params: Value, on_page: bool) -> Value {
        self.try_call(method, params, on_page)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    async fn try_call(
        &mut self,
        method: &str,
        params: Value,
        on_page: bool,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if on_page {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("send to chromium");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("chromium did not answer {method} within 30 s"))
                .expect("chromium closed the DevTools connection")
                .expect("read from chromium");
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == json!(id) {
                return match reply.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(reply["result"].clone()),
                };
            }
        }
    }

    /// Evaluates JavaScript in the page (promises awaited) and returns its
    /// value; `None` if the page was between documents.
    async fn try_eval(&mut self, js: &str) -> Option<Value> {
        let r = self
            .try_call(
                "Runtime.evaluate",
                json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
                true,
            )
            .await
            .ok()?;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("JavaScript failed: {e}\n{js}");
        }
        Some(r["result"]["value"].clone())
    }

    /// Evaluates JavaScript in the page and returns its value.
    pub async fn eval(&mut self, js: &str) -> Value {
        for _ in 0..50 {
            if let Some(v) = self.try_eval(js).await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never became ready for: {js}");
    }

    /// Marks the current document, runs `action`, and waits until a new
    /// document has loaded.
    async fn and_wait(&mut self, action: impl AsyncFnOnce(&mut Browser)) {
        self.eval("window.__switchboardOld = true").await;
        action(self).await;
        for _ in 0..300 {
            if let Some(v) = self
                .try_eval("!window.__switchboardOld && document.readyState === 'complete'")
                .await
                && v == json!(true)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the next page did not load within 30 s");
    }

    /// Opens a URL and waits for it to load.
    pub async fn goto(&mut self, url: &str) {
        let url = url.to_string();
        self.and_wait(async move |b: &mut Browser| {
            b.call("Page.navigate", json!({"url": url}), true).await;
        })
        .await;
    }

    /// Runs JavaScript that submits a form (or follows a link) and waits
    /// for the page it leads to.
    pub async fn submit(&mut self, js: &str) {
        let js = js.to_string();
        self.and_wait(async move |b: &mut Browser| {
            b.eval(&js).await;
        })
        .await;
    }

    /// The text of the first element matching a CSS selector (`None` if
    /// there is none).
    pub async fn text(&mut self, selector: &str) -> Option<String> {
        let js = format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.textContent.trim() : null; }})()",
            json!(selector)
        );
        self.eval(&js).await.as_str().map(str::to_string)
    }

    /// The value of a cookie the browser holds for `url` (HttpOnly ones
    /// included).
    pub async fn cookie(&mut self, url: &str, name: &str) -> Option<String> {
        let r = self
            .call("Network.getCookies", json!({"urls": [url]}), true)
            .await;
        r["cookies"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == json!(name))
            .and_then(|c| c["value"].as_str())
            .map(str::to_string)
    }

    /// The page's address.
    pub async fn location(&mut self) -> String {
        self.eval("location.href")
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Lays the page out as a phone (`true`, 390 px wide) or a laptop does.
    pub async fn phone(&mut self, phone: bool) {
        let (width, height) = if phone { (390, 844) } else { (1280, 900) };
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone}),
            true,
        )
        .await;
    }

    /// Saves a PNG screenshot of the page.
    pub async fn screenshot(&mut self, path: &std::path::Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
                true,
            )
            .await;
        let data = shot["data"].as_str().unwrap();
        std::fs::write(path, base64_decode(data)).unwrap();
    }

    /// Closes Chromium.
    pub async fn close(mut self) {
        let _ = self.call("Browser.close", json!({}), false).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// Standard base64, as CDP sends binary data.
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| {
            acc | (u32::from(value(*c)) << (18 - 6 * i))
        });
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}
