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

    /// A constant initializer of `dims` from `values`.
    fn constant(&mut self, name: &str, dims: &[usize], values: Vec<f32>) -> String {
        let t = Tensor::<1>::from_floats(values.as_slice(), &burn::tensor::Device::flex());
        let t: Tensor<4> = t.reshape([dims[0], dims[1], dims[2], dims[3]]);
        self.weight(name, t)
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
/// edges reflected as cae's maps) and `score` (`[N]`, its max or mean). From the graph so far,
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
/// and its `score` (`[N]`, max or mean); returns the two values' names.
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
        let pads = format!("pads_{}", g.initializers.len());
        let r = radius as i64;
        g.initializers.push(TensorProto {
            dims: vec![8],
            data_type: INT64,
            name: pads.clone(),
            raw_data: [0, 0, r, r, 0, 0, r, r]
                .iter()
                .flat_map(|v: &i64| v.to_le_bytes())
                .collect(),
        });
        let mode = AttributeProto {
            name: "mode".into(),
            s: b"reflect".to_vec(),
            r#type: 3,
            ..Default::default()
        };
        let padded = g.apply("Pad", vec![map, pads], vec![mode]);
        let k = taps.len();
        let rows = g.constant("smooth_rows", &[1, 1, k, 1], taps.clone());
        let cols = g.constant("smooth_cols", &[1, 1, 1, k], taps);
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
            return Err("--score top-k is not exported to ONNX; max and mean are".into());
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
/// with `outputs` the segmentation `map` (smoothed as `options` say) and `score`; the
/// calibration in the metadata as [`autoencoder_inspector`] has it.
pub fn draem(
    model: &Draem,
    image: [usize; 3],
    options: &MapOptions,
    calibration: Option<&Calibration>,
    outputs: bool,
) -> Result<Vec<u8>, String> {
    if options.map != MapKind::Segmentation {
        return Err(format!(
            "the {} map of an inspector is not exported to ONNX; its segmentation map is \
             (calibrate with --map segmentation)",
            options.map.name()
        ));
    }
    let mut g = Graph::new(&image);
    let input = g.x.clone();
    let logits = draem_net(&mut g, &model.reconstructive, input.clone(), false);
    let reconstruction = g.apply("Sigmoid", vec![logits], vec![]);
    let both = g.apply(
        "Concat",
        vec![input, reconstruction.clone()],
        vec![int("axis", 1)],
    );
    let segmentation = draem_net(&mut g, &model.discriminative, both, true);
    let map = g.apply("Sigmoid", vec![segmentation], vec![]);
    g.x = reconstruction;
    let mut more = Vec::new();
    if outputs {
        let (map, score) = smoothed_and_scored(&mut g, map, options, image)?;
        more.push((map, "map".to_string(), vec![1, image[1], image[2]]));
        more.push((score, "score".to_string(), vec![]));
    }
    Ok(g.finish_with("draem", &image, more, calibration_metadata(calibration)?))
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
