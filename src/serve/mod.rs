//! `cae serve`: a page where you draw a digit and steer the latent, and the JSON API behind it.
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `GET /` | | the page (HTML, CSS and JS in one document, embedded in the binary) |
//! | `GET /api/health` | | `{"status":"ok","autoencoder":…,"classifier":…,"latent":D,"dead_units":[…],"latent_min":[…],"latent_max":[…],"classes":[…]}` |
//! | `POST /api/analyze` | a PNG or JPEG (`Content-Type: image/png`, `image/jpeg`), prepared as `cae predict` does; or JSON `{"pixels":[784 values in 0..1]}`, used as it is | `{"input":[784],"latent":[D],"reconstruction":[784],"probabilities":[10],"class":"7"}` (what the loaded runs give) |
//! | `POST /api/decode` | JSON `{"latent":[D numbers]}` | `{"reconstruction":[784]}` |
//! | `POST /api/interpolate` | JSON `{"a":[D],"b":[D],"steps":N}` (1 ≤ N ≤ 64) | `{"images":[[784], …]}`, N + 1 of them |
//! | `GET /api/sample?seed=S` | | `{"latent":[D],"reconstruction":[784]}`, drawn as `cae generate` draws |
//! | `GET /api/random?seed=S` | | a test image, analysed: `{"index":i,"label":l, …as analyze}` |
//!
//! Images are row-major 28×28 values in [0, 1], white ink on black. Every refusal is a 4xx
//! with one line of JSON, `{"error":"…"}`: 400 for malformed JSON, wrong sizes and values that
//! are not finite numbers in range, 404 for unknown routes and what the loaded runs cannot do,
//! 405 for a wrong method, 413 for bodies over the limit, 415 for other content types, 422 for
//! an image with no digit in it. At most `max_concurrent` requests compute at once; more get
//! 503 with `Retry-After: 1`. Inference runs on the blocking pool, off the async threads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::data::{Dataset, IMAGE_PIXELS, ImageShape, Split};
use crate::latent::LatentDensity;
use crate::model::classifier::{AnyClassifier, Classifier};
use crate::model::{AnyAutoencoder, Autoencoder};
use crate::run::{RunDir, Weights};
use crate::training::{AutoencoderTrainingConfig, ClassifierTrainingConfig, Experiment};

const PAGE: &str = include_str!("page.html");

/// What `cae serve` loads and how it answers.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub autoencoder: Option<PathBuf>,
    pub classifier: Option<PathBuf>,
    pub weights: Weights,
    pub data_root: PathBuf,
    /// Requests computing at once; more are answered 503.
    pub max_concurrent: usize,
    /// Largest request body in bytes; larger ones are answered 413.
    pub body_limit: usize,
}

struct AutoencoderModel {
    model: AnyAutoencoder,
    density: LatentDensity,
    dead: Vec<usize>,
}

/// The runs, loaded once.
pub struct Models {
    autoencoder: Option<AutoencoderModel>,
    classifier: Option<AnyClassifier>,
    classes: Vec<String>,
    test: Dataset,
    device: Device,
}

impl Models {
    /// Load the runs of `config` (at least one) and the test images of their dataset.
    pub fn load(config: &ServeConfig) -> anyhow::Result<Self> {
        let device = crate::default_device();
        let open =
            |p: &PathBuf| RunDir::open(p).with_context(|| format!("opening {}", p.display()));
        // The page draws 28x28 grey digits: runs on other shapes are refused by name.
        let drawable = |path: &PathBuf, shape: ImageShape| {
            anyhow::ensure!(
                shape == ImageShape::MNIST,
                "{}: cae serve's page draws {} images; this run's are {shape}",
                path.display(),
                ImageShape::MNIST
            );
            Ok(())
        };
        // The test images and class names of the first run given.
        let mut test = None;
        let autoencoder = match &config.autoencoder {
            Some(path) => {
                let run = open(path)?;
                let (model, c) = AutoencoderTrainingConfig::load(&run, config.weights, &device)?;
                drawable(path, c.model.input())?;
                let prior = c.model.variational().is_some();
                let density =
                    crate::latent::density(&model, &c, &config.data_root, &run, prior, &device)?;
                let images = c.images(&config.data_root, &run, Split::Test)?;
                let dead = crate::evaluation::latent_stats(|x| model.encode(x), &images, &device)
                    .dead_units();
                test = Some((images, c.class_names(&run)));
                Some(AutoencoderModel {
                    model,
                    density,
                    dead,
                })
            }
            None => None,
        };
        let classifier = match &config.classifier {
            Some(path) => {
                let run = open(path)?;
                let (model, c) = ClassifierTrainingConfig::load(&run, config.weights, &device)?;
                drawable(path, c.encoder.input())?;
                if test.is_none() {
                    let images = c.images(&config.data_root, &run, Split::Test)?;
                    test = Some((images, c.class_names(&run)));
                }
                Some(model)
            }
            None => None,
        };
        let (test, classes) = test.context("cae serve needs --ae RUN, --classifier RUN or both")?;
        Ok(Self {
            autoencoder,
            classifier,
            classes,
            test,
            device,
        })
    }

