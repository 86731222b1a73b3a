//! Structural checks of an ONNX graph before any inference engine sees it.
//!
//! tract (like most engines) assumes a well-formed graph and panics or allocates without bound
//! on a decodable but invalid one: a graph output no node produces, `Slice` with a zero step,
//! `Conv` with a zero stride or a pad of 2³¹, an initializer whose bytes do not match its
//! dims, a cycle. [`check`] finds those first and names the node, attribute or initializer.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

use crate::error::{Error, Result};
use crate::model::{DType, Model};

/// Largest extent a pad, stride, dilation or kernel attribute may have.
pub const MAX_SPATIAL_ATTRIBUTE: i64 = 1 << 16;

/// Largest constant trip count a `Loop` may declare (a count of 2⁴⁰ would run for ever).
pub const MAX_LOOP_TRIPS: i64 = 1 << 24;

/// Checks the main graph (and recursively subgraphs' attributes).
///
/// # Errors
///
/// [`Error::Model`] naming the model and the node, attribute or initializer at fault.
pub fn check(model: &Model) -> Result<()> {
    let name = model.name();
    let g = model.graph();
    let fail = |m: String| Err(Error::model(name, m));
    for t in &g.initializer {
        if let Some(why) = initializer_problem(t) {
            return fail(format!("initializer '{}' {why}", t.name));
        }
    }
    let mut available: HashSet<&str> = g
        .input
        .iter()
        .map(|v| v.name.as_str())
        .chain(g.initializer.iter().map(|t| t.name.as_str()))
        .collect();
    available.insert("");
    let producers: HashMap<&str, usize> = g
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    for o in &g.output {
        if !available.contains(o.name.as_str()) && !producers.contains_key(o.name.as_str()) {
            return fail(format!(
                "graph output '{}' is produced by no node, input or initializer",
                o.name
            ));
        }
    }
    for (i, n) in g.node.iter().enumerate() {
        if let Some(trips) = constant_trip_count(n, g)
            && !(0..=MAX_LOOP_TRIPS).contains(&trips)
        {
            return fail(format!(
                "node {} (Loop) declares a trip count of {trips}; at most {MAX_LOOP_TRIPS} iterations are run on the CPU",
                label(n, i)
            ));
        }
        if let Some(why) = attribute_problem(n, g) {
            return fail(format!("node {} ({}): {why}", label(n, i), n.op_type));
        }
        for input in &n.input {
            if !available.contains(input.as_str()) && !producers.contains_key(input.as_str()) {
                return fail(format!(
                    "node {} ({}) reads '{input}', which no node, input or initializer produces",
                    label(n, i),
                    n.op_type
                ));
            }
        }
    }
    if let Some(cycle) = cycle(g, &producers, &available) {
        let names: Vec<String> = cycle.iter().map(|&i| label(&g.node[i], i)).collect();
        return fail(format!(
            "the graph has a cycle through nodes {}",
            names.join(" -> ")
        ));
    }
    Ok(())
}

fn label(n: &pb::NodeProto, i: usize) -> String {
    if n.name.is_empty() {
        format!("#{i}")
    } else {
        format!("'{}'", n.name)
    }
}

fn initializer_problem(t: &pb::TensorProto) -> Option<String> {
    if t.dims.iter().any(|&d| d < 0) {
        return Some(format!("has a negative dimension in {:?}", t.dims));
    }
    let elements = t
        .dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
    let Some(elements) = elements else {
        return Some(format!("has dims {:?} whose product overflows", t.dims));
    };
    let size = match DType::from_onnx(t.data_type) {
        Some(DType::Bool | DType::I8 | DType::U8) => 1,
        Some(DType::F16 | DType::Bf16 | DType::I16 | DType::U16) => 2,
        Some(DType::F32 | DType::I32 | DType::U32) => 4,
        Some(DType::F64 | DType::I64 | DType::U64) => 8,
        None => return None,
    };
    let have = if !t.raw_data.is_empty() {
        Some(t.raw_data.len() as u64)
    } else {
        // Typed fields: float_data, int32_data (also f16/bool/int8…), int64_data, double_data.
        [
            (t.float_data.len(), 4),
            (t.int32_data.len(), size),
            (t.int64_data.len(), 8),
            (t.double_data.len(), 8),
            (t.uint64_data.len(), 8),
        ]
        .into_iter()
        .find(|&(n, _)| n > 0)
        .map(|(n, s)| n as u64 * s)
    };
    let need = elements.checked_mul(size)?;
    match have {
        Some(have) if have != need => Some(format!(
            "has dims {:?} ({need} bytes of {}) but holds {have} bytes",
            t.dims,
            DType::from_onnx(t.data_type).map_or("?", DType::name)
        )),
        _ => None,
    }
}

