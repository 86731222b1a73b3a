//! Structure-aware fuzzing on stable Rust: each target starts from valid inputs (models,
//! arrays, manifests, engines, profile strings), mutates them both as bytes and as structures
//! (protobuf fields, `.npy` headers, JSON leaves) with a seeded generator, and feeds them to the
//! code `trt-calib`, `trt-build` and `trt-runtime` run on untrusted files. Every case must
//! return (`Ok` or a clear `Err`): a panic, or a case slower than [`SLOW`], fails the test,
//! and the input is written to `target/fuzz-crashes/` to become a regression test.
//!
//! `cargo xtask test` runs a short campaign (`TRT_FUZZ_CASES`, default 2000 cases per target);
//! `cargo xtask fuzz --minutes N` runs each target for N minutes (`TRT_FUZZ_SECONDS`), with a
//! fresh seed per run unless `TRT_FUZZ_SEED` is set.

#![allow(clippy::disallowed_methods)] // Tooling reads its own environment (see clippy.toml).

mod cache;
mod campaign;

use calib::{DType, HostTensor, Model};
use campaign::{Campaign, extreme, mutate_bytes, mutate_text};
use tract_onnx::pb;

/// Protobuf-aware mutations of a model: attributes, dims, data, wiring, types, opset.
fn mutate_model(c: &mut Campaign, mut m: pb::ModelProto) -> pb::ModelProto {
    let g = m.graph.as_mut().expect("seed models have graphs");
    for _ in 0..1 + c.below(3) {
        match c.below(9) {
            0 if !g.node.is_empty() => {
                let n = c.below(g.node.len());
                let v = extreme(c);
                let node = &mut g.node[n];
                if node.attribute.is_empty() {
                    continue;
                }
                let a = c.below(node.attribute.len());
                let attr = &mut node.attribute[a];
                attr.i = v;
                if !attr.ints.is_empty() {
                    let k = c.below(attr.ints.len());
                    attr.ints[k] = v;
                }
            }
            1 if !g.initializer.is_empty() => {
                let t = c.below(g.initializer.len());
                let v = extreme(c);
                let init = &mut g.initializer[t];
                if init.dims.is_empty() {
                    init.dims.push(v);
                } else {
                    let k = c.below(init.dims.len());
                    init.dims[k] = v;
                }
            }
            2 if !g.initializer.is_empty() => {
                let t = c.below(g.initializer.len());
                let cut = c.below(g.initializer[t].raw_data.len() + 1);
                g.initializer[t].raw_data.truncate(cut);
            }
            3 if !g.node.is_empty() => {
                let n = c.below(g.node.len());
                let src = c.below(g.node.len());
                if let (Some(i), Some(o)) = (
                    g.node[n].input.first().cloned(),
                    g.node[src].output.first().cloned(),
                ) {
                    let _ = i;
                    g.node[n].input[0] = o;
                }
            }
            4 if !g.node.is_empty() => {
                let n = c.below(g.node.len());
                g.node.remove(n);
            }
            5 if !g.node.is_empty() => {
                let ops = [
                    "Conv",
                    "Slice",
                    "Reshape",
                    "Concat",
                    "MatMul",
                    "Gather",
                    "Resize",
                    "Pad",
                    "If",
                    "Softmax",
                    "Squeeze",
                    "QuantizeLinear",
                ];
                let n = c.below(g.node.len());
                g.node[n].op_type = ops[c.below(ops.len())].into();
            }
            6 if !g.input.is_empty() => {
                let i = c.below(g.input.len());
                if let Some(pb::type_proto::Value::TensorType(t)) =
                    g.input[i].r#type.as_mut().and_then(|t| t.value.as_mut())
                {
                    t.elem_type = c.below(20) as i32;
                }
            }
            7 => {
                if let Some(o) = m.opset_import.first_mut() {
                    o.version = c.below(25) as i64;
                }
                return m;
            }
            _ if !g.output.is_empty() => {
                let o = c.below(g.output.len());
                g.output[o].name = format!("missing_{}", c.below(9));
            }
            _ => {}
        }
    }
    m
}

fn seed_models() -> Vec<Model> {
    vec![
        test_support::synth::seed_decoder(1),
        test_support::synth::two_input_model(),
        test_support::synth::opset11_model(None),
        test_support::synth::conv_stack(3, 4, 2),
    ]
}

