//! ONNX export: the encoder, the decoder, the whole autoencoder and the classifiers as ONNX
//! graphs (opset 13, a dynamic batch dimension `N`, the weights inside), for other runtimes.
//!
//! burn only imports ONNX, so the graph is cae's own: each model walks its layers in the order
//! of its `forward` ([`crate::model::walk`]), and each layer becomes ONNX nodes — Conv,
//! ConvTranspose, Gemm, Relu, LeakyRelu, Sigmoid, MaxPool, Flatten, Reshape. The messages are
//! the few of `onnx.proto` an exporter needs, encoded with prost (field numbers as in
//! `onnx.proto`).

use burn::nn::Linear;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use prost::Message;

use crate::model::AnyAutoencoder;
use crate::model::classifier::AnyClassifier;
use crate::model::cost::explicit_padding;
use crate::model::draem::{self, Draem};
use crate::model::texture::TextureStats;
use crate::model::walk::Walk;

/// The subset of `onnx.proto` (IR version 8) an exporter writes.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(string, tag = "2")]
        pub producer_name: String,
        #[prost(string, tag = "3")]
        pub producer_version: String,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        #[prost(message, repeated, tag = "14")]
        pub metadata_props: Vec<StringStringEntryProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringStringEntryProto {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    /// `type`: 1 FLOAT, 2 INT, 3 STRING, 7 INTS.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(float, tag = "2")]
        pub f: f32,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(bytes = "vec", tag = "4")]
        pub s: Vec<u8>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }

    /// `data_type`: 1 FLOAT, 7 INT64.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TensorTypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorTypeProto {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    /// One of `dim_value` (a size) or `dim_param` (a named, dynamic size).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(int64, optional, tag = "1")]
        pub dim_value: Option<i64>,
        #[prost(string, optional, tag = "2")]
        pub dim_param: Option<String>,
    }
}

use proto::*;

use crate::Choice;
use crate::anomaly::calibration::Calibration;
use crate::anomaly::maps::{MapKind, MapOptions, ScoreKind};

const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// A graph under construction: nodes in order, weights as initializers, `x` the name of the
/// value computed so far.
pub struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    input: (String, Vec<usize>),
    x: String,
    count: usize,
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: 2,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.iter().map(|&x| x as i64).collect(),
        r#type: 7,
        ..Default::default()
    }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: 1,
        ..Default::default()
    }
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: s.as_bytes().to_vec(),
        r#type: 3,
        ..Default::default()
    }
}

fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let mut dim = vec![Dimension {
        dim_value: None,
        dim_param: Some("N".into()),
    }];
    dim.extend(shape.iter().map(|&s| Dimension {
        dim_value: Some(s as i64),
        dim_param: None,
    }));
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

impl Graph {
    /// A graph reading `input` of shape `[N, shape…]`.
    pub fn new(shape: &[usize]) -> Self {
        Self {
            nodes: Vec::new(),
            initializers: Vec::new(),
            input: ("input".into(), shape.to_vec()),
            x: "input".into(),
            count: 0,
        }
    }

    fn weight<const D: usize>(&mut self, name: &str, t: Tensor<D>) -> String {
        let dims = t.dims().iter().map(|&d| d as i64).collect();
        let values = t
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 weights");
        let name = format!("{name}_{}", self.initializers.len());
        self.initializers.push(TensorProto {
            dims,
            data_type: FLOAT,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name
    }

    /// A float initializer of any `dims` from `values`.
    fn floats(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        let name = format!("{name}_{}", self.initializers.len());
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name
    }

    /// A 1-D int64 initializer (a shape, axes, pads).
    fn int64s(&mut self, name: &str, values: &[i64]) -> String {
        let name = format!("{name}_{}", self.initializers.len());
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: INT64,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        name
    }

    /// A node of `op` on named `inputs`; returns its output's name.
    fn apply(&mut self, op: &str, inputs: Vec<String>, attribute: Vec<AttributeProto>) -> String {
        self.count += 1;
        let output = format!("{}_{}", op.to_lowercase(), self.count);
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute,
        });
        output
    }

