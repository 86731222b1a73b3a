//! Model and data formats (external data, `.npz`, float16 `.npy`), the persisted calibration,
//! the Q/DQ rules the seed decoder does not exercise (GEMV, Gemm axes, Concat sharing), and
//! streamed intermediate tensors (`CpuModel::run_observing`).
//! Fixtures are built in code with `test_support::synth::GraphBuilder`.

use calib::{
    Calibrator, DType, Exclusions, HostTensor, Method, Model, Sample, Source, TensorData,
    WeightStorage,
};
use test_support::dims;
use test_support::synth::{
    GraphBuilder, attr_int, seed_decoder, seed_samples, tensor_f32, two_input_model,
};

#[test]
fn external_data_round_trips_and_a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = seed_decoder(4);
    let path = dir.path().join("seed.onnx");
    model
        .save(&path, WeightStorage::External { threshold: 256 })
        .unwrap();
    let data = dir.path().join("seed.onnx.data");
    assert!(
        std::fs::metadata(&data).unwrap().len() > 10_000,
        "weights went to the data file"
    );
    assert!(
        std::fs::metadata(&path).unwrap().len() < 5_000,
        "the model file keeps only the graph"
    );
    let loaded = Model::load(&path).unwrap();
    assert_eq!(
        loaded.to_bytes(),
        model.to_bytes(),
        "external weights are read back exactly"
    );
    assert_eq!(loaded.external_files(), std::slice::from_ref(&data));

    std::fs::remove_file(&data).unwrap();
    let e = Model::load(&path).unwrap_err().to_string();
    assert!(e.contains("seed.onnx.data"), "{e}");
}

#[test]
fn npz_samples_and_float16_npy_are_read() {
    use ndarray_npy::NpzWriter;
    let dir = tempfile::tempdir().unwrap();
    let model = two_input_model();
    let inputs = model.inputs().unwrap();
    // One .npz per sample, arrays named after the inputs.
    for i in 0..2 {
        let f = std::fs::File::create(dir.path().join(format!("s{i}.npz"))).unwrap();
        let mut npz = NpzWriter::new(f);
        npz.add_array(
            "x",
            &ndarray::ArrayD::<f32>::from_elem(vec![1, 3, 8, 8], 0.5 + i as f32),
        )
        .unwrap();
        npz.add_array("q", &ndarray::ArrayD::<f32>::ones(vec![1, 8]))
            .unwrap();
        npz.finish().unwrap();
    }
    let source = Source::Path(dir.path().to_path_buf());
    let refs = source.list().unwrap();
    assert_eq!(refs.len(), 2);
    let s = source.load(&refs[1], &inputs).unwrap();
    assert_eq!(
        s.get("x").unwrap(),
        &HostTensor::f32(vec![1, 3, 8, 8], vec![1.5; 192])
    );

    // float16 .npy ('<f2'), as numpy writes it: header, then little-endian halves.
    let npy = dir.path().join("h.npy");
    let header = "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let pad = 64 - (10 + header.len() + 1) % 64;
    let text = format!("{header}{}\n", " ".repeat(pad));
    bytes.extend((text.len() as u16).to_le_bytes());
    bytes.extend(text.as_bytes());
    bytes.extend([0x00, 0x3c, 0x00, 0xc0]); // 1.0, -2.0
    std::fs::write(&npy, bytes).unwrap();
    let info = [calib::TensorInfo {
        name: "h".into(),
        elem_type: DType::F16,
        dims: dims![2],
    }];
    let sample_dir = dir.path().join("f16");
    std::fs::create_dir_all(&sample_dir).unwrap();
    std::fs::rename(&npy, sample_dir.join("h.npy")).unwrap();
    let s = Source::Path(sample_dir.clone())
        .load(&calib::data::SampleRef::NpyDir(sample_dir), &info)
        .unwrap();
    let TensorData::F16(v) = s.get("h").unwrap().data() else {
        panic!("not f16")
    };
    assert_eq!(
        v.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        vec![1.0, -2.0]
    );
}

#[test]
fn persisted_calibration_is_reused_until_the_data_changes() {
    let dir = tempfile::tempdir().unwrap();
    let model = seed_decoder(1);
    for (i, s) in seed_samples(3, &[(1, 4, 4), (2, 6, 6)], 1)
        .iter()
        .enumerate()
    {
        s.save_npy_dir(&dir.path().join("data").join(format!("s{i}")))
            .unwrap();
    }
    let source = Source::Path(dir.path().join("data"));
    let cache = dir.path().join("calibration.json");
    let c = Calibrator::new(&model).method(Method::Percentile { percentile: 99.9 });
    let (first, reused) = c.run_cached(&source, &cache).unwrap();
    assert!(!reused);
    let (second, reused) = c.run_cached(&source, &cache).unwrap();
    assert!(reused && first == second);
    seed_samples(9, &[(1, 4, 4)], 1)[0]
        .save_npy_dir(&dir.path().join("data/s0"))
        .unwrap();
    let (third, reused) = c.run_cached(&source, &cache).unwrap();
    assert!(!reused && third.fingerprint != first.fingerprint);
}

