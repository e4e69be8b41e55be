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
//! | `GET /inspect` | | the inspection page: upload a photograph, see where the defects are |
//! | `POST /api/inspect` | a PNG or JPEG, prepared as the `--anomaly` run's images | `{"score":s,"threshold":t,"defect":b,"normalised":z,"width":W,"height":H,"overlay":"data:image/png;base64,…"}` (threshold, defect and normalised from the run's calibration, else null) |
//!
//! Images are row-major 28×28 values in [0, 1], white ink on black. Every refusal is a 4xx
//! with one line of JSON, `{"error":"…"}`: 400 for malformed JSON (and requests hyper cannot
//! parse), wrong sizes and values that are not finite numbers in range, 404 for unknown routes
//! and what the loaded runs cannot do, 405 for a wrong method, 408 for a body that does not
//! arrive within the body timeout, 413 for bodies over the limit (read and discarded up to
//! [`DRAIN_LIMIT`] first, so that the client reads the answer rather than a reset), 414 and
//! 431 for a URI or headers too long, 415 for other content types, 422 for an image with no
//! digit in it. At most `max_concurrent` requests compute at once; more get 503 with
//! `Retry-After: 1`. Decoding an upload and inference run on the blocking pool, off the async
//! threads, inside that limit. Connections have timeouts and a cap ([`conn`]).

pub mod conn;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub use conn::ConnectionLimits;

use crate::anomaly::calibration::Calibration;
use crate::anomaly::maps::MapOptions;
use crate::data::input::{Input, Pixels};
use crate::data::{Dataset, IMAGE_PIXELS, ImageShape, Split};
use crate::latent::LatentDensity;
use crate::model::Autoencoder;
use crate::run::Weights;
use crate::trained::{Model, Run};

const PAGE: &str = include_str!("page.html");
const INSPECT_PAGE: &str = include_str!("inspect.html");

/// What `cae serve` loads and how it answers.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub autoencoder: Option<PathBuf>,
    pub classifier: Option<PathBuf>,
    /// An autoencoder run that inspects uploaded photographs (`/inspect`).
    pub anomaly: Option<PathBuf>,
    pub weights: Weights,
    pub data_root: PathBuf,
    /// Requests computing at once; more are answered 503.
    pub max_concurrent: usize,
    /// Largest request body in bytes; larger ones are answered 413.
    pub body_limit: usize,
    pub connections: ConnectionLimits,
}

struct AutoencoderModel {
    run: Run,
    density: LatentDensity,
    dead: Vec<usize>,
}

/// An inspection run: its maps' settings and threshold are its calibration's, when it has one.
struct Inspector {
    run: Run,
    options: MapOptions,
    calibration: Option<Calibration>,
}

/// The runs, loaded once.
pub struct Models {
    autoencoder: Option<AutoencoderModel>,
    /// A float classifier run.
    classifier: Option<Run>,
    inspector: Option<Inspector>,
    classes: Vec<String>,
    /// The test images of the digit runs (`/api/random`).
    test: Option<Dataset>,
}

