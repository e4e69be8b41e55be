//! `cae serve`'s API: answers, and a one-line JSON 4xx for every malformed request.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::server::{Server, read_answer};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn pixels(values: &[f64]) -> String {
    serde_json::json!({ "pixels": values }).to_string()
}

#[test]
fn the_api_answers_and_refuses_each_malformed_request_with_a_json_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ae, cls) = common::server::trained_runs(dir.path(), 3_000, 200, 2);
    let server = Server::start(
        &data,
        &[
            "--ae",
            ae.to_str().unwrap(),
            "--classifier",
            cls.to_str().unwrap(),
            "--body-limit",
            "100000",
        ],
    );

    let (status, body) = server.get("/api/health");
    assert_eq!(status, 200);
    let health = json(&body);
    assert_eq!(health["latent"], 10);
    assert_eq!(health["classes"].as_array().unwrap().len(), 10);
    let (status, page) = server.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("<canvas id=\"pad\""), "the page");

    // A real test digit, as pixels: class probabilities summing to 1, a reconstruction, a code.
    let (status, body) = server.get("/api/random?seed=0");
    assert_eq!(status, 200);
    let random = json(&body);
    let input: Vec<f64> = serde_json::from_value(random["input"].clone()).unwrap();
    let (status, body) = server.post_json("/api/analyze", &pixels(&input));
    assert_eq!(status, 200, "{body}");
    let analysis = json(&body);
    let probabilities: Vec<f64> =
        serde_json::from_value(analysis["probabilities"].clone()).unwrap();
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    assert_eq!(analysis["reconstruction"].as_array().unwrap().len(), 784);
    // The same image sent back as pixels gives the same answer as /api/random did.
    for key in ["probabilities", "reconstruction", "latent", "class"] {
        assert_eq!(analysis[key], random[key], "{key}");
    }
    let latent = analysis["latent"].clone();
    let (status, body) = server.post_json(
        "/api/decode",
        &serde_json::json!({ "latent": latent }).to_string(),
    );
    assert_eq!(status, 200);
    assert_eq!(json(&body)["reconstruction"], analysis["reconstruction"]);
    let (status, body) = server.post_json(
        "/api/interpolate",
        &serde_json::json!({ "a": latent, "b": latent, "steps": 4 }).to_string(),
    );
    assert_eq!(
        (status, json(&body)["images"].as_array().unwrap().len()),
        (200, 5)
    );
    let (status, body) = server.get("/api/sample?seed=1");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        server.get("/api/sample?seed=1").1,
        "a seed draws the same code"
    );

    // Each malformed request: its status and a one-line JSON error.
    let refused = |(status, _, body): (u16, Option<String>, String), want: u16, needle: &str| {
        assert_eq!(status, want, "{body}");
        assert!(!body.contains('\n'), "{body}");
        let message = json(&body)["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_string();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    };
    let post = |path: &str, ct: &str, body: &[u8]| server.request("POST", path, ct, body);
    refused(
        post(
            "/api/analyze",
            "application/json",
            pixels(&[0.5; 10]).as_bytes(),
        ),
        400,
        "pixels has 10 values",
    );
    refused(
        post("/api/analyze", "application/json", br#"{"pixels":["a"]}"#),
        400,
        "malformed JSON",
    );
    refused(
        post("/api/analyze", "application/json", br#"{"pixels":[NaN]}"#),
        400,
        "malformed JSON",
    );
    refused(
        post("/api/analyze", "application/json", br#"{"pixels":[1e999]}"#),
        400,
        "malformed JSON",
    );
    refused(
        post(
            "/api/analyze",
            "application/json",
            pixels(&[2.0; 784]).as_bytes(),
        ),
        400,
        "from 0 to 1",
    );
    refused(
        post(
            "/api/analyze",
            "application/json",
            br#"{"pixels":[], "x":1}"#,
        ),
        400,
        "unknown field",
    );
    refused(
        post("/api/analyze", "application/json", b"{"),
        400,
        "malformed JSON",
    );
    refused(
        post("/api/analyze", "text/plain", b"hello"),
        415,
        "expected application/json",
    );
    refused(
        post("/api/analyze", "image/png", b"not a png"),
        400,
        "unreadable image",
    );
    // Over the limit: the body is read to its end first, so the client always gets the
    // answer (this once failed about one run in a dozen, a reset before the 413 was read).
    for _ in 0..20 {
        refused(
            post("/api/analyze", "image/png", &vec![0u8; 200_000]),
            413,
            "the limit is 100000 bytes",
        );
    }
    let blank = {
        let mut png = Vec::new();
        image::GrayImage::from_pixel(40, 40, image::Luma([255]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    };
    refused(
        post("/api/analyze", "image/png", &blank),
        422,
        "no digit found",
    );
    refused(
        post("/api/decode", "application/json", br#"{"latent":[1,2]}"#),
        400,
        "latent has 2 values",
    );
    refused(
        post(
            "/api/decode",
            "application/json",
            br#"{"latent":[1e300,0,0,0,0,0,0,0,0,0]}"#,
        ),
        400,
        "finite numbers",
    );
    refused(
        post(
            "/api/interpolate",
            "application/json",
            &serde_json::to_vec(&serde_json::json!({"a": latent, "b": latent, "steps": 0}))
                .unwrap(),
        ),
        400,
        "steps",
    );
    refused(
        server.request("GET", "/api/nope", "", b""),
        404,
        "no such route",
    );
    refused(
        server.request("PUT", "/api/analyze", "application/json", b"{}"),
        405,
        "method not allowed",
    );
    refused(
        server.request("GET", "/api/sample?seed=x", "", b""),
        400,
        "seed",
    );

    // SIGINT: the server finishes and exits cleanly.
    let status = server.interrupt();
    assert!(status.success(), "{status:?}");
}

#[test]
fn requests_beyond_the_concurrency_limit_get_503_with_retry_after() {
    use std::sync::{Arc, Barrier};
    let dir = tempfile::tempdir().unwrap();
    let (data, ae, _) = common::server::trained_runs(dir.path(), 3_000, 200, 2);
    let server = Arc::new(Server::start(
        &data,
        &["--ae", ae.to_str().unwrap(), "--max-concurrent", "1"],
    ));
    let body =
        serde_json::json!({ "a": vec![1.0; 10], "b": vec![30.0; 10], "steps": 64 }).to_string();
    // 16 clients at once, 10 requests each, against one permit: some must wait their turn.
    let barrier = Arc::new(Barrier::new(16));
    let answers: Vec<(u16, Option<String>)> = (0..16)
        .map(|_| {
            let (server, barrier, body) = (Arc::clone(&server), Arc::clone(&barrier), body.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (0..10)
                    .map(|_| {
                        let (status, retry, _) = server.request(
                            "POST",
                            "/api/interpolate",
                            "application/json",
                            body.as_bytes(),
                        );
                        (status, retry)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        answers.iter().all(|(s, _)| *s == 200 || *s == 503),
        "{answers:?}"
    );
    let busy: Vec<_> = answers.iter().filter(|(s, _)| *s == 503).collect();
    assert!(
        !busy.is_empty(),
        "160 concurrent requests never met the limit of 1"
    );
    assert!(
        busy.iter().all(|(_, r)| r.as_deref() == Some("1")),
        "503 without Retry-After"
    );
    assert!(answers.iter().any(|(s, _)| *s == 200));
}

/// `(status, body)` of a raw answer, the body checked to be one line of JSON with an error.
fn json_refusal(answer: Option<(u16, String, String)>) -> (u16, String) {
    let (status, _, body) = answer.expect("an answer before the connection closed");
    assert!(!body.contains('\n'), "{body}");
    let message = json(&body)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}: {body}"))
        .to_string();
    (status, message)
}

#[test]
fn slow_clients_time_out_connections_are_capped_and_big_bodies_get_their_413() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ae, cls) = common::server::trained_runs(dir.path(), 2_000, 100, 1);
    let server = Server::start(
        &data,
        &[
            "--ae",
            ae.to_str().unwrap(),
            "--classifier",
            cls.to_str().unwrap(),
            "--body-limit",
            "100000",
            "--header-timeout",
            "1",
            "--body-timeout",
            "3",
            "--idle-timeout",
            "5",
            "--max-connections",
            "8",
        ],
    );

    // Five clients that send half a request line: closed by the header timeout.
    let started = Instant::now();
    let mut slow: Vec<_> = (0..5)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"GET /api/hea").unwrap();
            s
        })
        .collect();
    for s in &mut slow {
        assert!(read_answer(s).is_none(), "half a request line was answered");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );

    // Half a body: 408 with JSON once the body timeout passes.
    let started = Instant::now();
    let mut s = server.connect();
    s.write_all(
        b"POST /api/decode HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 1000\r\n\r\n{\"latent\":[",
    )
    .unwrap();
    let (status, message) = json_refusal(read_answer(&mut s));
    assert_eq!(status, 408, "{message}");
    assert!(message.contains("did not arrive within 3 s"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // 20 MB at a 100 kB limit, declared and chunked: the client sends it all (no broken
    // pipe) and reads the 413.
    let big = vec![b'x'; 20 << 20];
    for chunked in [false, true] {
        let mut s = server.connect();
        let mut reader = s.try_clone().unwrap();
        let body = big.clone();
        let writer = std::thread::spawn(move || {
            if chunked {
                s.write_all(
                    b"POST /api/analyze HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\n\
                      transfer-encoding: chunked\r\n\r\n",
                )?;
                for part in body.chunks(1 << 20) {
                    write!(s, "{:x}\r\n", part.len())?;
                    s.write_all(part)?;
                    s.write_all(b"\r\n")?;
                }
                s.write_all(b"0\r\n\r\n")
            } else {
                write!(
                    s,
                    "POST /api/analyze HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\n\
                     content-length: {}\r\n\r\n",
                    body.len()
                )?;
                s.write_all(&body)
            }
        });
        let answer = read_answer(&mut reader);
        writer
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("chunked {chunked}: the client could not send: {e}"));
        let (status, message) = json_refusal(answer);
        assert_eq!(status, 413, "{message}");
        assert!(message.contains("the limit is 100000 bytes"), "{message}");
    }

    // Requests hyper refuses itself carry the JSON body too.
    let mut s = server.connect();
    s.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    let (status, message) = json_refusal(read_answer(&mut s));
    assert_eq!(status, 400, "{message}");
    let mut s = server.connect();
    let long = "a".repeat(70_000);
    write!(s, "GET /api/health?{long} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let (status, message) = json_refusal(read_answer(&mut s));
    assert_eq!(status, 414, "{message}");

    // The connection cap: with eight open, a ninth is answered 503 with JSON and closed.
    // (The connections above are closed by now; each gives its place back as its task ends.)
    std::thread::sleep(Duration::from_millis(500));
    let open: Vec<_> = (0..8).map(|_| server.connect()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut ninth = server.connect();
    let (status, message) = json_refusal(read_answer(&mut ninth));
    assert_eq!(status, 503, "{message}");
    assert!(message.contains("too many open connections"), "{message}");
    // Once they time out, the server answers again.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/api/health").0 != 200 {
        assert!(Instant::now() < deadline, "the server did not recover");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A client that stops mid-body when SIGTERM comes does not hold the exit up past the
    // shutdown deadline (here the body timeout, 3 s, ends it first; the next test holds one
    // longer).
    let (status, took) = server.signal("TERM");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
}

#[test]
fn sigterm_exits_within_the_shutdown_deadline_despite_slow_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ae, _) = common::server::trained_runs(dir.path(), 1_000, 100, 1);
    let server = Server::start(
        &data,
        &[
            "--ae",
            ae.to_str().unwrap(),
            "--header-timeout",
            "60",
            "--body-timeout",
            "60",
            "--idle-timeout",
            "60",
            "--shutdown-timeout",
            "1",
        ],
    );
    // Clients in the middle of a body, and one with half a request line: all would be held
    // for a minute by the timeouts.
    let mut clients: Vec<_> = (0..5)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(
                b"POST /api/decode HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                  content-length: 1000\r\n\r\n{",
            )
            .unwrap();
            s
        })
        .collect();
    let mut half = server.connect();
    half.write_all(b"GET /api/hea").unwrap();
    clients.push(half);
    std::thread::sleep(Duration::from_millis(300));
    let (status, took) = server.signal("TERM");
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "exit took {took:?} with a 1 s deadline"
    );
}

#[test]
fn uploads_decode_inside_the_concurrency_limit_off_the_async_threads() {
    use std::sync::{Arc, Barrier};
    let dir = tempfile::tempdir().unwrap();
    let (data, _, cls) = common::server::trained_runs(dir.path(), 1_000, 100, 1);
    let server = Arc::new(Server::start(
        &data,
        &[
            "--classifier",
            cls.to_str().unwrap(),
            "--max-concurrent",
            "1",
        ],
    ));
    // 4096×4096 black: tens of kilobytes that take a while to decode and inspect.
    let mut png = Vec::new();
    image::GrayImage::new(4096, 4096)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let png = Arc::new(png);
    let barrier = Arc::new(Barrier::new(9));
    let posts: Vec<_> = (0..8)
        .map(|_| {
            let (server, barrier, png) =
                (Arc::clone(&server), Arc::clone(&barrier), Arc::clone(&png));
            std::thread::spawn(move || {
                barrier.wait();
                server.request("POST", "/api/analyze", "image/png", &png).0
            })
        })
        .collect();
    barrier.wait();
    // The async threads stay free for cheap requests meanwhile.
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(server.get("/api/health").0, 200);
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let statuses: Vec<u16> = posts.into_iter().map(|p| p.join().unwrap()).collect();
    // One permit: the decodes do not all run at once, the others are told to come back.
    assert!(
        statuses.iter().all(|s| *s == 422 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "eight uploads all decoded at once: {statuses:?}"
    );
    assert!(statuses.contains(&422), "{statuses:?}");
    assert!(slowest < Duration::from_secs(5), "health took {slowest:?}");
}

#[test]
fn runs_that_disagree_are_refused_and_class_names_come_from_the_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _, cls) = common::server::trained_runs(dir.path(), 1_000, 100, 1);
    // An autoencoder of Fashion-MNIST, and one of a flat folder (no classes).
    common::subset_root_of(cae::data::DatasetKind::FashionMnist, &data, 500, 100);
    let fashion = dir.path().join("fashion");
    common::succeed(
        common::cae()
            .args([
                "train-ae",
                "--dataset",
                "fashion-mnist",
                "--epochs",
                "1",
                "--quiet",
            ])
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&fashion),
    );
    let digits =
        cae::data::Dataset::load(&data, cae::data::DatasetKind::Mnist, cae::data::Split::Test)
            .unwrap();
    let flat = dir.path().join("flat");
    common::write_pngs(&digits, &flat, true, image::DynamicImage::ImageLuma8);
    let flat_ae = dir.path().join("flat-ae");
    common::succeed(
        common::cae()
            .args(["train-ae", "--epochs", "1", "--quiet", "--images"])
            .arg(&flat)
            .arg("--out")
            .arg(&flat_ae),
    );

    let out = common::cae()
        .args(["serve", "--addr", "127.0.0.1:0", "--ae"])
        .arg(&fashion)
        .arg("--classifier")
        .arg(&cls)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "served two meanings at once");
    assert!(
        err.contains("disagree") && err.contains("fashion") && err.contains("Sneaker"),
        "{err}"
    );

    let server = Server::start(
        &data,
        &[
            "--ae",
            flat_ae.to_str().unwrap(),
            "--classifier",
            cls.to_str().unwrap(),
        ],
    );
    let (status, body) = server.get("/api/health");
    assert_eq!(status, 200);
    assert_eq!(json(&body)["classes"].as_array().unwrap().len(), 10);
    let seven = (0..digits.len()).find(|&i| digits.labels[i] == 7).unwrap();
    let values: Vec<f64> = digits
        .image(seven)
        .iter()
        .map(|&v| f64::from(v) / 255.0)
        .collect();
    let (status, body) = server.post_json("/api/analyze", &pixels(&values));
    assert_eq!(status, 200, "{body}");
    let class = json(&body)["class"].as_str().unwrap().to_string();
    assert!(
        class.len() == 1 && class.chars().all(|c| c.is_ascii_digit()),
        "{class}"
    );
    let (status, _) = server.get("/api/random?seed=3");
    assert_eq!(status, 200);
    assert!(server.interrupt().success());
}
