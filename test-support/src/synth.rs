//! Synthetic ONNX models and calibration data, generated deterministically in code: the seed
//! decoder of the project's motivating failure, small fixtures for tests, and a tiny graph
//! builder to write more. Nothing here is downloaded.

use tract_onnx::pb;

use calib::{DType, Dim, HostTensor, Model, Sample};

/// Deterministic pseudo-random numbers (SplitMix64), so fixtures are byte-identical everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }
}

/// An ONNX attribute.
pub fn attr_int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 2,
        i: value,
        ..Default::default()
    }
}

/// An ONNX attribute holding a list of integers.
pub fn attr_ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// An ONNX float attribute.
pub fn attr_float(name: &str, value: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 1,
        f: value,
        ..Default::default()
    }
}

/// A float32 initializer tensor stored as raw little-endian bytes.
pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DType::F32.to_onnx(),
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 initializer tensor.
pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DType::I64.to_onnx(),
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A graph input/output declaration.
pub fn value_info(name: &str, elem: DType, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            denotation: String::new(),
            value: match d {
                Dim::Fixed(v) => Some(Value::DimValue(*v)),
                Dim::Symbolic(s) => Some(Value::DimParam(s.clone())),
                Dim::Unknown => None,
            },
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem.to_onnx(),
                shape: Some(pb::TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

/// Shorthand for dims: numbers are fixed, strings symbolic.
#[macro_export]
macro_rules! dims {
    ($($d:expr),* $(,)?) => { vec![$($crate::synth::IntoDim::into_dim($d)),*] };
}

/// Conversion used by [`dims!`].
pub trait IntoDim {
    /// Converts to a [`Dim`].
    fn into_dim(self) -> Dim;
}

impl IntoDim for i64 {
    fn into_dim(self) -> Dim {
        Dim::Fixed(self)
    }
}

impl IntoDim for &str {
    fn into_dim(self) -> Dim {
        Dim::Symbolic(self.to_string())
    }
}

/// Builds ONNX graphs node by node.
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: pb::GraphProto,
    opset: i64,
}

impl GraphBuilder {
    /// An empty graph at opset 17.
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            graph: pb::GraphProto {
                name: name.into(),
                ..Default::default()
            },
            opset: 17,
        }
    }

    /// Sets the default-domain opset.
    pub fn opset(&mut self, opset: i64) -> &mut Self {
        self.opset = opset;
        self
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: DType, dims: Vec<Dim>) -> &mut Self {
        self.graph.input.push(value_info(name, elem, &dims));
        self
    }

    /// Declares a graph output.
    pub fn output(&mut self, name: &str, elem: DType, dims: Vec<Dim>) -> &mut Self {
        self.graph.output.push(value_info(name, elem, &dims));
        self
    }

    /// Adds an initializer.
    pub fn initializer(&mut self, tensor: pb::TensorProto) -> &mut Self {
        self.graph.initializer.push(tensor);
        self
    }

    /// Adds a node named `name`.
    pub fn node(
        &mut self,
        name: &str,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<pb::AttributeProto>,
    ) -> &mut Self {
        self.graph.node.push(pb::NodeProto {
            name: name.into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attributes,
            ..Default::default()
        });
        self
    }

    /// Finishes the model (IR version 8).
    pub fn build(&self) -> Model {
        let proto = pb::ModelProto {
            ir_version: 8,
            producer_name: "test_support::synth".into(),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            graph: Some(self.graph.clone()),
            ..Default::default()
        };
        Model::from_proto(proto, self.graph.name.clone()).expect("the builder always sets a graph")
    }
}

fn random_weights(rng: &mut Rng, len: usize, fan_in: usize) -> Vec<f32> {
    let scale = (2.0 / fan_in as f32).sqrt();
    (0..len).map(|_| rng.normal() * scale).collect()
}

/// Latent channels of the seed decoder.
pub const SEED_LATENT_CHANNELS: i64 = 8;
/// Upsampling factor of the seed decoder (latent `h×w` → image `4h×4w` before cropping).
pub const SEED_UPSAMPLE: i64 = 4;