/// Why `cae serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Run(#[from] crate::trained::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Models {
    /// Load the runs of `config` (at least one) and the test images of their dataset.
    pub fn load(config: &ServeConfig) -> Result<Self, ServeError> {
        let device = crate::default_device();
        let open = |p: &PathBuf| {
            Run::open_on(p, config.weights, &device)
                .map(|run| run.with_data_root(&config.data_root))
        };
        // The page draws 28x28 grey digits: runs on other shapes are refused by name.
        let drawable = |run: &Run| {
            let shape = run.image_shape();
            if shape != ImageShape::MNIST {
                return Err(ServeError::Invalid(format!(
                    "{}: cae serve's page draws {} images; this run's are {shape}",
                    run.path().display(),
                    ImageShape::MNIST
                )));
            }
            Ok(())
        };
        let autoencoder = match &config.autoencoder {
            Some(path) => {
                let run = open(path)?;
                let model = run.autoencoder("cae serve --ae")?;
                drawable(&run)?;
                let prior = run.autoencoder_config()?.model.variational().is_some();
                let density = crate::latent::density(&run, prior)?;
                let images = run.images(Split::Test)?.clone();
                let dead = crate::evaluation::latent_stats(|x| model.encode(x), &images, &device)
                    .dead_units();
                let classes = run.classes().to_vec();
                Some((AutoencoderModel { run, density, dead }, images, classes))
            }
            None => None,
        };
        let classifier = match &config.classifier {
            Some(path) => {
                let run = open(path)?;
                let Model::Classifier(_) = run.model() else {
                    run.classifier_config()?;
                    return Err(ServeError::Invalid(format!(
                        "{}: cae serve takes a float classifier run",
                        path.display()
                    )));
                };
                drawable(&run)?;
                let classes = run.classes().to_vec();
                Some((run, classes))
            }
            None => None,
        };
        // Class names are the classifier's: it is what answers with them. An autoencoder that
        // learned named classes must have learned the same ones (one trained on Fashion-MNIST
        // beside a digit classifier would make every answer mix two meanings).
        if let (Some((_, _, ae_classes)), Some((_, classes)), Some(ae), Some(cls)) = (
            &autoencoder,
            &classifier,
            &config.autoencoder,
            &config.classifier,
        ) && !ae_classes.is_empty()
            && ae_classes != classes
        {
            return Err(ServeError::Invalid(format!(
                "the runs disagree on what the images are: {} learned the classes {ae_classes:?}, \
                 {} names {classes:?}; serve an autoencoder and a classifier of the same data",
                ae.display(),
                cls.display()
            )));
        }
        // The test images (for /api/random): the autoencoder's, already loaded, unless it has
        // no classes to label them with and the classifier has.
        let (autoencoder, ae_test) = match autoencoder {
            Some((model, images, classes)) => (Some(model), Some((images, classes))),
            None => (None, None),
        };
        let (classifier, test) = match classifier {
            Some((run, classes)) => {
                let test = match ae_test {
                    Some((images, ae_classes)) if !ae_classes.is_empty() => (images, classes),
                    _ => (run.images(Split::Test)?.clone(), classes),
                };
                (Some(run), Some(test))
            }
            None => (None, ae_test),
        };
        let inspector = match &config.anomaly {
            Some(path) => {
                let run = open(path)?;
                run.check_scores_anomalies("cae serve --anomaly")?;
                let calibration = Calibration::read(path).map_err(ServeError::Invalid)?;
                let options = calibration.map_or_else(
                    || crate::anomaly::tiles::default_options(&run),
                    |c| c.options,
                );
                Some(Inspector {
                    run,
                    options,
                    calibration,
                })
            }
            None => None,
        };
        if test.is_none() && inspector.is_none() {
            return Err(ServeError::Invalid(
                "cae serve needs --ae RUN, --classifier RUN, --anomaly RUN or some of them".into(),
            ));
        }
        let (test, classes) = match test {
            Some((test, classes)) => (Some(test), classes),
            None => (None, Vec::new()),
        };
        Ok(Self {
            autoencoder,
            classifier,
            inspector,
            classes,
            test,
        })
    }

    /// Everything the loaded runs say about one image (`[784]` values in [0, 1]).
    fn analyze(&self, pixels: Vec<f32>) -> Result<Analysis, ApiError> {
        let image = Input::Pixels {
            pixels: Pixels::Floats(&pixels),
            shape: ImageShape::MNIST,
        };
        let (latent, reconstruction) = match &self.autoencoder {
            Some(ae) => {
                let (z, _) = ae.run.encode(image).map_err(internal)?;
                let r = ae.run.decode(&z).map_err(internal)?;
                (Some(z), Some(r))
            }
            None => (None, None),
        };
        let (probabilities, class) = match &self.classifier {
            Some(run) => {
                let (labels, p) = run.predict(image).map_err(internal)?;
                let best = labels.first().copied().unwrap_or(0);
                let name = self.classes.get(best).cloned();
                (Some(p), Some(name.unwrap_or_else(|| best.to_string())))
            }
            None => (None, None),
        };
        Ok(Analysis {
            input: pixels,
            latent,
            reconstruction,
            probabilities,
            class,
        })
    }

    /// Images decoded from `codes` (`[n, d]` row-major), one `Vec` each.
    fn decode(&self, codes: &[f32]) -> Result<Vec<Vec<f32>>, ApiError> {
        let ae = self.need_autoencoder()?;
        let pixels = ae.run.decode(codes).map_err(internal)?;
        Ok(pixels
            .chunks(ImageShape::MNIST.len())
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Where `img` differs from what the `--anomaly` run rebuilds, and how much.
    fn inspect(&self, img: image::DynamicImage) -> Result<Inspection, ApiError> {
        let inspector = self.inspector.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no inspection run loaded (cae serve --anomaly RUN)",
            )
        })?;
        let run = &inspector.run;
        let images = run
            .prepare_image(img)
            .map_err(|e| ApiError::bad(e.to_string()))?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "no digit found: the image is blank or has no contrast",
                )
            })?;
        let maps = crate::anomaly::tiles::anomaly_maps(run, &images, &inspector.options)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        let map = &maps[0];
        let score = inspector.options.score(map);
        let shape = images.shape;
        // One colour scale for every upload: the threshold's map value shows mid-way.
        let range = inspector.calibration.map_or_else(
            || map.iter().copied().fold(f32::MIN_POSITIVE, f32::max),
            |c| 2.0 * c.threshold,
        );
        let overlay =
            crate::anomaly::overlay::overlay(&images.images_values(&[0]), map, shape, range);
        let mut png = Vec::new();
        overlay
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        use base64::Engine;
        let c = inspector.calibration;
        Ok(Inspection {
            score,
            threshold: c.map(|c| c.threshold),
            defect: c.map(|c| score > c.threshold),
            normalised: c.map(|c| c.normalise(score)),
            width: shape.width,
            height: shape.height,
            overlay: format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(png)
            ),
        })
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

