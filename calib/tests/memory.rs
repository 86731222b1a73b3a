//! What keeps calibration's memory down, checked for the same results: weights offloaded to a
//! temporary file ([`Model::offload_weights`]), a model written piece by piece
//! ([`Model::write_to`]), one symbolic plan for many input shapes
//! ([`CpuModel::shares_one_plan`]), and a [`Job`] that offloads a large model's weights.

use calib::infer::to_f32;
use calib::{CpuModel, HostTensor, Job, Method, Model, Sample, Source, WeightStorage};
use test_support::synth::conv_stack;
use tract_onnx::prelude::Tensor;

fn values(s: usize, seed: usize) -> Vec<f32> {
    (0..3 * s * s)
        .map(|v| ((v * (seed + 3)) % 29) as f32 / 14.0 - 1.0)
        .collect()
}

fn image(s: usize, seed: usize) -> Tensor {
    Tensor::from_shape(&[1, 3, s, s], &values(s, seed)).unwrap()
}

fn run(cpu: &CpuModel, s: usize, seed: usize) -> Vec<f32> {
    let out = cpu.run("sample", vec![("x", image(s, seed))]).unwrap();
    to_f32(&out[0]).unwrap()
}

fn parts(model: &Model) -> Vec<u8> {
    let mut all = Vec::new();
    model
        .content_parts(&mut |p| all.extend_from_slice(p))
        .unwrap();
    all
}

#[test]
fn offloaded_weights_round_trip_and_run_the_same() {
    let model = conv_stack(3, 16, 3);
    let bytes = model.to_bytes();
    // Every conv weight (16·16·9·4 = 9,216 bytes) goes; biases (64 bytes) stay.
    let light = model.offload_weights(1024).unwrap();
    assert!(light.is_offloaded() && !model.is_offloaded());
    let dir = light.offload_dir().unwrap().to_path_buf();
    assert!(dir.join(trt_cpu::offload::WEIGHTS_FILE).is_file());
    for t in &light.graph().initializer {
        let original = model
            .graph()
            .initializer
            .iter()
            .find(|o| o.name == t.name)
            .unwrap();
        assert_eq!(
            t.raw_data.is_empty(),
            original.raw_data.len() >= 1024,
            "{}",
            t.name
        );
        // One tensor read back on demand, as Q/DQ insertion reads a weight.
        assert_eq!(
            light.initializer_f32(t).unwrap(),
            model.initializer_f32(original).unwrap(),
            "{}",
            t.name
        );
    }
    assert!(light.to_bytes().len() < bytes.len() / 4);
    assert_eq!(light.weight_bytes(), model.weight_bytes());

    // Back in memory, written piece by piece, hashed in parts: the original bytes.
    assert_eq!(light.with_weights().unwrap().to_bytes(), bytes);
    let mut written = Vec::new();
    light
        .write_to(&mut written, std::path::Path::new("memory"))
        .unwrap();
    assert_eq!(written, bytes);
    let mut written = Vec::new();
    model
        .write_to(&mut written, std::path::Path::new("memory"))
        .unwrap();
    assert_eq!(written, bytes);
    assert_eq!(parts(&light), parts(&model));
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("saved.onnx");
    light.save(&path, WeightStorage::Auto).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(Model::load(&path).unwrap().to_bytes(), bytes);

    // tract reads the offloaded weights from their file: the same outputs, bit for bit.
    let a = CpuModel::new(&model, &[]).unwrap();
    let b = CpuModel::new(&light, &[]).unwrap();
    assert_eq!(run(&a, 12, 1), run(&b, 12, 1));

    // The file goes with the last model that refers to it.
    drop((light, b));
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

#[test]
fn one_plan_serves_many_shapes_with_the_outputs_of_one_plan_per_shape() {
    let model = conv_stack(5, 8, 2);
    let sizes = [6usize, 8, 9, 11, 13];
    let signatures: Vec<Vec<Vec<usize>>> = sizes.iter().map(|&s| vec![vec![1, 3, s, s]]).collect();

    let mut shared = CpuModel::new(&model, &[]).unwrap();
    shared.plan_limit(2);
    shared.prepare(&signatures).unwrap();
    assert!(shared.shares_one_plan());

    // Enough cached plans for every shape: one concrete plan each.
    let mut concrete = CpuModel::new(&model, &[]).unwrap();
    concrete.plan_limit(sizes.len());
    concrete.prepare(&signatures).unwrap();
    assert!(!concrete.shares_one_plan());

    for (i, &s) in sizes.iter().enumerate() {
        let (a, b) = (run(&shared, s, i), run(&concrete, s, i));
        assert_eq!(a.len(), 3 * s * s);
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "size {s}: outputs differ by {worst}");
    }
    // A shape no signature announced still runs (the same plan).
    assert_eq!(run(&shared, 7, 9).len(), 3 * 7 * 7);
}