    /// Everything the loaded runs say about one image (`[784]` values in [0, 1]).
    fn analyze(&self, pixels: Vec<f32>) -> Analysis {
        let x = crate::data::pixels_tensor(pixels.clone(), ImageShape::MNIST, &self.device);
        let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32");
        let (latent, reconstruction) = match &self.autoencoder {
            Some(ae) => {
                let z = ae.model.encode(x.clone());
                let r = burn::tensor::activation::sigmoid(ae.model.decode_logits(z.clone()));
                (Some(values(z)), Some(values(r.flatten(1, 3))))
            }
            None => (None, None),
        };
        let (probabilities, class) = match &self.classifier {
            Some(c) => {
                let p = values(burn::tensor::activation::softmax(c.logits(x), 1));
                let best = (0..p.len())
                    .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                    .unwrap_or(0);
                (Some(p), Some(self.classes[best].clone()))
            }
            None => (None, None),
        };
        Analysis {
            input: pixels,
            latent,
            reconstruction,
            probabilities,
            class,
        }
    }

    fn decode(&self, latent: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>, ApiError> {
        let ae = self.need_autoencoder()?;
        let d = ae.density.min.len();
        Ok(crate::latent::decode(
            &ae.model,
            latent.concat(),
            d,
            &self.device,
        ))
    }

    fn need_autoencoder(&self) -> Result<&AutoencoderModel, ApiError> {
        self.autoencoder.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no autoencoder loaded (cae serve --ae RUN)",
            )
        })
    }

    /// A latent from the client: `d` finite numbers.
    fn check_latent(&self, z: &[f64]) -> Result<Vec<f32>, ApiError> {
        let d = self.need_autoencoder()?.density.min.len();
        if z.len() != d {
            return Err(ApiError::bad(format!(
                "latent has {} values, the model's has {d}",
                z.len()
            )));
        }
        if z.iter().any(|v| !v.is_finite() || v.abs() > 1e6) {
            return Err(ApiError::bad(
                "latent values must be finite numbers of magnitude below 1e6",
            ));
        }
        Ok(z.iter().map(|&v| v as f32).collect())
    }
}

#[derive(Debug, Serialize)]
struct Analysis {
    input: Vec<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latent: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reconstruction: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probabilities: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<String>,
}

/// Answers keep f32 values as f32, so that every route writes the same number the same way.
#[derive(Debug, Serialize)]
struct Decoded {
    #[serde(skip_serializing_if = "Option::is_none")]
    latent: Option<Vec<f32>>,
    reconstruction: Vec<f32>,
}

#[derive(Debug, Serialize)]
struct Interpolated {
    images: Vec<Vec<f32>>,
}

/// A refusal: a status and one line of JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into().replace('\n', " "),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

struct AppState {
    models: Models,
    permits: Semaphore,
}

type Shared = State<Arc<AppState>>;

/// Run `work` on the blocking pool if a permit is free, else 503.
async fn compute<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&Models) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = state.permits.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: too many requests at once, retry shortly",
        )
    })?;
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || work(&state.models))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the computation failed"))?
}

/// The body, or the refusal of it (over the limit: 413) as JSON.
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| ApiError::new(e.status(), e.body_text()))
}

fn json<T: serde::de::DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    match content_type(headers).as_str() {
        "application/json" => {
            serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("malformed JSON: {e}")))
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected application/json, got {other:?}"),
        )),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PixelsRequest {
    pixels: Vec<f64>,
}

/// The 28×28 input of a request: an image file prepared as `cae predict` does, or pixels.
fn request_pixels(headers: &HeaderMap, bytes: &[u8]) -> Result<Vec<f32>, ApiError> {
    match content_type(headers).as_str() {
        "image/png" | "image/jpeg" => {
            let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
                .with_guessed_format()
                .map_err(|e| ApiError::bad(format!("unreadable image: {e}")))?;
            let mut limits = image::Limits::default();
            limits.max_image_width = Some(4096);
            limits.max_image_height = Some(4096);
            limits.max_alloc = Some(64 << 20);
            reader.limits(limits);
            let img = reader
                .decode()
                .map_err(|e| ApiError::bad(format!("unreadable image: {e}")))?;
            let pixels = crate::data::preprocess::preprocess(&img.to_luma8()).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "no digit found: the image is blank or has no contrast",
                )
            })?;
            Ok(pixels.iter().map(|&p| f32::from(p) / 255.0).collect())
        }
        _ => {
            let r: PixelsRequest = json(headers, bytes)?;
            if r.pixels.len() != IMAGE_PIXELS {
                return Err(ApiError::bad(format!(
                    "pixels has {} values, expected 784 (28×28)",
                    r.pixels.len()
                )));
            }
            if r.pixels.iter().any(|v| !(0.0..=1.0).contains(v)) {
                return Err(ApiError::bad("pixels must be numbers from 0 to 1"));
            }
            Ok(r.pixels.iter().map(|&v| v as f32).collect())
        }
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn health(State(state): Shared) -> Response {
    let m = &state.models;
    let ae = m.autoencoder.as_ref();
    axum::Json(serde_json::json!({
        "status": "ok",
        "autoencoder": ae.is_some(),
        "classifier": m.classifier.is_some(),
        "latent": ae.map(|a| a.density.min.len()),
        "dead_units": ae.map(|a| a.dead.clone()),
        "latent_min": ae.map(|a| a.density.min.clone()),
        "latent_max": ae.map(|a| a.density.max.clone()),
        "classes": m.classes,
    }))
    .into_response()
}

