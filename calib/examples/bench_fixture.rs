//! Writes the benchmark fixture: `model.onnx` (`test_support::synth::conv_stack`), `data/` with the
//! calibration samples and `held/` with held-out samples, each `<sample>/x.npy`.
//!
//! Usage: `bench_fixture DIR [CHANNELS DEPTH SIZE SAMPLES]` (defaults 64 6 96 32).

use std::path::PathBuf;

use calib::{HostTensor, Sample};
use test_support::synth::{Rng, conv_stack};

fn main() -> Result<(), calib::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().map_or("bench-fixture", String::as_str));
    let num = |i: usize, d: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (channels, depth, size, samples) = (num(1, 64), num(2, 6), num(3, 96), num(4, 32));
    conv_stack(11, channels as i64, depth)
        .save(dir.join("model.onnx"), calib::WeightStorage::Inline)?;
    let mut rng = Rng::new(5);
    for (folder, count) in [("data", samples), ("held", 4)] {
        for i in 0..count {
            let x: Vec<f32> = (0..3 * size * size).map(|_| rng.normal()).collect();
            Sample::new(format!("{folder}-{i}"))
                .with("x", HostTensor::f32(vec![1, 3, size, size], x))
                .save_npy_dir(&dir.join(folder).join(format!("s{i:04}")))?;
        }
    }
    println!(
        "wrote {} (channels {channels}, depth {depth}, size {size}, {samples} samples)",
        dir.display()
    );
    Ok(())
}