#[test]
fn a_job_on_a_large_model_offloads_its_weights_and_quantizes_it_as_in_memory() {
    // 3 × 416·416·9·4 bytes ≈ 18.7 MB of conv weights plus the stem: above the job's
    // threshold for offloading.
    let model = conv_stack(11, 416, 4);
    assert!(model.weight_bytes() >= calib::job::OFFLOAD_MIN_BYTES);
    let samples: Vec<Sample> = (0..4)
        .map(|i| {
            Sample::new(format!("s{i}")).with("x", HostTensor::f32(vec![1, 3, 6, 6], values(6, i)))
        })
        .collect();
    let profile = calib::Profile::new().input(
        "x",
        calib::ShapeRange::new(vec![1, 3, 6, 6], vec![1, 3, 6, 6], vec![1, 3, 6, 6]),
    );
    let quantized = Job::new(&model, Source::Memory(samples.clone()))
        .method(Method::MinMax)
        .profiles(vec![profile.clone()])
        .hold_out_every(0)
        .run()
        .unwrap();
    // The result is complete, in memory.
    assert!(!quantized.model.is_offloaded());

    // The same recipe by hand, weights in memory throughout.
    let prepared = calib::Prepared::new(&model);
    let calibration = calib::Calibrator::prepared(&prepared)
        .method(Method::MinMax)
        .profile(profile)
        .run(&Source::Memory(samples))
        .unwrap();
    assert_eq!(calibration.scales, quantized.calibration.scales);
    let mut by_hand = calibration.apply(&prepared).unwrap();
    by_hand.clear_placeholder_dims();
    assert_eq!(quantized.model.to_bytes(), by_hand.to_bytes());
}

/// Every tensor `cpu` streams or returns, by name.
fn observed(cpu: &CpuModel, s: usize) -> std::collections::BTreeMap<String, Vec<f32>> {
    let mut seen = std::collections::BTreeMap::new();
    cpu.run_observing("sample", vec![("x", image(s, 2))], &mut |i, t| {
        seen.insert(cpu.output_names()[i].clone(), to_f32(t).unwrap());
        Ok(())
    })
    .unwrap();
    seen
}

#[test]
fn observing_computes_only_what_its_tensors_need() {
    let model = conv_stack(7, 8, 4);
    let asked = [
        "b2.act".to_string(),
        "b1.act".to_string(),
        "b2.act".to_string(),
    ];
    let only = CpuModel::observing(&model, &asked).unwrap();
    // Each tensor once, in the order asked; the graph output is not among them.
    assert_eq!(only.output_names(), ["b2.act", "b1.act"]);
    let all = CpuModel::new(&model, &asked).unwrap();
    assert_eq!(all.output_names(), ["y", "b2.act", "b1.act"]);
    let (a, b) = (observed(&only, 9), observed(&all, 9));
    assert_eq!(a.len(), 2);
    for (name, values) in &a {
        assert_eq!(values.len(), 8 * 9 * 9, "{name}");
        assert_eq!(Some(values), b.get(name), "{name}");
    }

    // Layers after the last observed tensor are not even loaded: a tail no engine can run
    // stops the full model and not the observing one.
    let mut proto = model.proto().clone();
    let g = proto.graph.as_mut().unwrap();
    g.node.push(tract_onnx::pb::NodeProto {
        name: "tail".into(),
        op_type: "NoSuchOperator".into(),
        input: vec!["y".into()],
        output: vec!["z".into()],
        ..Default::default()
    });
    g.output[0].name = "z".into();
    let tailed = Model::from_proto(proto, "tailed").unwrap();
    let only = CpuModel::observing(&tailed, &asked[..2]).unwrap();
    assert_eq!(observed(&only, 9), a);
    let all = CpuModel::new(&tailed, &[]);
    let failed = all.and_then(|cpu| cpu.run("sample", vec![("x", image(9, 2))]));
    assert!(failed.is_err(), "the unknown operator ran");
}
