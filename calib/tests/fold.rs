//! Folding `If` nodes decided by the profiles' fixed shapes, and binding constant inputs.

use calib::ShapeRange;
use calib::fold::*;
use calib::{DType, Model, Profile};
use test_support::synth::{GraphBuilder, attr_int};
use tract_onnx::pb;

/// A subgraph of one node `op(inputs) -> out`.
fn branch(op: &str, inputs: &[&str], out: &str) -> pb::GraphProto {
    pb::GraphProto {
        name: format!("{op}_{out}"),
        node: vec![pb::NodeProto {
            name: out.into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            ..Default::default()
        }],
        output: vec![pb::ValueInfoProto {
            name: out.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `out = If(cond, then, other)`.
fn if_node(
    name: &str,
    cond: &str,
    out: &str,
    then: pb::GraphProto,
    other: pb::GraphProto,
) -> pb::NodeProto {
    let attr = |name: &str, g: pb::GraphProto| pb::AttributeProto {
        name: name.into(),
        r#type: 5,
        g: Some(g),
        ..Default::default()
    };
    pb::NodeProto {
        name: name.into(),
        op_type: "If".into(),
        input: vec![cond.into()],
        output: vec![out.into()],
        attribute: vec![attr("then_branch", then), attr("else_branch", other)],
        ..Default::default()
    }
}

/// `y = If(Shape(x)[1] == 4, then: Relu(x), else: Neg(x))` with `x: [N, C]`, and an
/// `If` on the value of a second input `mode` (`mode == 1 ? x : -x`).
fn model() -> Model {
    let mut g = GraphBuilder::new("ifs");
    g.input("x", DType::F32, test_support::dims!["N", "C"])
        .input("mode", DType::I64, vec![])
        .output("y", DType::F32, test_support::dims!["N", "C"])
        .output("z", DType::F32, test_support::dims!["N", "C"])
        .initializer(test_support::synth::tensor_i64("one", &[], &[1]))
        .initializer(test_support::synth::tensor_i64("four", &[], &[4]))
        .node("shape", "Shape", &["x"], &["shape"], vec![])
        .node(
            "c",
            "Gather",
            &["shape", "one"],
            &["c"],
            vec![attr_int("axis", 0)],
        )
        .node("is4", "Equal", &["c", "four"], &["is4"], vec![])
        .node("is1", "Equal", &["mode", "one"], &["is1"], vec![]);
    let mut m = g.build();
    let graph = m.graph_mut();
    for (name, cond, out) in [("by_shape", "is4", "y"), ("by_value", "is1", "z")] {
        graph.node.push(if_node(
            name,
            cond,
            out,
            branch("Relu", &["x"], &format!("{name}_then")),
            branch("Neg", &["x"], &format!("{name}_else")),
        ));
    }
    m
}

fn profile(c: i64) -> Profile {
    Profile::new().input("x", ShapeRange::new([1, c], [2, c], [4, c]))
}

#[test]
fn an_if_decided_by_a_fixed_shape_is_replaced_by_its_branch_and_values_keep_theirs() {
    let m = model();
    let (folded, notes) = fold_shape_ifs(&m, &[profile(4)]).unwrap().expect("folded");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("'by_shape'") && notes[0].contains("then_branch"));
    let ops: Vec<&str> = folded
        .graph()
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    assert!(ops.contains(&"Relu") && !ops.contains(&"Neg"), "{ops:?}");
    assert_eq!(
        ops.iter().filter(|o| **o == "If").count(),
        1,
        "the value-decided If stays"
    );
    // C = 3 takes the other branch.
    let (other, _) = fold_shape_ifs(&m, &[profile(3)]).unwrap().unwrap();
    assert!(
        other
            .graph()
            .node
            .iter()
            .any(|n| n.op_type == "Neg" && n.name.contains("by_shape"))
    );
    // A range over C is not decided by the shapes: nothing folds.
    let varying = Profile::new().input("x", ShapeRange::new([1, 3], [2, 4], [4, 4]));
    assert!(fold_shape_ifs(&m, &[varying]).unwrap().is_none());
}

#[test]
fn a_bound_input_makes_its_if_foldable() {
    let m = model();
    let (name, value) = parse_constant(&m, "mode=1").unwrap();
    let bound = bind_inputs(&m, &[(name, value)]).unwrap();
    assert!(bound.inputs().unwrap().iter().all(|i| i.name != "mode"));
    let (folded, notes) = fold_shape_ifs(&bound, &[profile(4)]).unwrap().unwrap();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(folded.graph().node.iter().all(|n| n.op_type != "If"));
    let e = parse_constant(&m, "rate=1").unwrap_err().to_string();
    assert!(e.contains("'rate' is not an input"), "{e}");
    let e = parse_constant(&m, "mode=fast").unwrap_err().to_string();
    assert!(e.contains("mode=fast"), "{e}");
}

/// `a = If(C == 4, then: Identity(x), else: Unsqueeze(x, 2))` — branches of different rank,
/// which tract cannot type — and `b = If(rank(a) == 2, then: Relu(x), else: Neg(x))`, whose
/// condition reads the shape of the first `If`'s output.
fn nested_model() -> Model {
    let mut g = GraphBuilder::new("nested_ifs");
    g.input("x", DType::F32, test_support::dims!["N", "C"])
        .output("b", DType::F32, test_support::dims!["N", "C"])
        .initializer(test_support::synth::tensor_i64("one", &[], &[1]))
        .initializer(test_support::synth::tensor_i64("two", &[], &[2]))
        .initializer(test_support::synth::tensor_i64("four", &[], &[4]))
        .initializer(test_support::synth::tensor_i64("axes", &[1], &[2]))
        .node("shape", "Shape", &["x"], &["shape"], vec![])
        .node(
            "c",
            "Gather",
            &["shape", "one"],
            &["c"],
            vec![attr_int("axis", 0)],
        );
    let mut m = g.build();
    let graph = m.graph_mut();
    graph.node.push(pb::NodeProto {
        name: "is4".into(),
        op_type: "Equal".into(),
        input: vec!["c".into(), "four".into()],
        output: vec!["is4".into()],
        ..Default::default()
    });
    graph.node.push(if_node(
        "first",
        "is4",
        "a",
        branch("Identity", &["x"], "a_then"),
        branch("Unsqueeze", &["x", "axes"], "a_else"),
    ));
    for (op, inputs, out) in [
        ("Shape", vec!["a"], "a_shape"),
        ("Size", vec!["a_shape"], "a_rank"),
        ("Equal", vec!["a_rank", "two"], "is_rank2"),
    ] {
        graph.node.push(pb::NodeProto {
            name: out.into(),
            op_type: op.into(),
            input: inputs.into_iter().map(String::from).collect(),
            output: vec![out.into()],
            ..Default::default()
        });
    }
    graph.node.push(if_node(
        "second",
        "is_rank2",
        "b",
        branch("Relu", &["x"], "b_then"),
        branch("Neg", &["x"], "b_else"),
    ));
    m
}

#[test]
fn conditions_are_computed_from_their_part_of_the_graph_on_tract_alone() {
    // The whole model cannot run on tract (the first If's branches differ in rank); folding
    // must not need onnxruntime for that: each round runs only what its conditions read.
    calib::infer::set_engine_choice(calib::infer::EngineChoice::Tract);
    let (folded, notes) = fold_shape_ifs(&nested_model(), &[profile(4)])
        .unwrap()
        .expect("folded");
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("'first'") && notes[0].contains("then_branch"),
        "{notes:?}"
    );
    assert!(
        notes[1].contains("'second'") && notes[1].contains("then_branch"),
        "{notes:?}"
    );
    let ops: Vec<&str> = folded
        .graph()
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    assert!(ops.contains(&"Relu") && !ops.contains(&"If"), "{ops:?}");
    // C = 3: the first If unsqueezes, so the second takes its else branch.
    let (other, notes) = fold_shape_ifs(&nested_model(), &[profile(3)])
        .unwrap()
        .unwrap();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(other.graph().node.iter().any(|n| n.op_type == "Neg"));
}

/// An `If` whose condition is an initializer is decided by the model itself: folded to its
/// branch whatever the profiles, never refused.
#[test]
fn an_if_on_an_initializer_is_folded() {
    let mut g = GraphBuilder::new("const_if");
    g.input("x", DType::F32, test_support::dims!["N", 4])
        .output("y", DType::F32, test_support::dims!["N", 4])
        .initializer(pb::TensorProto {
            name: "yes".into(),
            data_type: 9, // bool
            int32_data: vec![1],
            ..Default::default()
        });
    let mut m = g.build();
    m.graph_mut().node.push(if_node(
        "decided",
        "yes",
        "y",
        branch("Relu", &["x"], "decided_then"),
        branch("Neg", &["x"], "decided_else"),
    ));
    let profile = Profile::new().input("x", ShapeRange::new([1, 4], [2, 4], [4, 4]));
    let (folded, notes) = fold_shape_ifs(&m, &[profile]).unwrap().expect("folded");
    assert!(
        notes[0].contains("'decided'") && notes[0].contains("then_branch"),
        "{notes:?}"
    );
    let ops: Vec<&str> = folded
        .graph()
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    assert!(ops.contains(&"Relu") && !ops.contains(&"If"), "{ops:?}");
}