/// The seed decoder of the motivating failure: three dynamic inputs
/// `y_hat: [N,C,h,w]` (latent), `q: [N,C,1,1]` (per-channel scale multiplied into `y_hat`) and
/// `dummy_input: [N,3,H,W]` (only its shape is used, to crop the output to `H×W`), one output
/// `x_hat: [N,3,H,W]`. Body: Mul → ConvTranspose(×2) → Relu → Conv → Relu → Conv → Add
/// (residual) → Relu → ConvTranspose(×2) → Slice to `H×W`. Weights come from `seed`.
pub fn seed_decoder(seed: u64) -> Model {
    let c = SEED_LATENT_CHANNELS;
    let f = 16i64;
    let mut rng = Rng::new(seed);
    let mut g = GraphBuilder::new("seed_decoder");
    g.input("y_hat", DType::F32, dims!["N", c, "h", "w"])
        .input("q", DType::F32, dims!["N", c, 1, 1])
        .input("dummy_input", DType::F32, dims!["N", 3, "H", "W"])
        .output("x_hat", DType::F32, dims!["N", 3, "H", "W"]);
    let w = |rng: &mut Rng, name: &str, dims: &[i64], fan_in: i64| {
        tensor_f32(
            name,
            dims,
            &random_weights(rng, dims.iter().product::<i64>() as usize, fan_in as usize),
        )
    };
    let b = |rng: &mut Rng, name: &str, n: i64| {
        tensor_f32(
            name,
            &[n],
            &(0..n).map(|_| rng.normal() * 0.05).collect::<Vec<_>>(),
        )
    };
    g.initializer(w(&mut rng, "up1.weight", &[c, f, 4, 4], c * 4))
        .initializer(b(&mut rng, "up1.bias", f))
        .initializer(w(&mut rng, "conv1.weight", &[f, f, 3, 3], f * 9))
        .initializer(b(&mut rng, "conv1.bias", f))
        .initializer(w(&mut rng, "conv2.weight", &[f, f, 3, 3], f * 9))
        .initializer(b(&mut rng, "conv2.bias", f))
        .initializer(w(&mut rng, "up2.weight", &[f, 3, 4, 4], f * 4))
        .initializer(b(&mut rng, "up2.bias", 3))
        .initializer(tensor_i64("crop.hw_start", &[1], &[2]))
        .initializer(tensor_i64("crop.hw_end", &[1], &[4]))
        .initializer(tensor_i64("crop.starts", &[2], &[0, 0]))
        .initializer(tensor_i64("crop.axes", &[2], &[2, 3]));
    let up = vec![
        attr_ints("strides", &[2, 2]),
        attr_ints("pads", &[1, 1, 1, 1]),
        attr_ints("kernel_shape", &[4, 4]),
    ];
    let same = vec![
        attr_ints("pads", &[1, 1, 1, 1]),
        attr_ints("kernel_shape", &[3, 3]),
    ];
    g.node("scale", "Mul", &["y_hat", "q"], &["scaled"], vec![])
        .node(
            "up1",
            "ConvTranspose",
            &["scaled", "up1.weight", "up1.bias"],
            &["up1.out"],
            up.clone(),
        )
        .node("up1.relu", "Relu", &["up1.out"], &["up1.act"], vec![])
        .node(
            "conv1",
            "Conv",
            &["up1.act", "conv1.weight", "conv1.bias"],
            &["conv1.out"],
            same.clone(),
        )
        .node("conv1.relu", "Relu", &["conv1.out"], &["conv1.act"], vec![])
        .node(
            "conv2",
            "Conv",
            &["conv1.act", "conv2.weight", "conv2.bias"],
            &["conv2.out"],
            same,
        )
        .node(
            "residual",
            "Add",
            &["conv2.out", "up1.act"],
            &["res.out"],
            vec![],
        )
        .node("residual.relu", "Relu", &["res.out"], &["res.act"], vec![])
        .node(
            "up2",
            "ConvTranspose",
            &["res.act", "up2.weight", "up2.bias"],
            &["up2.out"],
            up,
        )
        .node(
            "crop.shape",
            "Shape",
            &["dummy_input"],
            &["crop.full_shape"],
            vec![],
        )
        .node(
            "crop.hw",
            "Slice",
            &["crop.full_shape", "crop.hw_start", "crop.hw_end"],
            &["crop.ends"],
            vec![],
        )
        .node(
            "crop",
            "Slice",
            &["up2.out", "crop.starts", "crop.ends", "crop.axes"],
            &["x_hat"],
            vec![],
        );
    g.build()
}