#[test]
fn fuzz_onnx_reader_validation_and_qdq() {
    use prost::Message;
    let seeds: Vec<pb::ModelProto> = seed_models().iter().map(|m| m.proto().clone()).collect();
    Campaign::new("onnx").run(
        |c| {
            let seed = seeds[c.below(seeds.len())].clone();
            if c.below(2) == 0 {
                mutate_model(c, seed).encode_to_vec()
            } else {
                mutate_bytes(c, seed.encode_to_vec())
            }
        },
        |bytes| {
            let Ok(model) = Model::from_bytes(bytes, "fuzz.onnx") else {
                return;
            };
            let _ = model.inputs();
            let _ = model.outputs();
            let _ = calib::opset::raise_to_13(&model);
            if let Ok(placement) =
                calib::qdq::place(&calib::Prepared::new(&model), &calib::Exclusions::default())
            {
                let scales = placement
                    .activation_tensors()
                    .into_iter()
                    .map(|t| (t, 0.05))
                    .collect();
                if let Ok(q) =
                    calib::qdq::insert(&calib::Prepared::new(&model), &placement, &scales)
                {
                    let _ = calib::fp16::convert(&q);
                }
            }
        },
    );
}

fn npy_seed(c: &mut Campaign) -> Vec<u8> {
    let mut out = Vec::new();
    let shape = vec![1 + c.below(3), 1 + c.below(4)];
    let n: usize = shape.iter().product();
    match c.below(3) {
        0 => ndarray_npy::WriteNpyExt::write_npy(
            &ndarray::ArrayD::<f32>::from_shape_vec(shape, vec![0.5; n]).unwrap(),
            &mut out,
        ),
        1 => ndarray_npy::WriteNpyExt::write_npy(
            &ndarray::ArrayD::<i64>::from_shape_vec(shape, vec![3; n]).unwrap(),
            &mut out,
        ),
        _ => ndarray_npy::WriteNpyExt::write_npy(
            &ndarray::ArrayD::<bool>::from_shape_vec(shape, vec![true; n]).unwrap(),
            &mut out,
        ),
    }
    .unwrap();
    out
}

/// Header-aware: replaces the shape tuple or the descriptor with hostile values.
fn mutate_npy_header(c: &mut Campaign, b: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&b).into_owned();
    let shapes = [
        "(1000000000000,)",
        "(4294967296, 4294967296)",
        "()",
        "(-1,)",
        "(0, 5)",
        "(3,",
        "(2, 2, 2, 2, 2, 2, 2, 2)",
    ];
    let descrs = [
        "'<f2'", "'>f4'", "'|b1'", "'<c16'", "'O'", "'<U5'", "'<f999'",
    ];
    let replaced = if c.below(2) == 0 {
        let s = shapes[c.below(shapes.len())];
        text.find("'shape': ").map(|i| {
            let end = text[i..].find(')').map_or(text.len(), |e| i + e + 1);
            format!("{}'shape': {s}{}", &text[..i], &text[end..])
        })
    } else {
        let d = descrs[c.below(descrs.len())];
        text.find("'descr': ").map(|i| {
            let end = text[i + 9..].find(',').map_or(text.len(), |e| i + 9 + e);
            format!("{}'descr': {d}{}", &text[..i], &text[end..])
        })
    };
    // Lossy text is only a carrier for header edits; keep the payload bytes as they were.
    match replaced {
        Some(r) if r.len() >= 10 => {
            let header_end = b
                .iter()
                .position(|&x| x == b'\n')
                .map_or(b.len(), |p| p + 1);
            let new_end = r.find('\n').map_or(r.len(), |p| p + 1);
            let mut out = r.as_bytes()[..new_end].to_vec();
            out.extend_from_slice(&b[header_end.min(b.len())..]);
            out
        }
        _ => b,
    }
}