/// x:[N,16] -> MatMul W1[16,32] -> Gemm(transB) W2[8,32] -> y1; x -> MatMul Wv[16,1] (GEMV) -> y2;
/// Concat of two Conv inputs shares a scale.
fn rules_model() -> Model {
    let mut g = GraphBuilder::new("rules");
    g.input("x", DType::F32, dims!["N", 16])
        .input("img", DType::F32, dims!["N", 3, 8, 8])
        .output("y1", DType::F32, dims!["N", 8])
        .output("y2", DType::F32, dims!["N", 1])
        .output("y3", DType::F32, dims!["N", 8, 8, 8])
        .initializer(tensor_f32("w1", &[16, 32], &[0.1; 512]))
        .initializer(tensor_f32("w2", &[8, 32], &[0.2; 256]))
        .initializer(tensor_f32("wv", &[16, 1], &[0.3; 16]))
        .initializer(tensor_f32("k", &[4, 3, 1, 1], &[0.5; 12]))
        .node("mm", "MatMul", &["x", "w1"], &["h"], vec![])
        .node(
            "gemm",
            "Gemm",
            &["h", "w2"],
            &["y1"],
            vec![attr_int("transB", 1)],
        )
        .node("gemv", "MatMul", &["x", "wv"], &["y2"], vec![])
        .node("a", "Conv", &["img", "k"], &["ca"], vec![])
        .node("b", "Relu", &["img"], &["rb"], vec![])
        .node("c", "Conv", &["rb", "k"], &["cb"], vec![])
        .node(
            "cat",
            "Concat",
            &["img", "rb"],
            &["cat_out"],
            vec![attr_int("axis", 1)],
        )
        .node(
            "cat2",
            "Concat",
            &["ca", "cb"],
            &["y3"],
            vec![attr_int("axis", 1)],
        );
    g.build()
}

#[test]
fn gemv_is_skipped_gemm_axes_follow_the_layout_and_concat_inputs_share_a_scale() {
    let model = rules_model();
    let p = calib::qdq::place(&calib::Prepared::new(&model), &Exclusions::default()).unwrap();
    assert!(
        p.skipped
            .iter()
            .any(|(n, why)| n == "gemv" && why.contains("GEMV")),
        "{:?}",
        p.skipped
    );
    let axis = |w: &str| {
        p.weights
            .iter()
            .find(|x| x.initializer == w)
            .map(|x| x.axis)
    };
    assert_eq!(
        axis("w1"),
        Some(1),
        "MatMul weight [K,N]: output channels on axis 1"
    );
    assert_eq!(
        axis("w2"),
        Some(0),
        "Gemm transB weight [N,K]: output channels on axis 0"
    );
    assert_eq!(axis("wv"), None);
    assert_eq!(p.shared, vec![vec!["img".to_string(), "rb".to_string()]]);

    let samples: Vec<Sample> = (0..3)
        .map(|i| {
            Sample::new(format!("s{i}"))
                .with(
                    "x",
                    HostTensor::f32(vec![2, 16], (0..32).map(|v| v as f32 * 0.1 - 1.0).collect()),
                )
                .with(
                    "img",
                    HostTensor::f32(
                        vec![2, 3, 8, 8],
                        (0..384)
                            .map(|v| ((v * (i + 1)) % 17) as f32 - 8.0)
                            .collect(),
                    ),
                )
        })
        .collect();
    let c = Calibrator::new(&model)
        .method(Method::MinMax)
        .run(&Source::Memory(samples))
        .unwrap();
    assert_eq!(
        c.scales["img"], c.scales["rb"],
        "Concat inputs share one scale"
    );
    let q = c.apply(&calib::Prepared::new(&model)).unwrap();
    assert!(
        q.graph()
            .node
            .iter()
            .any(|n| n.op_type == "MatMul" && n.input[1] == "wv"),
        "the GEMV keeps its float weight"
    );
}

