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

use calib::{Job, Method, Model, Profile, Source, WeightStorage};
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
    /// Observer: auto (the method with the best held-out accuracy, from one pass of
    /// statistics), minmax, entropy, mse, percentile or percentile:P.
    #[arg(long, default_value = "auto")]
    method: String,
    /// Accuracy target: every output's cosine similarity to FP32 on the held-out samples at
    /// least this; the most sensitive nodes are kept in float until it is met.
    #[arg(long, conflicts_with = "min_snr_db")]
    min_cosine: Option<f64>,
    /// Accuracy target as every output's SNR in dB.
    #[arg(long)]
    min_snr_db: Option<f64>,
    /// What Auto ranks candidate methods by on the held-out samples: snr (mean SNR over
    /// outputs, the default without a target), cosine (worst output), or a task metric
    /// `top1|ctc|iou|decision[:OUTPUT[:THRESHOLD]]` (with a target, its metric by default).
    #[arg(long, value_name = "METRIC")]
    auto_metric: Option<String>,
    /// Largest share of the quantized nodes the target may keep in float (0..=1).
    #[arg(long, default_value_t = 0.25)]
    max_float_share: f64,
    /// Keep the closest result when the target cannot be met (exit 0, the table shows the
    /// miss); without it an unmet target is an error and nothing is written.
    #[arg(long)]
    best_effort: bool,
    /// Keep a node (by name) or an operator type in float; repeatable.
    #[arg(long = "exclude", value_name = "NAME|OPTYPE")]
    exclude: Vec<String>,
    /// Profile range of a dynamic input as NAME:MIN:OPT:MAX (shapes like 1x3x224x224);
    /// repeat for every dynamic input. Samples must fit the profile.
    #[arg(long = "profile", value_name = "NAME:MIN:OPT:MAX")]
    profile: Vec<String>,
    /// Bind an input to a constant (e.g. `sr=16000`): it leaves the model's inputs, and `If`
    /// nodes that test it are replaced by the branch taken; repeatable.
    #[arg(long = "constant", value_name = "NAME=VALUE")]
    constant: Vec<String>,
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
    /// CPU engine: auto (tract, else onnxruntime where tract cannot run the model), tract or
    /// onnxruntime (default: `TRT_CALIB_ENGINE`, else auto).
    #[arg(long, value_parser = ["auto", "tract", "onnxruntime"])]
    engine: Option<String>,
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
    // Panics inside the inference engine become errors naming the node; keep their raw
    // message out of the terminal.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !calib::infer::inside_engine() {
            default_hook(info);
        }
    }));
    // A batch process: large buffers go back to the system as soon as they are freed.
    calib::infer::unmap_large_buffers_on_free();
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

/// Files a run reads: the model, its external data and every data file.
fn inputs_of(q: &Quantize, model: &Model) -> Vec<PathBuf> {
    let mut files = vec![q.model.clone()];
    files.extend(model.external_files().iter().cloned());
    for dir in std::iter::once(&q.data).chain(q.report_data.as_ref()) {
        // Links are not followed into directories (a link to `/` must not walk the whole
        // file system); a link to a file is an input like the file.
        files.extend(
            walkdir::WalkDir::new(dir)
                .follow_links(false)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file() || (e.path_is_symlink() && e.path().is_file()))
                .map(|e| e.into_path()),
        );
    }
    files
}

/// The identity of a path for aliasing checks: (device, inode) when it exists, else the
/// canonical parent joined with the file name.
fn identity(path: &std::path::Path) -> Option<(Option<(u64, u64)>, PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok();
    let canonical = match path.canonicalize() {
        Ok(c) => c,
        Err(_) => {
            let parent = calib::model::folder_of(path);
            parent.canonicalize().ok()?.join(path.file_name()?)
        }
    };
    Some((meta.map(|m| (m.dev(), m.ino())), canonical))
}