async fn analyze(
    State(state): Shared,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let pixels = request_pixels(&headers, &body(bytes)?)?;
    let analysis = compute(&state, move |m| Ok(m.analyze(pixels))).await?;
    Ok(axum::Json(analysis).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecodeRequest {
    latent: Vec<f64>,
}

async fn decode(
    State(state): Shared,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let r: DecodeRequest = json(&headers, &body(bytes)?)?;
    let z = state.models.check_latent(&r.latent)?;
    let images = compute(&state, move |m| m.decode(vec![z])).await?;
    let reconstruction = images.into_iter().next().unwrap_or_default();
    Ok(axum::Json(Decoded {
        latent: None,
        reconstruction,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InterpolateRequest {
    a: Vec<f64>,
    b: Vec<f64>,
    steps: usize,
}

async fn interpolate(
    State(state): Shared,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let r: InterpolateRequest = json(&headers, &body(bytes)?)?;
    if !(1..=64).contains(&r.steps) {
        return Err(ApiError::bad("steps must be from 1 to 64"));
    }
    let (a, b) = (
        state.models.check_latent(&r.a)?,
        state.models.check_latent(&r.b)?,
    );
    let codes: Vec<Vec<f32>> = (0..=r.steps)
        .map(|s| {
            let t = s as f32 / r.steps as f32;
            a.iter()
                .zip(&b)
                .map(|(x, y)| (1.0 - t) * x + t * y)
                .collect()
        })
        .collect();
    let images = compute(&state, move |m| m.decode(codes)).await?;
    Ok(axum::Json(Interpolated { images }).into_response())
}

#[derive(Deserialize)]
struct SeedQuery {
    seed: Option<u64>,
}

fn seed_or_clock(q: &SeedQuery) -> u64 {
    q.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}

async fn sample(
    State(state): Shared,
    query: Result<Query<SeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    state.models.need_autoencoder()?;
    let seed = seed_or_clock(&q);
    let (z, images) = compute(&state, move |m| {
        let ae = m.need_autoencoder()?;
        let z = ae
            .density
            .sample(1, None, seed)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        Ok((z.clone(), m.decode(vec![z])?))
    })
    .await?;
    let reconstruction = images.into_iter().next().unwrap_or_default();
    Ok(axum::Json(Decoded {
        latent: Some(z),
        reconstruction,
    })
    .into_response())
}

async fn random(
    State(state): Shared,
    query: Result<Query<SeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let seed = seed_or_clock(&q);
    let (index, label, analysis) = compute(&state, move |m| {
        let index = (seed % m.test.len() as u64) as usize;
        let pixels = m.test.images_values(&[index]);
        Ok((index, m.test.labels[index], m.analyze(pixels)))
    })
    .await?;
    #[derive(Serialize)]
    struct TestImage {
        index: usize,
        label: u8,
        #[serde(flatten)]
        analysis: Analysis,
    }
    let answer = TestImage {
        index,
        label,
        analysis,
    };
    Ok(axum::Json(answer).into_response())
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route; see GET /api/health and the README",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

/// The routes over `models`.
pub fn router(models: Models, max_concurrent: usize, body_limit: usize) -> Router {
    let state = Arc::new(AppState {
        models,
        permits: Semaphore::new(max_concurrent.max(1)),
    });
    Router::new()
        .route("/", get(page))
        .route("/api/health", get(health))
        .route("/api/analyze", post(analyze))
        .route("/api/decode", post(decode))
        .route("/api/interpolate", post(interpolate))
        .route("/api/sample", get(sample))
        .route("/api/random", get(random))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// Load the runs, listen on `addr`, answer until SIGINT or SIGTERM, then finish the requests
/// under way and return. `ready` is called with the bound address (port 0 picks a free one).
pub fn run(
    config: &ServeConfig,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let models = Models::load(config)?;
    // Inference is CPU-bound: one blocking thread per core does all of it (requests beyond
    // that wait for a thread, within the `max_concurrent` permits), and keeps the memory of
    // idle threads and their allocator arenas from growing with the load.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cores)
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        ready(listener.local_addr()?);
        let app = router(models, config.max_concurrent, config.body_limit);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        Ok(())
    })
}