/// A run that failed on input the server checked: a fault of the server's, not the request's.
fn internal(e: crate::trained::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
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

#[derive(Debug, Serialize)]
struct Inspection {
    score: f32,
    threshold: Option<f32>,
    defect: Option<bool>,
    normalised: Option<f32>,
    width: usize,
    height: usize,
    overlay: String,
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
    /// Close the connection after the answer (a body that was not read to its end).
    close: bool,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into().replace('\n', " "),
            close: false,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
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
        let headers = response.headers_mut();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

struct AppState {
    models: Models,
    permits: Arc<Semaphore>,
    body_limit: usize,
    body_timeout: std::time::Duration,
}

type Shared = State<Arc<AppState>>;

/// Run `work` on the blocking pool if a permit is free, else 503. The permit goes with the
/// work and is released when it ends, even if the client left before.
async fn compute<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&Models) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = Arc::clone(&state.permits)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: too many requests at once, retry shortly",
            )
        })?;
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work(&state.models)
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the computation failed"))?
}

/// How much of a body over the limit is read and thrown away before the 413, so that the
/// client, still sending, reads the answer instead of a connection reset. Past it the
/// connection is closed unread.
pub const DRAIN_LIMIT: u64 = 64 << 20;

/// The request body, whole, within the limit and the body timeout: else 413 (the rest read
/// and discarded up to [`DRAIN_LIMIT`], the connection closed after the answer) or 408.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let limit = state.body_limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let too_large = |size: String| ApiError {
        close: true,
        ..ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is {size}; the limit is {limit} bytes (cae serve --body-limit). \
                 Send a smaller image: the model sees 28×28 pixels"
            ),
        )
    };
    if let Some(n) = declared.filter(|&n| n > DRAIN_LIMIT) {
        return Err(too_large(format!("{n} bytes")));
    }
    let read = async {
        let mut body = body;
        let mut kept = Vec::new();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| ApiError::bad(format!("the body could not be read: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total += data.len() as u64;
            if total > DRAIN_LIMIT {
                return Err(too_large(format!("over {total} bytes")));
            }
            if total <= limit as u64 {
                kept.extend_from_slice(&data);
            } else if !kept.is_empty() {
                kept = Vec::new();
            }
        }
        if total > limit as u64 {
            return Err(too_large(format!("{total} bytes")));
        }
        Ok(Bytes::from(kept))
    };
    tokio::time::timeout(state.body_timeout, read)
        .await
        .map_err(|_| ApiError {
            close: true,
            ..ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s",
                    state.body_timeout.as_secs_f64()
                ),
            )
        })?
}

