//! `cae serve`'s page in a real browser: Chromium driven over the WebDriver protocol
//! (ChromeDriver, from Debian's `chromium` and `chromium-driver` packages). Draws a digit with
//! pointer events, moves a latent slider, uploads a file, and saves a screenshot; then, as a
//! phone (a 390-pixel touch screen), draws with a finger and uploads a photo of megabytes.
//!
//! Without ChromeDriver the test skips with a printed reason, unless `CAE_REQUIRE_BROWSER=1`
//! (set by `.ci/run`), where a missing browser fails it.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use serde_json::{Value, json};

/// The W3C name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    process: Child,
    session: String,
    base: String,
    agent: ureq::Agent,
}

impl Driver {
    /// A browser session; `phone` emulates a phone's screen and touch input.
    fn start(chromedriver: &Path, chromium: &Path, phone: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent.get(format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut driver = Self {
            process,
            session: String::new(),
            base,
            agent,
        };
        let mut options = json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,1000"]
        });
        if phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0, "touch": true},
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"
            });
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options
        }}});
        let answer = driver.call("POST", "/session", caps);
        driver.session = answer["sessionId"].as_str().expect("a session").to_string();
        driver
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.base, path);
        let mut response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes()),
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert!(status < 400, "{method} {path}: {status} {text}");
        value["value"].clone()
    }

    fn session(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
    }

    fn script(&self, script: &str) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    fn element(&self, css: &str) -> String {
        let found = self.session(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .to_string()
    }

    /// Mouse actions (W3C "perform actions") starting at the centre of `element`, moving by
    /// each `(dx, dy)` of `path` with the button held.
    fn drag(&self, element: &str, start: (i64, i64), path: &[(i64, i64)]) {
        self.stroke("mouse", element, start, path);
    }

    /// [`drag`](Self::drag) with a pointer of `kind`: `mouse` or `touch` (a finger).
    fn stroke(&self, kind: &str, element: &str, start: (i64, i64), path: &[(i64, i64)]) {
        let origin = json!({ ELEMENT: element });
        let mut actions = vec![
            json!({"type": "pointerMove", "origin": origin, "x": start.0, "y": start.1, "duration": 0}),
            json!({"type": "pointerDown", "button": 0}),
        ];
        for &(x, y) in path {
            actions.push(
                json!({"type": "pointerMove", "origin": origin, "x": x, "y": y, "duration": 20}),
            );
        }
        actions.push(json!({"type": "pointerUp", "button": 0}));
        self.session(
            "POST",
            "/actions",
            json!({"actions": [{"type": "pointer", "id": kind, "parameters": {"pointerType": kind}, "actions": actions}]}),
        );
    }

    /// Choose `file` in the page's upload input; the class predicted for it.
    fn upload(&self, file: &Path) -> Value {
        self.script("document.getElementById('predicted').textContent = ''");
        let upload = self.element("#upload");
        self.session(
            "POST",
            &format!("/element/{upload}/value"),
            json!({"text": file.to_str().unwrap()}),
        );
        self.wait_for(
            "return document.getElementById('predicted').textContent",
            "the upload's prediction",
        )
    }

    /// Wait until `script` returns something truthy; return it.
    fn wait_for(&self, script: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let value = self.script(script);
            if !(value.is_null() || value == json!(false) || value == json!("")) {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Sum of a 28×28 canvas's grey values, and the values themselves.
const CANVAS: &str = "const c = document.getElementById(ID); const d = c.getContext('2d').getImageData(0, 0, 28, 28).data; \
     const g = []; for (let i = 0; i < d.length; i += 4) g.push(d[i]); return g;";

fn canvas(driver: &Driver, id: &str) -> Vec<u64> {
    let values = driver.script(&CANVAS.replace("ID", &format!("'{id}'")));
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn find(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// ChromeDriver and Chromium, or `None` (and why, printed) where they are missing and not
/// required.
fn browser() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (Some(chromedriver), Some(chromium)) = (find("chromedriver"), find("chromium")) else {
        assert!(
            std::env::var("CAE_REQUIRE_BROWSER").is_err(),
            "CAE_REQUIRE_BROWSER is set but chromium or chromedriver is not on PATH"
        );
        eprintln!(
            "skipped: no chromium/chromedriver on PATH (apt-get install chromium chromium-driver)"
        );
        return None;
    };
    Some((chromedriver, chromium))
}

#[test]
fn draw_steer_and_upload_in_a_real_browser_and_on_a_phone() {
    let Some((chromedriver, chromium)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (data, ae, cls) = common::server::trained_runs(dir.path(), 6_000, 200, 3);
    let server = Server::start(
        &data,
        &[
            "--ae",
            ae.to_str().unwrap(),
            "--classifier",
            cls.to_str().unwrap(),
            "--body-limit",
            "400000",
        ],
    );

    let driver = Driver::start(&chromedriver, &chromium, false);
    driver.session("POST", "/url", json!({"url": server.url}));
    driver.wait_for("return document.body.dataset.ready", "the page to load");

    // Draw a one: a vertical stroke down the middle of the pad.
    let pad = driver.element("#pad");
    driver.drag(&pad, (0, -95), &[(0, -40), (0, 20), (0, 95)]);
    let predicted = driver.wait_for(
        "return document.getElementById('predicted').textContent",
        "a prediction",
    );
    assert_eq!(predicted, json!("1"), "a vertical stroke is a one");
    let input = canvas(&driver, "input");
    let recon = canvas(&driver, "recon");
    assert!(
        input.iter().sum::<u64>() > 28 * 255,
        "the model input is blank"
    );
    assert!(
        recon.iter().filter(|&&v| v > 100).count() > 10,
        "the reconstruction is blank"
    );

    // The screenshot for the README (the drawn digit, its input, reconstruction, probabilities and code), in the test's scratch folder.
    let shot = driver.session("GET", "/screenshot", Value::Null);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-screenshot.png");
    std::fs::write(&out, bytes).unwrap();
    eprintln!("screenshot: {}", out.display());

    // Drag a live latent slider to its right end: the decoded image changes.
    let dead: Vec<u64> = serde_json::from_value(
        driver.script("return fetch('/api/health').then(r => r.json()).then(h => h.dead_units)"),
    )
    .unwrap();
    let unit = (0..10).find(|j| !dead.contains(j)).unwrap();
    let slider = driver.element(&format!("#z{unit}"));
    driver.drag(&slider, (0, 0), &[(40, 0), (90, 0)]);
    driver.wait_for(
        &format!("return document.getElementById('status').textContent.includes('decoded') && document.getElementById('v{unit}').textContent"),
        "the edited code to be decoded",
    );
    assert_ne!(
        canvas(&driver, "recon"),
        recon,
        "moving a slider did not change the decoded image"
    );

    // Upload a real test digit as a PNG file.
    let test =
        cae::data::Dataset::load(&data, cae::data::DatasetKind::Mnist, cae::data::Split::Test)
            .unwrap();
    let index = (0..test.len()).find(|&i| test.labels[i] == 7).unwrap();
    let png = dir.path().join("seven.png");
    image::GrayImage::from_raw(28, 28, test.image(index).to_vec())
        .unwrap()
        .save(&png)
        .unwrap();
    let predicted = driver.upload(&png);
    assert_eq!(predicted, json!("7"), "the uploaded seven");
    drop(driver);

    on_a_phone(&chromedriver, &chromium, &server, &data, dir.path());
    assert!(server.interrupt().success());
}

/// The same page on a phone: a finger draws, and a photo of megabytes goes up shrunk below
/// the server's body limit (400 kB in this test).
fn on_a_phone(chromedriver: &Path, chromium: &Path, server: &Server, data: &Path, dir: &Path) {
    let driver = Driver::start(chromedriver, chromium, true);
    driver.session("POST", "/url", json!({"url": server.url}));
    driver.wait_for("return document.body.dataset.ready", "the page to load");
    assert_eq!(
        driver.script("return window.innerWidth"),
        json!(390),
        "not a phone-sized viewport"
    );
    assert_eq!(
        driver.script("return document.getElementById('camera').getAttribute('capture')"),
        json!("environment")
    );

    // A finger draws a one.
    let pad = driver.element("#pad");
    driver.stroke("touch", &pad, (0, -95), &[(0, -40), (0, 20), (0, 95)]);
    let predicted = driver.wait_for(
        "return document.getElementById('predicted').textContent",
        "a prediction of the finger's stroke",
    );
    assert_eq!(predicted, json!("1"), "a vertical stroke is a one");

    // A 3000×4000 photo of a seven on grey paper, with sensor noise: megabytes as a JPEG.
    let test =
        cae::data::Dataset::load(data, cae::data::DatasetKind::Mnist, cae::data::Split::Test)
            .unwrap();
    let index = (0..test.len()).find(|&i| test.labels[i] == 7).unwrap();
    let digit = image::GrayImage::from_raw(28, 28, test.image(index).to_vec()).unwrap();
    let digit = image::imageops::resize(&digit, 2400, 2400, image::imageops::FilterType::Triangle);
    let mut noise = 12345u32;
    let photo = image::RgbImage::from_fn(3000, 4000, |x, y| {
        noise = noise.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let grain = (noise >> 27) as u8;
        let ink = if (300..2700).contains(&x) && (800..3200).contains(&y) {
            digit.get_pixel(x - 300, y - 800)[0]
        } else {
            0
        };
        let v = 200u8
            .saturating_sub(ink / 2 + ink / 4)
            .saturating_add(grain);
        image::Rgb([v, v, v.saturating_sub(10)])
    });
    let jpeg = dir.join("photo.jpg");
    photo.save(&jpeg).unwrap();
    let size = std::fs::metadata(&jpeg).unwrap().len();
    assert!(size > 1_000_000, "the photo is only {size} bytes");

    let predicted = driver.upload(&jpeg);
    let status = driver.script("return document.getElementById('status').textContent");
    assert_eq!(predicted, json!("7"), "the photographed seven ({status})");
    // What went up: at most 512 pixels a side, under the body limit.
    let sent = driver.script("return document.body.dataset.uploaded");
    let sent = sent.as_str().unwrap();
    let (side, bytes) = sent.split_once(' ').unwrap();
    assert_eq!(side, "384x512", "{sent}");
    assert!(bytes.parse::<u64>().unwrap() < 400_000, "{sent}");

    let shot = driver.session("GET", "/screenshot", Value::Null);
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-phone-screenshot.png");
    std::fs::write(&out, png).unwrap();
    eprintln!("screenshot: {}", out.display());
}