    fn node(mut self, op: &str, extra: Vec<String>, attribute: Vec<AttributeProto>) -> Self {
        self.count += 1;
        let output = format!("{}_{}", op.to_lowercase(), self.count);
        let mut input = vec![self.x.clone()];
        input.extend(extra);
        self.nodes.push(NodeProto {
            input,
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute,
        });
        self.x = output;
        self
    }

    /// The ONNX file: opset 13, output `output` of shape `[N, shape…]`.
    pub fn finish(self, name: &str, shape: &[usize]) -> Vec<u8> {
        self.finish_with(name, shape, Vec::new(), Vec::new())
    }

    /// [`Graph::finish`] with more outputs (value name, output name, `[N, shape…]`) and
    /// metadata (key, value).
    fn finish_with(
        self,
        name: &str,
        shape: &[usize],
        more: Vec<(String, String, Vec<usize>)>,
        metadata: Vec<(String, String)>,
    ) -> Vec<u8> {
        let Graph {
            mut nodes,
            initializers,
            input,
            x,
            ..
        } = self;
        match nodes.last_mut() {
            Some(last) if more.is_empty() => last.output = vec!["output".into()],
            _ => nodes.push(NodeProto {
                input: vec![x],
                output: vec!["output".into()],
                name: "identity".into(),
                op_type: "Identity".into(),
                attribute: vec![],
            }),
        }
        let mut outputs = vec![value_info("output", shape)];
        for (value, output, shape) in more {
            nodes.push(NodeProto {
                input: vec![value],
                output: vec![output.clone()],
                name: format!("{output}_identity"),
                op_type: "Identity".into(),
                attribute: vec![],
            });
            outputs.push(value_info(&output, &shape));
        }
        let model = ModelProto {
            ir_version: 8,
            producer_name: "cae".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(GraphProto {
                node: nodes,
                name: name.into(),
                initializer: initializers,
                input: vec![value_info(&input.0, &input.1)],
                output: outputs,
            }),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            metadata_props: metadata
                .into_iter()
                .map(|(key, value)| StringStringEntryProto { key, value })
                .collect(),
        };
        model.encode_to_vec()
    }
}

impl Walk for Graph {
    fn conv2d(mut self, layer: &Conv2d) -> Self {
        let mut inputs = vec![self.weight("conv_w", layer.weight.val())];
        inputs.extend(layer.bias.as_ref().map(|b| self.weight("conv_b", b.val())));
        let attrs = vec![
            ints("kernel_shape", &layer.kernel_size),
            ints("strides", &layer.stride),
            ints("dilations", &layer.dilation),
            ints("pads", &explicit_padding(&layer.padding, layer.kernel_size)),
            int("group", layer.groups as i64),
        ];
        self.node("Conv", inputs, attrs)
    }

    fn conv_transpose2d(mut self, layer: &ConvTranspose2d) -> Self {
        let mut inputs = vec![self.weight("deconv_w", layer.weight.val())];
        inputs.extend(
            layer
                .bias
                .as_ref()
                .map(|b| self.weight("deconv_b", b.val())),
        );
        let [ph, pw] = layer.padding;
        let attrs = vec![
            ints("kernel_shape", &layer.kernel_size),
            ints("strides", &layer.stride),
            ints("dilations", &layer.dilation),
            ints("pads", &[ph, pw, ph, pw]),
            ints("output_padding", &layer.padding_out),
            int("group", layer.groups as i64),
        ];
        self.node("ConvTranspose", inputs, attrs)
    }

    /// burn's linear weight is `[in, out]`: Gemm without transposing it.
    fn linear(mut self, layer: &Linear) -> Self {
        let mut inputs = vec![self.weight("fc_w", layer.weight.val())];
        inputs.extend(layer.bias.as_ref().map(|b| self.weight("fc_b", b.val())));
        self.node("Gemm", inputs, vec![])
    }