fn json<T: serde::de::DeserializeOwned>(content_type: &str, bytes: &[u8]) -> Result<T, ApiError> {
    match content_type {
        "application/json" => {
            serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("malformed JSON: {e}")))
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected application/json, got {other:?}"),
        )),
    }
}

/// The media type of a `Content-Type` header, lower case, without parameters.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecodeRequest {
    latent: Vec<f64>,
}

/// Two codes and the steps between them (1 to 64).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterpolateRequest {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub steps: usize,
}

/// The routes that take a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Analyze,
    Decode,
    Interpolate,
    Inspect,
}

/// A request body, read and checked: everything that needs no model.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// The 28×28 input to analyze, values in [0, 1].
    Analyze(Vec<f32>),
    /// A code to decode (its length is checked against the model's).
    Decode(Vec<f64>),
    Interpolate(InterpolateRequest),
    /// A photograph to inspect, decoded within the limits of `data::image_file`.
    Inspect(image::DynamicImage),
}

/// Parse the body of a request to `route` with media type `content_type` (as
/// [`content_type`] gives it): everything that needs no model. The one parser of every body
/// the server takes (each route calls its part; the `serve_request` fuzz target drives all).
pub fn parse_request(route: Route, content_type: &str, bytes: &[u8]) -> Result<Request, ApiError> {
    Ok(match route {
        Route::Analyze => Request::Analyze(parse_analyze(content_type, bytes)?),
        Route::Decode => Request::Decode(parse_decode(content_type, bytes)?),
        Route::Interpolate => Request::Interpolate(parse_interpolate(content_type, bytes)?),
        Route::Inspect => Request::Inspect(parse_inspect(content_type, bytes)?),
    })
}

/// The photograph of an inspect request: a PNG or JPEG only.
fn parse_inspect(content_type: &str, bytes: &[u8]) -> Result<image::DynamicImage, ApiError> {
    match content_type {
        "image/png" | "image/jpeg" => crate::data::image_file::decode_bytes(bytes)
            .map_err(|e| ApiError::bad(format!("unreadable image: {e}"))),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the photograph as image/png or image/jpeg",
        )),
    }
}