#[test]
fn fuzz_npy_and_npz_readers() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = vec![calib::TensorInfo {
        name: "x".into(),
        elem_type: DType::F32,
        dims: vec![calib::Dim::Unknown, calib::Dim::Unknown],
    }];
    let npz = dir.path().join("sample.npz");
    Campaign::new("npy").run(
        |c| {
            let seed = npy_seed(c);
            match c.below(3) {
                0 => mutate_npy_header(c, seed),
                1 => mutate_bytes(c, seed),
                _ => {
                    let h = mutate_npy_header(c, seed);
                    mutate_bytes(c, h)
                }
            }
        },
        |bytes| {
            for elem in [DType::F32, DType::I64, DType::Bool, DType::F16] {
                let _ = HostTensor::from_npy(bytes, elem);
            }
            // The same bytes inside an .npz (stored and deflated).
            for method in [
                zip::CompressionMethod::Stored,
                zip::CompressionMethod::Deflated,
            ] {
                let file = std::fs::File::create(&npz).unwrap();
                let mut zip = zip::ZipWriter::new(file);
                let options = zip::write::SimpleFileOptions::default().compression_method(method);
                zip.start_file("x.npy", options).unwrap();
                std::io::Write::write_all(&mut zip, bytes).unwrap();
                zip.finish().unwrap();
                let source = calib::Source::Path(npz.clone());
                let _ = source.load(&calib::data::SampleRef::Npz(npz.clone()), &inputs);
            }
        },
    );
}

fn json_mutate(c: &mut Campaign, v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) if !map.is_empty() => {
            let k = map.keys().nth(c.below(map.len())).cloned().unwrap();
            if c.below(8) == 0 {
                map.remove(&k);
            } else {
                json_mutate(c, map.get_mut(&k).unwrap());
            }
        }
        Value::Array(a) if !a.is_empty() => match c.below(4) {
            0 => {
                a.pop();
            }
            1 => {
                let x = a[0].clone();
                a.push(x);
            }
            _ => {
                let i = c.below(a.len());
                json_mutate(c, &mut a[i]);
            }
        },
        Value::Number(_) => {
            *v = [
                serde_json::json!(-1),
                serde_json::json!(0),
                serde_json::json!(1i64 << 40),
                serde_json::json!(i64::MIN),
                serde_json::json!(u64::MAX),
                serde_json::json!(1.5e300),
            ][c.below(6)]
            .clone()
        }
        Value::String(_) => {
            *v = serde_json::json!(["", "float32", "int4", "x", "\u{0}", "ΩΩ"][c.below(6)])
        }
        _ => *v = serde_json::json!(null),
    }
}

#[test]
fn fuzz_manifest_json_and_engine_loading() {
    let seed = tests::seed_engine();
    let manifest: serde_json::Value = serde_json::from_str(&seed.manifest).unwrap();
    Campaign::new("manifest").run(
        |c| {
            let mut v = manifest.clone();
            if c.below(3) == 0 {
                mutate_bytes(c, seed.manifest.as_bytes().to_vec())
            } else {
                json_mutate(c, &mut v);
                v.to_string().into_bytes()
            }
        },
        |bytes| {
            let text = String::from_utf8_lossy(bytes);
            if let Ok(m) = trt_runtime::Manifest::from_json(&text) {
                let _ = m.to_string();
                let _ = trt_runtime::check_interface(&m, &m.interface);
            }
            let _ = trt_runtime::Session::new(
                &seed.engine,
                Some(&seed.onnx),
                &text,
                trt_runtime::Backend::Cpu,
            );
        },
    );
    // Engine bytes and the embedded ONNX, with the manifest's hash made to match, so loading
    // goes past the hash check into the backends.
    Campaign::new("engine").run(
        |c| {
            let which = c.below(2) as u8;
            let bytes = if which == 0 {
                seed.engine.clone()
            } else {
                seed.onnx.clone()
            };
            let mut out = vec![which];
            out.extend(mutate_bytes(c, bytes));
            out
        },
        |input| {
            use sha2::Digest;
            let (engine, onnx) = if input[0] == 0 {
                (&input[1..], &seed.onnx[..])
            } else {
                (&seed.engine[..], &input[1..])
            };
            let mut m: serde_json::Value = serde_json::from_str(&seed.manifest).unwrap();
            m["engine_sha256"] = hex::encode(sha2::Sha256::digest(engine)).into();
            let _ = trt_runtime::Session::new(
                engine,
                Some(onnx),
                &m.to_string(),
                trt_runtime::Backend::Auto,
            );
        },
    );
}