#[test]
fn opset_11_is_raised_to_13_with_the_same_numbers_and_per_channel_weights() {
    let model = test_support::synth::opset11_model(None);
    let samples = seed_like_two_input(4);
    let c = Calibrator::new(&model)
        .run(&Source::Memory(samples.clone()))
        .unwrap();
    assert!(c.placement.per_tensor_weights.is_none());
    let q = c.apply(&calib::Prepared::new(&model)).unwrap();
    assert_eq!(q.opset(), 13);
    let dq = q
        .graph()
        .node
        .iter()
        .find(|n| n.op_type == "DequantizeLinear" && n.name.starts_with("conv.weight"))
        .expect("weight DQ");
    assert!(dq.attribute.iter().any(|a| a.name == "axis"), "per channel");
    // The raised FP32 model computes what the opset-11 model computes.
    let raised = calib::opset::raise_to_13(&model).unwrap();
    let (a, b) = (
        calib::CpuModel::new(&model, &[]).unwrap(),
        calib::CpuModel::new(&raised, &[]).unwrap(),
    );
    for s in &samples {
        let (x, y) = (
            a.run(s.id(), s.inputs()).unwrap(),
            b.run(s.id(), s.inputs()).unwrap(),
        );
        let (x, y) = (
            calib::infer::to_f32(&x[0]).unwrap(),
            calib::infer::to_f32(&y[0]).unwrap(),
        );
        let diff = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-6, "raised model differs by {diff}");
        // Softmax rows sum to one: the old "coerce to 2-D at axis 1" meaning is kept.
        assert!((y[..8].iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn a_model_that_cannot_be_raised_gets_per_tensor_weight_scales_and_a_warning() {
    let model = test_support::synth::opset11_model(Some("Scatter"));
    let placement =
        calib::qdq::place(&calib::Prepared::new(&model), &Exclusions::default()).unwrap();
    let why = placement.per_tensor_weights.clone().expect("fallback");
    assert!(
        why.contains("'old_op' (Scatter)") && why.contains("opset 11"),
        "{why}"
    );
    let scales = placement
        .activation_tensors()
        .into_iter()
        .map(|t| (t, 0.05f32))
        .collect();
    let q = calib::qdq::insert(&calib::Prepared::new(&model), &placement, &scales).unwrap();
    assert_eq!(q.opset(), 11);
    let dq = q
        .graph()
        .node
        .iter()
        .find(|n| n.op_type == "DequantizeLinear" && n.name.starts_with("conv.weight"))
        .expect("weight DQ");
    assert!(dq.attribute.is_empty(), "per tensor: no axis");
    let scale = q
        .graph()
        .initializer
        .iter()
        .find(|t| t.name == dq.input[1])
        .unwrap();
    assert!(scale.dims.is_empty(), "scalar scale");
}

#[test]
fn class_score_outputs_get_top1_agreement() {
    let model = two_input_model();
    let samples: Vec<Sample> = seed_like_two_input(4);
    let c = Calibrator::new(&model)
        .run(&Source::Memory(samples.clone()))
        .unwrap();
    let r = calib::report::compare_samples(
        &model,
        &c.apply(&calib::Prepared::new(&model)).unwrap(),
        &samples,
    )
    .unwrap();
    let top1 = r.outputs[0]
        .top1_agreement
        .expect("y is [N, 8]: class scores");
    assert!(top1 >= 0.75, "{}", r.table());
}

fn seed_like_two_input(n: usize) -> Vec<Sample> {
    let mut rng = test_support::synth::Rng::new(17);
    (0..n)
        .map(|i| {
            Sample::new(format!("t{i}"))
                .with(
                    "x",
                    HostTensor::f32(vec![2, 3, 8, 8], (0..384).map(|_| rng.normal()).collect()),
                )
                .with(
                    "q",
                    HostTensor::f32(vec![2, 8], (0..16).map(|_| rng.uniform() + 0.5).collect()),
                )
        })
        .collect()
}

/// A generated (streaming) source calibrates exactly like the same samples held in memory.
#[test]
fn generated_source_matches_the_in_memory_one() {
    let model = seed_decoder(1);
    let samples = seed_samples(6, &[(1, 4, 4), (2, 6, 6), (3, 5, 7)], 1);
    let copy = samples.clone();
    let generated = Source::generated(3, move |i| copy[i].clone());
    let a = Calibrator::new(&model)
        .run(&Source::Memory(samples))
        .unwrap();
    let b = Calibrator::new(&model).run(&generated).unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let (cal, held) = generated.split(3).unwrap();
    assert_eq!(
        (cal.list().unwrap().len(), held.list().unwrap().len()),
        (2, 1)
    );
}

#[test]
fn streamed_intermediate_tensors_are_each_observed_once_and_equal_the_returned_ones() {
    // Calibration observes activations as they are made (`run_observing`) instead of keeping
    // every one as an output until the call ends; both paths must see the same tensors.
    let model = seed_decoder(5);
    let mut extras: Vec<String> = model
        .graph()
        .node
        .iter()
        .flat_map(|n| n.output.clone())
        .collect();
    extras.push("y_hat".into());
    let cpu = calib::CpuModel::new(&model, &extras).unwrap();
    let sample = &seed_samples(6, &[(2, 6, 5)], 1)[0];
    let returned = cpu.run(sample.id(), sample.inputs()).unwrap();
    assert_eq!(returned.len(), cpu.output_names().len());
    let mut seen = vec![0usize; returned.len()];
    cpu.run_observing(sample.id(), sample.inputs(), &mut |i, t| {
        seen[i] += 1;
        assert_eq!(
            calib::infer::to_f32(t).unwrap(),
            calib::infer::to_f32(&returned[i]).unwrap(),
            "{}",
            cpu.output_names()[i]
        );
        Ok(())
    })
    .unwrap();
    assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
}