/// The 28×28 input of an analyze request: a PNG or JPEG decoded within the limits of
/// `data::image_file` and prepared as `cae predict` does, or JSON pixels in [0, 1].
fn parse_analyze(content_type: &str, bytes: &[u8]) -> Result<Vec<f32>, ApiError> {
    match content_type {
        "image/png" | "image/jpeg" => {
            let img = crate::data::image_file::decode_bytes(bytes)
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
            let r: PixelsRequest = json(content_type, bytes)?;
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

/// The code of a decode request (its length is checked against the model's later).
fn parse_decode(content_type: &str, bytes: &[u8]) -> Result<Vec<f64>, ApiError> {
    let r: DecodeRequest = json(content_type, bytes)?;
    Ok(r.latent)
}

fn parse_interpolate(content_type: &str, bytes: &[u8]) -> Result<InterpolateRequest, ApiError> {
    let r: InterpolateRequest = json(content_type, bytes)?;
    if !(1..=64).contains(&r.steps) {
        return Err(ApiError::bad("steps must be from 1 to 64"));
    }
    Ok(r)
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn inspect_page() -> Html<&'static str> {
    Html(INSPECT_PAGE)
}

async fn inspect(
    State(state): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&state, &headers, body).await?;
    let media = content_type(&headers);
    let answer = compute(&state, move |m| m.inspect(parse_inspect(&media, &bytes)?)).await?;
    Ok(axum::Json(answer).into_response())
}

async fn health(State(state): Shared) -> Response {
    let m = &state.models;
    let ae = m.autoencoder.as_ref();
    axum::Json(serde_json::json!({
        "status": "ok",
        "autoencoder": ae.is_some(),
        "classifier": m.classifier.is_some(),
        "anomaly": m.inspector.is_some(),
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
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&state, &headers, body).await?;
    let media = content_type(&headers);
    // Decoding an upload is the costly part: inside the permit, on the blocking pool.
    let analysis = compute(&state, move |m| m.analyze(parse_analyze(&media, &bytes)?)).await?;
    Ok(axum::Json(analysis).into_response())
}

async fn decode(
    State(state): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&state, &headers, body).await?;
    let latent = parse_decode(&content_type(&headers), &bytes)?;
    let z = state.models.check_latent(&latent)?;
    let images = compute(&state, move |m| m.decode(&z)).await?;
    let reconstruction = images.into_iter().next().unwrap_or_default();
    Ok(axum::Json(Decoded {
        latent: None,
        reconstruction,
    })
    .into_response())
}

async fn interpolate(
    State(state): Shared,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&state, &headers, body).await?;
    let InterpolateRequest { a, b, steps } = parse_interpolate(&content_type(&headers), &bytes)?;
    let (a, b) = (
        state.models.check_latent(&a)?,
        state.models.check_latent(&b)?,
    );
    let codes = crate::latent::line(&a, &b, steps);
    let images = compute(&state, move |m| m.decode(&codes)).await?;
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
        let images = m.decode(&z)?;
        Ok((z, images))
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
        let test = m.test.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no test images: serve --ae RUN or --classifier RUN",
            )
        })?;
        let index = (seed % test.len() as u64) as usize;
        let pixels = test.images_values(&[index]);
        Ok((index, test.labels[index], m.analyze(pixels)?))
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
pub fn router(models: Models, config: &ServeConfig) -> Router {
    let state = Arc::new(AppState {
        models,
        permits: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
        body_limit: config.body_limit,
        body_timeout: config.connections.body_timeout,
    });
    Router::new()
        .route("/", get(page))
        .route("/api/health", get(health))
        .route("/api/analyze", post(analyze))
        .route("/api/decode", post(decode))
        .route("/api/interpolate", post(interpolate))
        .route("/api/sample", get(sample))
        .route("/api/random", get(random))
        .route("/inspect", get(inspect_page))
        .route("/api/inspect", post(inspect))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
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
/// under way (within the shutdown deadline) and return. `ready` is called with the bound
/// address (port 0 picks a free one).
pub fn run(
    config: &ServeConfig,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let models = Models::load(config)?;
    // Inference is CPU-bound: one blocking thread per core does all of it (requests beyond
    // that wait for a thread, within the `max_concurrent` permits), and keeps the memory of
    // idle threads and their allocator arenas from growing with the load.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cores)
        .build()
        .map_err(|source| ServeError::Io {
            what: "starting the server's threads".into(),
            source,
        })?;
    runtime.block_on(async {
        let listening = |source| ServeError::Io {
            what: format!("listening on {addr}"),
            source,
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(listening)?;
        ready(listener.local_addr().map_err(listening)?);
        let app = router(models, config);
        conn::serve(listener, app, config.connections, shutdown_signal()).await;
        Ok::<(), ServeError>(())
    })?;
    // Work still running on the blocking pool past the deadline is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}