/// The trip count `M` of a `Loop` when it is an int64 initializer.
fn constant_trip_count(n: &pb::NodeProto, g: &pb::GraphProto) -> Option<i64> {
    if n.op_type != "Loop" {
        return None;
    }
    let m = n.input.first().filter(|m| !m.is_empty())?;
    let t = g.initializer.iter().find(|t| &t.name == m)?;
    if t.data_type != DType::I64.to_onnx() {
        return None;
    }
    t.int64_data.first().copied().or_else(|| {
        t.raw_data
            .get(..8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
    })
}

fn attribute_problem(n: &pb::NodeProto, g: &pb::GraphProto) -> Option<String> {
    let ints = |name: &str| {
        n.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.ints.clone())
    };
    match n.op_type.as_str() {
        "Conv" | "ConvTranspose" | "MaxPool" | "AveragePool" | "LpPool" | "ConvInteger" => {
            for (attr, min) in [
                ("strides", 1),
                ("dilations", 1),
                ("kernel_shape", 1),
                ("pads", 0),
                ("output_padding", 0),
            ] {
                if let Some(v) = ints(attr)
                    && let Some(bad) = v.iter().find(|&&x| x < min || x > MAX_SPATIAL_ATTRIBUTE)
                {
                    return Some(format!(
                        "attribute {attr} = {v:?} has {bad}, outside {min}..={MAX_SPATIAL_ATTRIBUTE}"
                    ));
                }
            }
            None
        }
        "Slice" => {
            // opset >= 10: steps is the fifth input; when it is an initializer, no zero step.
            let steps = n.input.get(4)?;
            let t = g.initializer.iter().find(|t| &t.name == steps)?;
            let values: Vec<i64> = if !t.raw_data.is_empty() {
                t.raw_data
                    .chunks_exact(if t.data_type == 6 { 4 } else { 8 })
                    .map(|c| {
                        if c.len() == 4 {
                            i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64
                        } else {
                            i64::from_le_bytes(c.try_into().expect("8 bytes"))
                        }
                    })
                    .collect()
            } else {
                t.int64_data
                    .iter()
                    .copied()
                    .chain(t.int32_data.iter().map(|&v| v as i64))
                    .collect()
            };
            values
                .contains(&0)
                .then(|| format!("steps {values:?} contain 0"))
        }
        _ => None,
    }
}

/// Nodes on a cycle (by index), if the graph has one.
fn cycle(
    g: &pb::GraphProto,
    producers: &HashMap<&str, usize>,
    available: &HashSet<&str>,
) -> Option<Vec<usize>> {
    // 0 = unvisited, 1 = on the stack, 2 = done. Iterative DFS over "input produced by".
    let mut state = vec![0u8; g.node.len()];
    for start in 0..g.node.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let inputs = &g.node[node].input;
            if *next < inputs.len() {
                let input = inputs[*next].as_str();
                *next += 1;
                if available.contains(input) {
                    continue;
                }
                if let Some(&p) = producers.get(input) {
                    match state[p] {
                        0 => {
                            state[p] = 1;
                            stack.push((p, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|&(n, _)| n == p).unwrap_or(0);
                            let mut c: Vec<usize> = stack[from..].iter().map(|&(n, _)| n).collect();
                            c.reverse();
                            return Some(c);
                        }
                        _ => {}
                    }
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_with_a_huge_constant_trip_count_is_refused() {
        let loop_of = |trips: i64| pb::GraphProto {
            name: "loop".into(),
            node: vec![pb::NodeProto {
                name: "forever".into(),
                op_type: "Loop".into(),
                input: vec!["m".into(), String::new()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            initializer: vec![pb::TensorProto {
                name: "m".into(),
                data_type: DType::I64.to_onnx(),
                raw_data: trips.to_le_bytes().to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let model = |g| {
            Model::from_proto(
                pb::ModelProto {
                    graph: Some(g),
                    ..Default::default()
                },
                "loop",
            )
            .unwrap()
        };
        let e = check(&model(loop_of(1 << 40))).unwrap_err().to_string();
        assert!(
            e.contains("'forever'") && e.contains("1099511627776"),
            "{e}"
        );
        assert!(check(&model(loop_of(-1))).is_err());
        assert!(check(&model(loop_of(10))).is_ok());
    }
}
