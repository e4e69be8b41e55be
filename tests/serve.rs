//! `cae serve`'s API: answers, and a one-line JSON 4xx for every malformed request.

mod common;

use common::server::Server;

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
    refused(
        post("/api/analyze", "image/png", &vec![0u8; 200_000]),
        413,
        "length limit",
    );
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