#[test]
fn fuzz_profile_shape_and_option_parsers() {
    let model = test_support::synth::seed_decoder(1);
    let seeds = [
        "x:1x3x64x64:4x3x128x128:8x3x256x256",
        "1x3x224x224",
        "percentile:99.9",
        "q=16000",
        "y_hat:1x8x4x4:2x8x6x6:4x8x8x8",
    ];
    let alphabet = b"0123456789x:=,.-+ eNaq_yhatpercntil";
    Campaign::new("parsers").run(
        |c| mutate_text(c, &seeds, alphabet, b"99999999999999999999"),
        |bytes| {
            let text = String::from_utf8_lossy(bytes);
            let _ = calib::profile::parse_shape(&text);
            let _ = calib::Profile::new().parse_input(&text);
            let _ = calib::Method::parse(&text);
            let _ = calib::fold::parse_constant(&model, &text);
        },
    );
}

#[test]
fn fuzz_external_data_references() {
    // `conv.weight` of the two-input model in `weights.bin` (after 64 zero bytes that must
    // never be read as weights), referenced with generated location/offset/length
    // values: a load either fails naming the initializer, or reads exactly the weights.
    let seed = test_support::synth::two_input_model();
    let weights = seed
        .graph()
        .initializer
        .iter()
        .find(|t| t.name == "conv.weight")
        .unwrap()
        .raw_data
        .clone();
    let exact = weights.len().to_string();
    let mut padded = vec![0u8; 64];
    padded.extend(&weights);
    let values = [
        "64",
        "0",
        "0x40",
        "-64",
        "+64",
        " 64",
        "64 ",
        "1e3",
        "",
        "18446744073709551616",
        "99999999999999999999",
        "6.4",
        "٦٤",
    ];
    let locations = [
        "weights.bin",
        "./weights.bin",
        "../weights.bin",
        "/etc/hostname",
        "",
        "weights.bin/.",
        "missing.bin",
        "link.bin",
        "w\u{0}.bin",
    ];
    Campaign::new("external-data").run(
        |c| {
            let field = |c: &mut Campaign| match c.below(4) {
                0 => None,
                1 => Some(exact.clone()),
                2 => Some(extreme(c).to_string()),
                _ => Some(values[c.below(values.len())].to_string()),
            };
            let offset = if c.below(3) == 0 {
                Some("64".into())
            } else {
                field(c)
            };
            let length = field(c);
            let location = locations[c.below(locations.len())];
            serde_json::json!([location, offset, length])
                .to_string()
                .into_bytes()
        },
        |input| {
            let v: serde_json::Value = serde_json::from_slice(input).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let fields: Vec<(&str, &str)> = ["offset", "length"]
                .into_iter()
                .zip(&v.as_array().unwrap()[1..])
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v)))
                .collect();
            let location = v[0].as_str().unwrap();
            let path = test_support::synth::external_model(dir.path(), location, &fields, 64);
            std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link.bin")).unwrap();
            match Model::load(&path) {
                Ok(loaded) => {
                    let w = loaded
                        .graph()
                        .initializer
                        .iter()
                        .find(|t| t.name == "conv.weight")
                        .unwrap();
                    // Accepted only for plain decimal byte counts, and then exactly the bytes
                    // they name.
                    let decimal = |i: usize| -> Option<usize> {
                        match v[i].as_str() {
                            None => None,
                            Some(t) => {
                                // Surrounding blanks and a `+` change nothing (Python's
                                // `int()`, which ONNX's own loader uses, takes them too).
                                let d = t.trim();
                                let d = d.strip_prefix('+').unwrap_or(d);
                                assert!(
                                    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()),
                                    "{v}: `{t}` accepted as a byte count"
                                );
                                Some(d.parse().unwrap())
                            }
                        }
                    };
                    let offset = decimal(1).unwrap_or(0);
                    let length = decimal(2).unwrap_or(padded.len() - offset);
                    assert!(
                        w.raw_data == padded[offset..offset + length],
                        "{v}: weights read from the wrong bytes"
                    );
                }
                Err(e) => assert!(e.to_string().contains("conv.weight"), "{v}: {e}"),
            }
        },
    );
}