    fn relu(self) -> Self {
        self.node("Relu", vec![], vec![])
    }

    fn sigmoid(self) -> Self {
        self.node("Sigmoid", vec![], vec![])
    }

    fn leaky_relu(self, slope: f32) -> Self {
        self.node("LeakyRelu", vec![], vec![float("alpha", slope)])
    }

    fn max_pool2d(self, layer: &MaxPool2d) -> Self {
        let attrs = vec![
            ints("kernel_shape", &layer.kernel_size),
            ints("strides", &layer.stride),
            ints("pads", &explicit_padding(&layer.padding, layer.kernel_size)),
        ];
        self.node("MaxPool", vec![], attrs)
    }

    fn flatten(self) -> Self {
        self.node("Flatten", vec![], vec![int("axis", 1)])
    }

    /// Reshape to `[N, shape…]`, the batch kept dynamic.
    fn reshape(mut self, shape: [usize; 3]) -> Self {
        let mut dims = vec![-1i64];
        dims.extend(shape.iter().map(|&s| s as i64));
        let name = format!("shape_{}", self.initializers.len());
        self.initializers.push(TensorProto {
            dims: vec![dims.len() as i64],
            data_type: INT64,
            name: name.clone(),
            raw_data: dims.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        self.node("Reshape", vec![name], vec![])
    }
}

/// Which part of an autoencoder to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Part {
    /// Image → reconstruction (pixels).
    #[default]
    Autoencoder,
    /// Image → latent code.
    Encoder,
    /// Latent code → image (pixels).
    Decoder,
}

crate::choice!(Part {
    Autoencoder => ("autoencoder", "Image to reconstruction (pixels)"),
    Encoder => ("encoder", "Image to latent code"),
    Decoder => ("decoder", "Latent code to image (pixels)"),
});

/// An autoencoder's `part` as an ONNX file (`input` → `output`, batch `N`), for images of
/// `[C, H, W]` `image`.
pub fn autoencoder(
    model: &AnyAutoencoder,
    part: Part,
    latent: usize,
    image: [usize; 3],
) -> Vec<u8> {
    let code = [latent];
    match (model, part) {
        (AnyAutoencoder::Conv(m), Part::Autoencoder) => m
            .decoder
            .walk(m.encoder.walk(Graph::new(&image)))
            .finish("autoencoder", &image),
        (AnyAutoencoder::Conv(m), Part::Encoder) => {
            m.encoder.walk(Graph::new(&image)).finish("encoder", &code)
        }
        (AnyAutoencoder::Conv(m), Part::Decoder) => {
            m.decoder.walk(Graph::new(&code)).finish("decoder", &image)
        }
        (AnyAutoencoder::Stacked(m), Part::Autoencoder) => m
            .walk_decoder(m.walk_encoder(Graph::new(&image)))
            .finish("autoencoder", &image),
        (AnyAutoencoder::Stacked(m), Part::Encoder) => {
            m.walk_encoder(Graph::new(&image)).finish("encoder", &code)
        }
        (AnyAutoencoder::Stacked(m), Part::Decoder) => {
            m.walk_decoder(Graph::new(&code)).finish("decoder", &image)
        }
    }
}

/// The anomaly outputs an autoencoder's ONNX file can add beside its reconstruction: `map`
/// (`[N, 1, H, W]`, the squared error averaged over the channels, smoothed as `options` say,
/// edges reflected as cae's maps) and `score` (`[N]`, as `options` say). From the graph so far,
/// whose value is the reconstruction of `input`; returns the two values' names.
fn anomaly_outputs(
    g: &mut Graph,
    options: &MapOptions,
    image: [usize; 3],
) -> Result<(String, String), String> {
    if options.map != MapKind::L2 {
        return Err(format!(
            "the {} map is not exported to ONNX; the l2 map is (calibrate with --map l2)",
            options.map.name()
        ));
    }
    let reconstruction = g.x.clone();
    let diff = g.apply("Sub", vec![g.input.0.clone(), reconstruction], vec![]);
    let square = g.apply("Mul", vec![diff.clone(), diff], vec![]);
    let map = reduce(g, "ReduceMean", square, &[1], 1);
    smoothed_and_scored(g, map, options, image)
}

fn reduce(g: &mut Graph, op: &str, x: String, axes: &[usize], keep: i64) -> String {
    g.apply(op, vec![x], vec![ints("axes", axes), int("keepdims", keep)])
}

/// A raw `map` (`[N, 1, H, W]`) smoothed as `options` say (edges reflected as cae's maps),
/// and its `score` (`[N]`, max, mean or the mean of the top k); returns the two values'
/// names.
fn smoothed_and_scored(
    g: &mut Graph,
    mut map: String,
    options: &MapOptions,
    [_, h, w]: [usize; 3],
) -> Result<(String, String), String> {
    if options.smooth > 0.0 {
        let radius = (4.0 * options.smooth).ceil() as usize;
        if radius >= h.min(w) {
            return Err(format!(
                "--smooth {}: its 4σ reach ({radius} pixels) must be under the images' side for \
                 ONNX's reflected edges",
                options.smooth
            ));
        }
        let taps = crate::loss::gaussian_taps(options.smooth, radius);
        let r = radius as i64;
        let pads = g.int64s("pads", &[0, 0, r, r, 0, 0, r, r]);
        let mode = string("mode", "reflect");
        let padded = g.apply("Pad", vec![map, pads], vec![mode]);
        let k = taps.len();
        let rows = g.floats("smooth_rows", &[1, 1, k, 1], &taps);
        let cols = g.floats("smooth_cols", &[1, 1, 1, k], &taps);
        let conv = |g: &mut Graph, x: String, weight: String, kernel: [usize; 2]| {
            g.apply("Conv", vec![x, weight], vec![ints("kernel_shape", &kernel)])
        };
        let down = conv(g, padded, rows, [k, 1]);
        map = conv(g, down, cols, [1, k]);
    }
    let score = match options.score {
        ScoreKind::Max => reduce(g, "ReduceMax", map.clone(), &[1, 2, 3], 0),
        ScoreKind::Mean => reduce(g, "ReduceMean", map.clone(), &[1, 2, 3], 0),
        ScoreKind::TopK => {
            let shape = g.int64s("shape", &[0, -1]);
            let flat = g.apply("Reshape", vec![map.clone(), shape], vec![]);
            let k = g.int64s("k", &[options.top_k.clamp(1, h * w) as i64]);
            let top = g.apply("TopK", vec![flat, k], vec![int("axis", 1)]);
            // TopK's second output, the indices, is not optional.
            if let Some(node) = g.nodes.last_mut() {
                node.output.push(format!("{top}_indices"));
            }
            reduce(g, "ReduceMean", top, &[1], 0)
        }
    };
    Ok((map, score))
}

/// An autoencoder as an ONNX file for inspection: the reconstruction (`output`), and with
/// `outputs` the anomaly `map` and `score` of `options`; the calibration, when the run has
/// one, in the model's metadata (`cae.threshold`, and all of it as JSON in
/// `cae.calibration`): a score above the threshold is a defect.
pub fn autoencoder_inspector(
    model: &AnyAutoencoder,
    image: [usize; 3],
    options: &MapOptions,
    calibration: Option<&Calibration>,
    outputs: bool,
) -> Result<Vec<u8>, String> {
    let mut g = match model {
        AnyAutoencoder::Conv(m) => m.decoder.walk(m.encoder.walk(Graph::new(&image))),
        AnyAutoencoder::Stacked(m) => m.walk_decoder(m.walk_encoder(Graph::new(&image))),
    };
    let mut more = Vec::new();
    if outputs {
        let (map, score) = anomaly_outputs(&mut g, options, image)?;
        more.push((map, "map".to_string(), vec![1, image[1], image[2]]));
        more.push((score, "score".to_string(), vec![]));
    }
    Ok(g.finish_with(
        "autoencoder",
        &image,
        more,
        calibration_metadata(calibration)?,
    ))
}

/// The DRAEM inspector as an ONNX file for an image of `[C, H, W]` `image` (its networks are
/// fully convolutional: the graph takes the image whole): the reconstruction (`output`), and
/// with `outputs` the `map` of `options` (the segmentation network's, or the texture map of
/// `texture`, smoothed as `options` say) and `score`; the calibration in the metadata as
/// [`autoencoder_inspector`] has it.
pub fn draem(
    model: &Draem,
    texture: Option<&TextureStats>,
    image: [usize; 3],
    options: &MapOptions,
    calibration: Option<&Calibration>,
    outputs: bool,
) -> Result<Vec<u8>, String> {
    if options.map.from_reconstruction() {
        return Err(format!(
            "the {} map of an inspector is not exported to ONNX; its segmentation and texture \
             maps are (calibrate with --map texture or --map segmentation)",
            options.map.name()
        ));
    }
    let mut g = Graph::new(&image);
    let input = g.x.clone();
    let logits = draem_net(&mut g, &model.reconstructive, input.clone(), false);
    let reconstruction = g.apply("Sigmoid", vec![logits], vec![]);
    let mut more = Vec::new();
    if outputs {
        let map = match options.map {
            MapKind::Texture => {
                let stats = texture.ok_or(
                    "the run has no texture statistics to export (trained before them, or with \
                     --texture-memory 0)",
                )?;
                texture_map(&mut g, stats, input, image)?
            }
            _ => {
                let both = g.apply(
                    "Concat",
                    vec![input, reconstruction.clone()],
                    vec![int("axis", 1)],
                );
                let segmentation = draem_net(&mut g, &model.discriminative, both, true);
                g.apply("Sigmoid", vec![segmentation], vec![])
            }
        };
        let (map, score) = smoothed_and_scored(&mut g, map, options, image)?;
        more.push((map, "map".to_string(), vec![1, image[1], image[2]]));
        more.push((score, "score".to_string(), vec![]));
    }
    g.x = reconstruction;
    Ok(g.finish_with("draem", &image, more, calibration_metadata(calibration)?))
}

/// Memory rows a MatMul of the texture map's search: its `[N, Q, rows]` distances are what a
/// runtime holds at once (128 MB for a 256² image), not `[N, Q, M]`.
const SEARCH_ROWS: usize = 2048;

/// The texture map of [`crate::model::texture`] (unsmoothed, `[N, 1, H, W]`) of `input`
/// (`[N, C, H, W]`, sides even): the same features as ONNX nodes — box means as
/// `AveragePool` with `count_include_pad` 0, the differences and filters as grouped `Conv`s —
/// in the order they come here, the memory's columns permuted to match; the search as
/// `MatMul`s over parts of the memory whose minima are merged by `Min`; `Resize` back.
fn texture_map(
    g: &mut Graph,
    stats: &TextureStats,
    input: String,
    [c, h, w]: [usize; 3],
) -> Result<String, String> {
    use crate::model::texture::{
        EPS, FEATURES, FILTER_SIDE, FILTERS, LINE_ANGLES, LINE_LENGTH, LINE_WEIGHT, line_taps,
    };
    if c != stats.channels || h % 2 != 0 || w % 2 != 0 {
        return Err(format!(
            "the texture map is exported for images of {} channel(s) with even sides; these \
             are {c}x{h}x{w}",
            stats.channels
        ));
    }
    let mean = g.floats("texture_mean", &[1, c, 1, 1], &stats.mean);
    let spread = g.floats("texture_spread", &[1, c, 1, 1], &stats.spread);
    let centred = g.apply("Sub", vec![input, mean], vec![]);
    let x = g.apply("Div", vec![centred, spread], vec![]);
    let grouped =
        |g: &mut Graph, x: String, weight: String, kernel: [usize; 2], pads: [usize; 4]| {
            let attrs = vec![
                ints("kernel_shape", &kernel),
                ints("pads", &pads),
                int("group", c as i64),
            ];
            g.apply("Conv", vec![x, weight], attrs)
        };
    // The differences, 0 in the last column (row): the padded difference there is not.
    let edge = |last_col: bool| -> Vec<f32> {
        (0..h * w)
            .map(|i| {
                let last = if last_col {
                    i % w == w - 1
                } else {
                    i / w == h - 1
                };
                if last { 0.0 } else { 1.0 }
            })
            .collect()
    };
    let dx_w = g.floats("texture_dx", &[c, 1, 1, 2], &[-1.0, 1.0].repeat(c));
    let dx = grouped(g, x.clone(), dx_w, [1, 2], [0, 0, 0, 1]);
    let dx_mask = g.floats("texture_dx_mask", &[1, 1, h, w], &edge(true));
    let gx = g.apply("Mul", vec![dx, dx_mask], vec![]);
    let dy_w = g.floats("texture_dy", &[c, 1, 2, 1], &[-1.0, 1.0].repeat(c));
    let dy = grouped(g, x.clone(), dy_w, [2, 1], [0, 0, 1, 0]);
    let dy_mask = g.floats("texture_dy_mask", &[1, 1, h, w], &edge(false));
    let gy = g.apply("Mul", vec![dy, dy_mask], vec![]);
    let f = FILTER_SIDE;
    let filters = g.floats(
        "texture_filters",
        &[c * FILTERS, 1, f, f],
        &stats.filters.repeat(c),
    );
    let r = f / 2;
    let responses = grouped(g, x.clone(), filters, [f, f], [r, r, r, r]);
    let square = |g: &mut Graph, v: &String| g.apply("Mul", vec![v.clone(), v.clone()], vec![]);
    let squares = [
        square(g, &x),
        square(g, &gx),
        square(g, &gy),
        square(g, &responses),
    ];
    let (eps, half) = (
        g.floats("texture_eps", &[], &[EPS]),
        g.floats("half", &[], &[0.5]),
    );
    let half_log = |g: &mut Graph, v: String| {
        let shifted = g.apply("Add", vec![v, eps.clone()], vec![]);
        let log = g.apply("Log", vec![shifted], vec![]);
        g.apply("Mul", vec![log, half.clone()], vec![])
    };
    let p = stats.config.per_channel();
    let mut parts = Vec::new();
    // Each part's features, as cae numbers them: c·P + s·12 + f.
    let mut order = Vec::new();
    for (s, &k) in stats.config.scales.iter().enumerate() {
        let pool = |g: &mut Graph, v: String| {
            let attrs = vec![
                ints("kernel_shape", &[k, k]),
                ints("strides", &[1, 1]),
                ints("pads", &[k / 2; 4]),
                int("count_include_pad", 0),
            ];
            g.apply("AveragePool", vec![v], attrs)
        };
        let m = pool(g, x.clone());
        let m2 = square(g, &m);
        let xx = pool(g, squares[0].clone());
        let variance = g.apply("Sub", vec![xx, m2], vec![]);
        let variance = g.apply("Relu", vec![variance], vec![]);
        let spread = half_log(g, variance);
        parts.push(m);
        order.extend((0..c).map(|ch| ch * p + s * FEATURES));
        parts.push(spread);
        order.extend((0..c).map(|ch| ch * p + s * FEATURES + 1));
        for (q, sq) in squares[1..].iter().enumerate() {
            let pooled = pool(g, sq.clone());
            parts.push(half_log(g, pooled));
            if q < 2 {
                order.extend((0..c).map(|ch| ch * p + s * FEATURES + 2 + q));
            } else {
                // The responses' channel `ch·8 + i`: filter i of channel ch.
                order.extend(
                    (0..c * FILTERS).map(|j| j / FILTERS * p + s * FEATURES + 4 + j % FILTERS),
                );
            }
        }
    }
    let features = g.apply("Concat", parts, vec![int("axis", 1)]);
    let blocks = || vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
    let mut halved = g.apply("AveragePool", vec![features], blocks());
    if stats.config.lines {
        // Each direction's line mean, of x and of x², as a grouped Conv: channel ch·A + a.
        let l = LINE_LENGTH;
        let mut kernels = vec![0f32; LINE_ANGLES * l * l];
        let centre = (l / 2) as isize;
        for (a, kernel) in kernels.chunks_mut(l * l).enumerate() {
            for (dy, dx, k) in line_taps(a) {
                kernel[(dy + centre) as usize * l + (dx + centre) as usize] = k;
            }
        }
        let weight = g.floats(
            "texture_lines",
            &[c * LINE_ANGLES, 1, l, l],
            &kernels.repeat(c),
        );
        let r = l / 2;
        let m = grouped(g, x.clone(), weight.clone(), [l, l], [r, r, r, r]);
        let q = grouped(g, squares[0].clone(), weight, [l, l], [r, r, r, r]);
        let m2 = square(g, &m);
        let variance = g.apply("Sub", vec![q, m2], vec![]);
        let variance = g.apply("Relu", vec![variance], vec![]);
        let shape = g.int64s(
            "shape",
            &[0, c as i64, LINE_ANGLES as i64, h as i64, w as i64],
        );
        let per_channel = g.apply("Reshape", vec![variance, shape], vec![]);
        let least = reduce(g, "ReduceMin", per_channel, &[2], 0);
        let uniformity = half_log(g, least);
        let weight = g.floats("texture_line_weight", &[], &[LINE_WEIGHT]);
        let uniformity = g.apply("Mul", vec![uniformity, weight], vec![]);
        // The least of each 2×2 block: −MaxPool(−u).
        let negated = g.apply("Neg", vec![uniformity], vec![]);
        let pooled = g.apply("MaxPool", vec![negated], blocks());
        let least = g.apply("Neg", vec![pooled], vec![]);
        halved = g.apply("Concat", vec![halved, least], vec![int("axis", 1)]);
        order.extend((0..c).map(|ch| ch * p + p - 1));
    }
    let d = stats.dim();
    debug_assert_eq!(order.len(), d);
    let (hh, wh) = (h / 2, w / 2);
    let shape = g.int64s("shape", &[0, d as i64, -1]);
    let flat = g.apply("Reshape", vec![halved, shape], vec![]);
    let queries = g.apply("Transpose", vec![flat], vec![ints("perm", &[0, 2, 1])]);
    let own = reduce(g, "ReduceSumSquare", queries.clone(), &[2], 0);
    let rows: Vec<&[f32]> = stats.memory.chunks(d).collect();
    let mut minima = Vec::new();
    for block in rows.chunks(SEARCH_ROWS) {
        // −2·mᵀ in the graph's feature order, and |m|².
        let mut weight = vec![0f32; d * block.len()];
        for (j, row) in block.iter().enumerate() {
            for (i, &feature) in order.iter().enumerate() {
                weight[i * block.len() + j] = -2.0 * row[feature];
            }
        }
        let norms: Vec<f32> = block
            .iter()
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect();
        let weight = g.floats("texture_memory", &[d, block.len()], &weight);
        let norms = g.floats("texture_norms", &[block.len()], &norms);
        let dots = g.apply("MatMul", vec![queries.clone(), weight], vec![]);
        let d2 = g.apply("Add", vec![dots, norms], vec![]);
        minima.push(reduce(g, "ReduceMin", d2, &[2], 0));
    }
    let least = if minima.len() == 1 {
        minima.remove(0)
    } else {
        g.apply("Min", minima, vec![])
    };
    let d2 = g.apply("Add", vec![least, own], vec![]);
    let d2 = g.apply("Relu", vec![d2], vec![]);
    let distance = g.apply("Sqrt", vec![d2], vec![]);
    let shape = g.int64s("shape", &[0, 1, hh as i64, wh as i64]);
    let half = g.apply("Reshape", vec![distance, shape], vec![]);
    let scales = g.floats("texture_scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    let attrs = vec![
        string("mode", "linear"),
        string("coordinate_transformation_mode", "half_pixel"),
    ];
    Ok(g.apply("Resize", vec![half, String::new(), scales], attrs))
}

/// One of the inspector's networks from `x` (see [`crate::model::draem`]): the padding of
/// its 3×3 convolutions is the Conv node's own.
fn draem_net(g: &mut Graph, net: &draem::Net, x: String, skips: bool) -> String {
    let conv = |g: &mut Graph, layer: &Conv2d, x: String| {
        let mut inputs = vec![x, g.weight("conv_w", layer.weight.val())];
        inputs.extend(layer.bias.as_ref().map(|b| g.weight("conv_b", b.val())));
        let k = layer.kernel_size[0];
        let pad = k / 2;
        let attrs = vec![
            ints("kernel_shape", &layer.kernel_size),
            ints("pads", &[pad, pad, pad, pad]),
        ];
        g.apply("Conv", inputs, attrs)
    };
    let block = |g: &mut Graph, b: &draem::DoubleConv, x: String| {
        let a = conv(g, &b.a, x);
        let a = g.apply("Relu", vec![a], vec![]);
        let b = conv(g, &b.b, a);
        g.apply("Relu", vec![b], vec![])
    };
    let mut levels = Vec::new();
    let mut x = x;
    for (i, b) in net.encoder.iter().enumerate() {
        if i > 0 {
            let attrs = vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
            x = g.apply("MaxPool", vec![x], attrs);
        }
        x = block(g, b, x);
        levels.push(x.clone());
    }
    levels.pop();
    for up in &net.decoder {
        let mut inputs = vec![x, g.weight("deconv_w", up.up.weight.val())];
        inputs.extend(up.up.bias.as_ref().map(|b| g.weight("deconv_b", b.val())));
        let attrs = vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
        let upsampled = g.apply("ConvTranspose", inputs, attrs);
        x = g.apply("Relu", vec![upsampled], vec![]);
        if let (true, Some(skip)) = (skips, levels.pop()) {
            x = g.apply("Concat", vec![x, skip], vec![int("axis", 1)]);
        }
        x = block(g, &up.block, x);
    }
    conv(g, &net.out, x)
}

/// The run's calibration as the ONNX metadata `cae.threshold` and `cae.calibration` (JSON).
fn calibration_metadata(
    calibration: Option<&Calibration>,
) -> Result<Vec<(String, String)>, String> {
    Ok(match calibration {
        Some(c) => vec![
            ("cae.threshold".to_string(), c.threshold.to_string()),
            (
                "cae.calibration".to_string(),
                serde_json::to_string(c).map_err(|e| e.to_string())?,
            ),
        ],
        None => Vec::new(),
    })
}

/// A classifier as an ONNX file: image (`[C, H, W]` `image`) → logits `[N, classes]`.
pub fn classifier(model: &AnyClassifier, image: [usize; 3], classes: usize) -> Vec<u8> {
    let logits = [classes];
    match model {
        AnyClassifier::AutoCnn(m) => m.walk(Graph::new(&image)).finish("autocnn", &logits),
        AnyClassifier::PlainCnn(m) => m.walk(Graph::new(&image)).finish("plain_cnn", &logits),
    }
}