/// Refuses outputs that are (or would overwrite) an input, or each other.
fn check_outputs(q: &Quantize, model: &Model) -> Result<(), calib::Error> {
    let mut outputs: Vec<(&str, PathBuf)> = vec![("--out", q.out.clone())];
    let mut data = q.out.clone().into_os_string();
    data.push(".data");
    outputs.push(("--out's external data", PathBuf::from(data)));
    if let Some(r) = &q.report {
        outputs.push(("--report", r.clone()));
    }
    if let Some(c) = &q.calibration_cache {
        outputs.push(("--calibration-cache", c.clone()));
    }
    let inputs: Vec<(PathBuf, _)> = inputs_of(q, model)
        .into_iter()
        .filter_map(|p| identity(&p).map(|id| (p, id)))
        .collect();
    let refuse = |flag: &str, out: &PathBuf, what: String| {
        Err(calib::Error::Options {
            message: format!(
                "{flag} {} is {what}; refusing to overwrite an input (nothing was written)",
                out.display()
            ),
        })
    };
    for (i, (flag, out)) in outputs.iter().enumerate() {
        // A link, a device or a FIFO is never replaced by the output.
        calib::model::replaceable(out).map_err(|e| calib::Error::Options {
            message: format!("{flag}: {e}"),
        })?;
        let Some((inode, canonical)) = identity(out) else {
            continue;
        };
        if out.is_dir() {
            return refuse(flag, out, "a directory".into());
        }
        for (path, (other_inode, other)) in &inputs {
            if *other == canonical || (inode.is_some() && inode == *other_inode) {
                return refuse(flag, out, format!("the input {}", path.display()));
            }
        }
        for (other_flag, other) in &outputs[..i] {
            if identity(other).is_some_and(|(_, c)| c == canonical) {
                return refuse(flag, out, format!("also {other_flag}"));
            }
        }
    }
    Ok(())
}

fn quantize(q: Quantize) -> Result<(), calib::Error> {
    let model = Model::load(&q.model)?;
    check_outputs(&q, &model)?;
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
    let mut bound = Vec::new();
    for spec in &q.constant {
        bound.push(calib::fold::parse_constant(&model, spec)?);
    }
    let model = if bound.is_empty() {
        model
    } else {
        calib::fold::bind_inputs(&model, &bound)?
    };
    let target = match (q.min_cosine, q.min_snr_db) {
        (Some(c), _) => Some(calib::tune::Target::MinCosine(c)),
        (None, Some(s)) => Some(calib::tune::Target::MinSnrDb(s)),
        (None, None) => None,
    };
    if let Some(e) = &q.engine {
        calib::infer::set_engine_choice(e.parse()?);
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} samples ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let bar = Mutex::new(bar);
    let mut job = Job::new(&model, Source::Path(q.data.clone()))
        .method(method)
        .bins(q.bins)
        .profiles(profiles)
        .target(target)
        .criterion(
            q.auto_metric
                .as_deref()
                .map(calib::tune::Criterion::parse)
                .transpose()?,
        )
        .max_float_share(q.max_float_share)
        .best_effort(q.best_effort)
        .fp16(q.fp16)
        .hold_out_every(q.hold_out_every)
        .on_progress(move |p| {
            let bar = bar.lock().unwrap_or_else(|e| e.into_inner());
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            if p.done == p.total {
                bar.finish();
            }
        })
        .on_tuning_step(|step| log::info!("{step}"));
    if let Some(r) = &q.report_data {
        job = job.held_out(Source::Path(r.clone()));
    }
    for e in &q.exclude {
        job = job.exclude(e);
    }
    if let Some(t) = q.threads {
        job = job.threads(t);
    }
    if let Some(cache) = &q.calibration_cache {
        job = job.calibration_cache(cache);
    }
    // The job's inputs stay shared with `model` until it ends; then the float weights go.
    drop(model);
    let quantized = job.run()?;
    for n in &quantized.notes {
        eprintln!("note: {n}");
    }
    if quantized.reused
        && let Some(cache) = &q.calibration_cache
    {
        eprintln!("calibration unchanged: reused {}", cache.display());
    }
    let calibration = &quantized.calibration;
    for w in &calibration.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(tuning) = &quantized.tuning {
        println!("{}", tuning.table());
    }
    // Everything checked: now the outputs, each written atomically.
    let storage = q
        .external_data_threshold
        .map_or(WeightStorage::Auto, |threshold| WeightStorage::External {
            threshold,
        });
    quantized.model.save(&q.out, storage)?;
    println!(
        "wrote {} ({} activations, {} weights quantized, {} calibration samples, {})",
        q.out.display(),
        calibration.placement.activations.len(),
        calibration.placement.weights.len(),
        calibration.samples,
        quantized.method_name()
    );
    for (node, why) in &calibration.placement.skipped {
        println!("kept in float: {node} ({why})");
    }
    let Some(report) = &quantized.report else {
        println!("no held-out sample: no accuracy report");
        return Ok(());
    };
    println!("{}", report.table());
    if let Some(path) = &q.report {
        let json = serde_json::to_vec_pretty(&report).expect("report serializes");
        calib::model::write_atomic(path, &json)?;
    }
    Ok(())
}