/// Calibration samples for [`seed_decoder`]: for each `(n, h, w)` latent shape, a sample with
/// `y_hat ~ N(0,1)`, `q` in `[0.5, 1.5)` and `dummy_input` of `H = 4h - crop`, `W = 4w - crop`.
pub fn seed_samples(seed: u64, shapes: &[(usize, usize, usize)], crop: usize) -> Vec<Sample> {
    let c = SEED_LATENT_CHANNELS as usize;
    let up = SEED_UPSAMPLE as usize;
    let mut rng = Rng::new(seed);
    shapes
        .iter()
        .enumerate()
        .map(|(i, &(n, h, w))| {
            let y: Vec<f32> = (0..n * c * h * w).map(|_| rng.normal()).collect();
            let q: Vec<f32> = (0..n * c).map(|_| 0.5 + rng.uniform()).collect();
            let (hh, ww) = (up * h - crop, up * w - crop);
            Sample::new(format!("synthetic-{i}"))
                .with("y_hat", HostTensor::f32(vec![n, c, h, w], y))
                .with("q", HostTensor::f32(vec![n, c, 1, 1], q))
                .with(
                    "dummy_input",
                    HostTensor::f32(vec![n, 3, hh, ww], vec![0.0; n * 3 * hh * ww]),
                )
        })
        .collect()
}

/// A small model with two dynamic inputs, `x: [N,3,H,W]` and `q: [N,8]`:
/// `y = Flatten(GlobalAveragePool(Relu(Conv(x)))) * q`, output `y: [N,8]`.
pub fn two_input_model() -> Model {
    let mut rng = Rng::new(7);
    let mut g = GraphBuilder::new("two_inputs");
    g.input("x", DType::F32, dims!["N", 3, "H", "W"])
        .input("q", DType::F32, dims!["N", 8])
        .output("y", DType::F32, dims!["N", 8])
        .initializer(tensor_f32(
            "conv.weight",
            &[8, 3, 3, 3],
            &random_weights(&mut rng, 8 * 27, 27),
        ))
        .initializer(tensor_f32("conv.bias", &[8], &[0.01; 8]))
        .node(
            "conv",
            "Conv",
            &["x", "conv.weight", "conv.bias"],
            &["conv.out"],
            vec![
                attr_ints("pads", &[1, 1, 1, 1]),
                attr_ints("kernel_shape", &[3, 3]),
            ],
        )
        .node("relu", "Relu", &["conv.out"], &["relu.out"], vec![])
        .node(
            "pool",
            "GlobalAveragePool",
            &["relu.out"],
            &["pool.out"],
            vec![],
        )
        .node(
            "flatten",
            "Flatten",
            &["pool.out"],
            &["flat"],
            vec![attr_int("axis", 1)],
        )
        .node("gate", "Mul", &["flat", "q"], &["y"], vec![]);
    g.build()
}

/// [`two_input_model`] with one more node of an operator no runtime knows
/// (`NoSuchOperator`, named `mystery_node`).
pub fn unsupported_operator_model() -> Model {
    let mut model = two_input_model();
    let graph = model.graph_mut();
    for node in &mut graph.node {
        if node.name == "gate" {
            node.output = vec!["gated".into()];
        }
    }
    graph.node.push(pb::NodeProto {
        name: "mystery_node".into(),
        op_type: "NoSuchOperator".into(),
        input: vec!["gated".into()],
        output: vec!["y".into()],
        ..Default::default()
    });
    model
}

/// [`two_input_model`] at opset 11 with opset-11 forms in it: `Unsqueeze`/`Squeeze` with an
/// `axes` attribute and a `Softmax` with the default axis (1: "coerce to 2-D"), so that
/// `y = Softmax(gate)`. `extra` adds an unused node `old_op` of that operator type (two inputs).
pub fn opset11_model(extra: Option<&str>) -> Model {
    let mut model = two_input_model();
    model.proto_mut().opset_import[0].version = 11;
    let graph = model.graph_mut();
    for node in &mut graph.node {
        if node.name == "gate" {
            node.output = vec!["gated".into()];
        }
    }
    let node =
        |name: &str, op: &str, input: &[&str], output: &str, attribute: Vec<pb::AttributeProto>| {
            pb::NodeProto {
                name: name.into(),
                op_type: op.into(),
                input: input.iter().map(|s| s.to_string()).collect(),
                output: vec![output.into()],
                attribute,
                ..Default::default()
            }
        };
    graph.node.push(node(
        "unsq",
        "Unsqueeze",
        &["gated"],
        "u",
        vec![attr_ints("axes", &[2])],
    ));
    graph.node.push(node(
        "sq",
        "Squeeze",
        &["u"],
        "s",
        vec![attr_ints("axes", &[2])],
    ));
    graph
        .node
        .push(node("softmax", "Softmax", &["s"], "y", vec![]));
    if let Some(op) = extra {
        graph
            .node
            .push(node("old_op", op, &["s", "s"], "unused", vec![]));
    }
    model
}

