//! `trt-calib`: INT8 calibration and Q/DQ insertion from the command line.
//!
//! ```text
//! trt-calib inspect model.onnx
//! trt-calib quantize --model model.onnx --data samples/ --method entropy \
//!     --profile x:1x3x64x64:4x3x128x128:8x3x256x256 --exclude head --out model.int8.onnx \
//!     --report report.json
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use calib::{Calibrator, Method, Model, Profile, Source, WeightStorage, report};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// INT8 calibration on the CPU and Q/DQ insertion for TensorRT.
#[derive(Debug, Parser)]
#[command(name = "trt-calib", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List a model's inputs and outputs (element types, dims; symbolic dims stay symbolic).
    Inspect {
        /// The ONNX model.
        model: PathBuf,
    },
    /// Calibrate, write the Q/DQ model and an accuracy report.
    Quantize(Box<Quantize>),
}

#[derive(Debug, clap::Args)]
struct Quantize {
    /// The FP32 ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// Calibration data: a directory of per-sample directories of `<input>.npy`, a directory of
    /// `.npz` files, or one `.npz`.
    #[arg(long)]
    data: PathBuf,
    /// Observer: minmax, entropy, mse, percentile or percentile:P.
    #[arg(long, default_value = "entropy")]
    method: String,
    /// Keep a node (by name) or an operator type in float; repeatable.
    #[arg(long = "exclude", value_name = "NAME|OPTYPE")]
    exclude: Vec<String>,
    /// Profile range of a dynamic input as NAME:MIN:OPT:MAX (shapes like 1x3x224x224);
    /// repeat for every dynamic input. Samples must fit the profile.
    #[arg(long = "profile", value_name = "NAME:MIN:OPT:MAX")]
    profile: Vec<String>,
    /// Where to write the Q/DQ model.
    #[arg(long)]
    out: PathBuf,
    /// Where to write the accuracy report (JSON); a table is printed either way.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Held-out samples for the report (default: every 5th sample of --data).
    #[arg(long)]
    report_data: Option<PathBuf>,
    /// Hold out every N-th sample of --data for the report (0: no report unless --report-data).
    #[arg(long, default_value_t = 5)]
    hold_out_every: usize,
    /// Reuse (or write) the calibration here when model, data and options are unchanged.
    #[arg(long)]
    calibration_cache: Option<PathBuf>,
    /// Histogram bins.
    #[arg(long, default_value_t = calib::observer::DEFAULT_BINS)]
    bins: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Also convert the remaining float graph to FP16 (inputs/outputs keep their types); the
    /// report then measures the FP16 + INT8 model.
    #[arg(long)]
    fp16: bool,
    /// Write initializers of at least this many bytes to `<out>.data` (external data).
    #[arg(long)]
    external_data_threshold: Option<usize>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { model } => inspect(model),
        Command::Quantize(q) => quantize(*q),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn inspect(path: PathBuf) -> Result<(), calib::Error> {
    let model = Model::load(&path)?;
    println!("{} (opset {})", path.display(), model.opset());
    println!("inputs:");
    for t in model.inputs()? {
        println!("  {t}");
    }
    println!("outputs:");
    for t in model.outputs()? {
        println!("  {t}");
    }
    Ok(())
}

fn quantize(q: Quantize) -> Result<(), calib::Error> {
    let model = Model::load(&q.model)?;
    let method = Method::parse(&q.method)?;
    let mut profile = Profile::new();
    for spec in &q.profile {
        profile = profile.parse_input(spec)?;
    }
    let profiles = if profile.inputs.is_empty() {
        Vec::new()
    } else {
        vec![profile]
    };
    let source = Source::Path(q.data.clone());
    let (calibration_source, held_out) = match (&q.report_data, q.hold_out_every) {
        (Some(r), _) => (source, Source::Path(r.clone())),
        (None, 0) => (source, Source::Memory(Vec::new())),
        (None, n) => source.split(n)?,
    };

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} samples ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let bar = Mutex::new(bar);
    let mut calibrator = Calibrator::new(&model)
        .method(method)
        .bins(q.bins)
        .profiles(profiles)
        .on_progress(move |p| {
            let bar = bar.lock().unwrap_or_else(|e| e.into_inner());
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(format!("pass {}/{}", p.pass, p.passes));
            if p.pass == p.passes && p.done == p.total {
                bar.finish();
            }
        });
    for e in &q.exclude {
        calibrator = calibrator.exclude(e);
    }
    if let Some(t) = q.threads {
        calibrator = calibrator.threads(t);
    }
    let calibration = match &q.calibration_cache {
        Some(cache) => {
            let (c, reused) = calibrator.run_cached(&calibration_source, cache)?;
            if reused {
                eprintln!("calibration unchanged: reused {}", cache.display());
            }
            c
        }
        None => calibrator.run(&calibration_source)?,
    };
    for w in &calibration.warnings {
        eprintln!("warning: {w}");
    }
    let mut qdq = calibration.apply(&model)?;
    if q.fp16 {
        qdq = calib::fp16::convert(&qdq);
    }
    let storage = q
        .external_data_threshold
        .map_or(WeightStorage::Auto, |threshold| WeightStorage::External {
            threshold,
        });
    // What TensorRT parses: no placeholder dim names (`?`) that it would read as one symbol.
    qdq.clear_placeholder_dims();
    qdq.save(&q.out, storage)?;
    println!(
        "wrote {} ({} activations, {} weights quantized, {} calibration samples, {})",
        q.out.display(),
        calibration.placement.activations.len(),
        calibration.placement.weights.len(),
        calibration.samples,
        calibration.method.name()
    );
    for (node, why) in &calibration.placement.skipped {
        println!("kept in float: {node} ({why})");
    }
    if held_out.list().map(|l| l.is_empty()).unwrap_or(true) {
        println!("no held-out sample: no accuracy report");
        return Ok(());
    }
    let report = report::compare(&model, &qdq, &held_out)?;
    println!("{}", report.table());
    if let Some(path) = &q.report {
        let json = serde_json::to_vec_pretty(&report).expect("report serializes");
        std::fs::write(path, json).map_err(|e| calib::Error::Io {
            path: path.clone(),
            source: e,
        })?;
    }
    Ok(())
}
