//! A `cae serve` process on a free loopback port, and plain HTTP requests to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A data root of `train` / `test` real images in `dir`, an autoencoder run trained on it for
/// `epochs`, and an AutoCNN on its encoder: `(data, autoencoder, classifier)`.
pub fn trained_runs(
    dir: &Path,
    train: usize,
    test: usize,
    epochs: usize,
) -> (PathBuf, PathBuf, PathBuf) {
    let data = super::subset_root(&dir.join("data"), train, test);
    let (ae, cls) = (dir.join("ae"), dir.join("cls"));
    let epochs = epochs.to_string();
    let run = |args: &[&str]| {
        super::succeed(
            super::cae()
                .args(args)
                .args(["--epochs", &epochs, "--quiet", "--data"])
                .arg(&data),
        );
    };
    run(&["train-ae", "--out", ae.to_str().unwrap()]);
    run(&[
        "train-classifier",
        "--encoder",
        ae.to_str().unwrap(),
        "--out",
        cls.to_str().unwrap(),
    ]);
    (data, ae, cls)
}
use std::process::{Child, Stdio};

pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT/`
    pub url: String,
}

impl Server {
    /// Start `cae serve` with `args` (runs, limits) reading data from `data`.
    pub fn start(data: &Path, args: &[&str]) -> Self {
        let mut child = super::cae()
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("http://"), "cae serve printed {line:?}");
        Self {
            child,
            url: line.trim().to_string(),
        }
    }

    /// `METHOD path` with `body` of `content_type`: the status, the Retry-After header, the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Option<String>, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{}", self.url, path.trim_start_matches('/'));
        let response = match method {
            "GET" => agent.get(&url).call(),
            "POST" => agent
                .post(&url)
                .header("Content-Type", content_type)
                .send(body),
            "PUT" => agent
                .put(&url)
                .header("Content-Type", content_type)
                .send(body),
            other => panic!("no {other}"),
        };
        let mut response = response.unwrap();
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        (status, retry, text)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.request("GET", path, "", &[]);
        (status, body)
    }

    pub fn post_json(&self, path: &str, json: &str) -> (u16, String) {
        let (status, _, body) = self.request("POST", path, "application/json", json.as_bytes());
        (status, body)
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    }

    /// A raw connection to the server, for requests no HTTP client would send.
    pub fn connect(&self) -> std::net::TcpStream {
        let stream = std::net::TcpStream::connect(self.addr()).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        stream
    }

    /// A signal by name (`TERM`, `INT`), then the exit status and how long the exit took.
    pub fn signal(mut self, name: &str) -> (std::process::ExitStatus, std::time::Duration) {
        let pid = self.child.id().to_string();
        let started = std::time::Instant::now();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        (status, started.elapsed())
    }

    /// SIGINT, then the exit status of a clean shutdown.
    pub fn interrupt(self) -> std::process::ExitStatus {
        self.signal("INT").0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read one HTTP/1.1 answer from `stream` until the server closes it or its body is whole:
/// the status, the headers (lower case) and the body. `None` when the connection closed
/// without an answer.
pub fn read_answer(stream: &mut std::net::TcpStream) -> Option<(u16, String, String)> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if let Some(n) = length
                && bytes.len() >= end + 4 + n
            {
                let status = head.split(' ').nth(1)?.parse().ok()?;
                let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + n]).into_owned();
                return Some((status, head, body));
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    None
}