/// A plain convolutional network for benchmarks: `x: [N,3,S,S]` → `depth` blocks of
/// Conv(3×3, `channels`) + Relu (every second block adds a residual) → Conv(1×1, 3) → `y`.
pub fn conv_stack(seed: u64, channels: i64, depth: usize) -> Model {
    let mut rng = Rng::new(seed);
    let mut g = GraphBuilder::new("conv_stack");
    g.input("x", DType::F32, dims!["N", 3, "S", "S"]).output(
        "y",
        DType::F32,
        dims!["N", 3, "S", "S"],
    );
    let same = || {
        vec![
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_ints("kernel_shape", &[3, 3]),
        ]
    };
    let mut prev = "x".to_string();
    let mut cin = 3;
    let mut skip: Option<String> = None;
    for i in 0..depth {
        let (w, b, c, r) = (
            format!("b{i}.weight"),
            format!("b{i}.bias"),
            format!("b{i}.conv"),
            format!("b{i}.act"),
        );
        g.initializer(tensor_f32(
            &w,
            &[channels, cin, 3, 3],
            &random_weights(&mut rng, (channels * cin * 9) as usize, (cin * 9) as usize),
        ));
        g.initializer(tensor_f32(
            &b,
            &[channels],
            &(0..channels)
                .map(|_| rng.normal() * 0.05)
                .collect::<Vec<_>>(),
        ));
        g.node(&c, "Conv", &[&prev, &w, &b], &[&c], same());
        let conv_out = match (&skip, i % 2) {
            (Some(s), 1) => {
                let sum = format!("b{i}.sum");
                g.node(&format!("b{i}.add"), "Add", &[&c, s], &[&sum], vec![]);
                sum
            }
            _ => c.clone(),
        };
        g.node(&format!("b{i}.relu"), "Relu", &[&conv_out], &[&r], vec![]);
        skip = Some(r.clone());
        prev = r;
        cin = channels;
    }
    g.initializer(tensor_f32(
        "head.weight",
        &[3, channels, 1, 1],
        &random_weights(&mut rng, (3 * channels) as usize, channels as usize),
    ));
    g.node(
        "head",
        "Conv",
        &[&prev, "head.weight"],
        &["y"],
        vec![attr_ints("kernel_shape", &[1, 1])],
    );
    g.build()
}

/// An optimization profile for [`seed_decoder`]: `(min, opt, max)` of the batch size and of the
/// latent `h = w`; `dummy_input`'s `H = W` is `4·latent − crop`, as [`seed_samples`] makes it.
pub fn seed_profile(batch: [i64; 3], latent: [i64; 3], crop: i64) -> calib::Profile {
    use calib::ShapeRange;
    let c = SEED_LATENT_CHANNELS;
    let image = |i: usize| SEED_UPSAMPLE * latent[i] - crop;
    let range = |f: &dyn Fn(usize) -> Vec<i64>| ShapeRange::new(f(0), f(1), f(2));
    calib::Profile::new()
        .input("y_hat", range(&|i| vec![batch[i], c, latent[i], latent[i]]))
        .input("q", range(&|i| vec![batch[i], c, 1, 1]))
        .input(
            "dummy_input",
            range(&|i| vec![batch[i], 3, image(i), image(i)]),
        )
}

/// The [`two_input_model`] with `conv.weight` moved to `weights.bin`
/// (after `padding` zero bytes) in `folder`, its external data `location` and `fields`.
pub fn external_model(
    folder: &std::path::Path,
    location: &str,
    fields: &[(&str, &str)],
    padding: usize,
) -> std::path::PathBuf {
    let mut m = two_input_model();
    let w = m
        .graph_mut()
        .initializer
        .iter_mut()
        .find(|t| t.name == "conv.weight")
        .unwrap();
    let bytes = std::mem::take(&mut w.raw_data);
    w.data_location = Some(1);
    w.external_data = std::iter::once(("location", location))
        .chain(fields.iter().copied())
        .map(|(k, v)| pb::StringStringEntryProto {
            key: k.into(),
            value: v.into(),
        })
        .collect();
    std::fs::create_dir_all(folder).unwrap();
    let mut padded = vec![0u8; padding];
    padded.extend(bytes);
    std::fs::write(folder.join("weights.bin"), padded).unwrap();
    let path = folder.join("model.onnx");
    std::fs::write(&path, m.to_bytes()).unwrap();
    path
}
