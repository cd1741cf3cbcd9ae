//! `googlenet`: classify images, dump logits, inspect the architecture, convert weights and
//! benchmark, from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use clap::{Args, Parser, Subcommand};

use googlenet::dataset::ImageFolder;
use googlenet::files::{self, Output};
use googlenet::labels::{self, Prediction};
use googlenet::model::summary::Summary;
use googlenet::readback::image_input as input_tensor;
use googlenet::text::{self, count, escape, thousands};
use googlenet::train::{self, FinetuneConfig, OptimizerKind, Trainable, Trainer};
use googlenet::weights::{self, LoadOptions, LoadReport, SaveInfo, StoreDtype};
use googlenet::{GoogLeNet, GoogLeNetConfig, Variant, npy, paths, preprocess};
use googlenet::{explain, inference};

#[derive(Parser)]
#[command(
    name = "googlenet",
    version,
    about = "GoogLeNet (Inception v1) on burn: classify, inspect, convert, benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Where the network runs: burn-flex on the CPU, or burn's wgpu backend on the GPU
    /// (Vulkan, Metal or DX12; needs a build with `--features wgpu`).
    #[arg(long, global = true, value_enum, default_value = "cpu")]
    backend: Backend,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Cpu,
    Wgpu,
}

impl Backend {
    /// The device this backend runs on. A command makes it once (a GPU is initialised once
    /// per process) and hands it down.
    fn device(self) -> Result<Device> {
        match self {
            Backend::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Device::wgpu_options()
                .init()
                .map_err(|e| anyhow::anyhow!("no usable GPU for --backend wgpu: {e:?}")),
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => bail!(
                "this build has no GPU backend: build with `cargo build --release --features wgpu` for --backend wgpu"
            ),
        }
    }

    /// What ran: the CPU backend, or the wgpu backend with the adapter it found on `device`, as
    /// the adapter names itself (a measurement is only as good as knowing which one ran).
    fn describe(self, device: &Device) -> String {
        match self {
            Backend::Cpu => "burn-flex 0.22.1 (CPU)".into(),
            Backend::Wgpu => match adapter_name(device) {
                Some(name) => format!("burn-wgpu 0.22.1 on {name}"),
                None => "burn-wgpu 0.22.1 (adapter unknown)".into(),
            },
        }
    }
}

#[cfg(feature = "wgpu")]
fn adapter_name(device: &Device) -> Option<String> {
    let id = device.identity()?;
    // cubecl reports no card for an adapter whose type is CPU (lavapipe, llvmpipe, WARP).
    Some(if id.physical.is_some() {
        id.name
    } else {
        format!("{} (a CPU adapter, not a GPU)", id.name)
    })
}

#[cfg(not(feature = "wgpu"))]
fn adapter_name(_device: &Device) -> Option<String> {
    None
}

#[derive(Subcommand)]
enum Command {
    /// Classify images and print the top-K classes with probabilities.
    Classify(ClassifyArgs),
    /// Where in the image the evidence for a class lies (Grad-CAM on an Inception block).
    Explain(ExplainArgs),
    /// Raw logits for an NCHW float32 .npy tensor (no preprocessing).
    Logits(LogitsArgs),
    /// Every layer's output shape, parameters and multiply-adds at 224×224, and what the 1x1
    /// reductions save in each Inception block.
    Inspect(InspectArgs),
    /// Convert a .pth or safetensors file to the project's safetensors.
    Convert(ConvertArgs),
    /// Latency after warm-up (batch 1 unless `--batch`: then also the time per image).
    Bench(BenchArgs),
    /// Fine-tune on a folder of images (one sub-folder per class) with the auxiliary losses.
    Finetune(FinetuneArgs),
    /// Download torchvision's ImageNet GoogLeNet weights (googlenet-1378be20.pth, BSD-3) and
    /// convert them to weights/googlenet_torchvision.safetensors. Needs `curl` and internet.
    FetchWeights(FetchWeightsArgs),
}

/// The model a command runs (`classify`, `explain`, `finetune`): a weights file, or the
/// default one, and the variant it holds. (`--backend` is global; the labels are each
/// command's own: `finetune` takes them from its folders.)
#[derive(Args)]
struct ModelArgs {
    /// Weights file (.safetensors or .pth). Default: ../shared/weights/bvlc_googlenet.safetensors,
    /// else what `googlenet fetch-weights` downloaded.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Network variant; default: what the weights file implies (bvlc for Caffe names).
    #[arg(long, value_parser = parse_variant)]
    variant: Option<Variant>,
}

impl ModelArgs {
    /// The weights file: the one given, else [`paths::default_weights`].
    fn weights(&self) -> Result<PathBuf> {
        self.weights.clone().or_else(paths::default_weights).ok_or_else(|| {
            anyhow::anyhow!(
                "no weights given and none found: pass --weights FILE, put the shared data at ../shared \
                 (or set GOOGLENET_SHARED), or run `googlenet fetch-weights`"
            )
        })
    }

    /// The model in `path` (what [`ModelArgs::weights`] chose), as `--variant` asks.
    fn load(&self, path: &Path, device: &Device) -> Result<(GoogLeNet, LoadReport)> {
        let opts = LoadOptions {
            variant: self.variant,
            ..LoadOptions::default()
        };
        load(path, &opts, device)
    }
}

#[derive(Args)]
struct ClassifyArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Class names, one per line (synset_words.txt format accepted). Default: names stored in
    /// the weights file, else ../shared/data/synset_words.txt.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Print JSON: an array [{"image", "top": [{"index", "label", "prob"}]}], one element a
    /// line (from the second on, led by its comma), each printed as soon as its image is
    /// classified. An image that fails is named on stderr (not in the array), the others
    /// are still classified, and the exit status is 1.
    #[arg(long)]
    json: bool,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

#[derive(Args)]
struct ExplainArgs {
    image: PathBuf,
    /// The class: its index (0…999 for ImageNet), or its name (`"Egyptian cat"`).
    #[arg(long)]
    class: String,
    /// The Inception block whose output is weighed by the class's gradient.
    #[arg(long, default_value = "inception_4e")]
    layer: String,
    /// Whose score: main, or aux1 / aux2 (for fine-tuned weights with trained aux heads).
    #[arg(long, default_value = "main")]
    head: String,
    #[command(flatten)]
    model: ModelArgs,
    /// Class names (synset_words.txt format); default: from the weights file or the shared data.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Print {"image", "class", "label", "layer", "grid"} as JSON.
    #[arg(long)]
    json: bool,
    /// Write the heat over the 224×224 crop as a PNG.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct LogitsArgs {
    #[arg(long)]
    weights: PathBuf,
    #[arg(long, value_parser = parse_variant)]
    variant: Option<Variant>,
    #[arg(long)]
    input: PathBuf,
    /// Training forward (BatchNorm batch statistics, aux heads) with dropout disabled; writes
    /// main, aux2, aux1 as OUT, OUT.aux2.npy, OUT.aux1.npy.
    #[arg(long)]
    train: bool,
    /// Set torchvision's transform_input (default: from the file's metadata, else false).
    #[arg(long)]
    transform_input: Option<bool>,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct InspectArgs {
    #[arg(long, value_parser = parse_variant, default_value = "bvlc")]
    variant: Variant,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ConvertArgs {
    #[arg(long)]
    from: PathBuf,
    #[arg(long, value_parser = parse_variant)]
    variant: Option<Variant>,
    #[arg(long)]
    transform_input: Option<bool>,
    #[arg(long)]
    to: PathBuf,
    /// How the file stores its values: f32, or f16 (half the size; computed in f32 after
    /// loading).
    #[arg(long, value_parser = parse_dtype, default_value = "f32")]
    dtype: StoreDtype,
}

#[derive(Args)]
struct BenchArgs {
    #[arg(long, value_parser = parse_variant, default_value = "bvlc")]
    variant: Variant,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value_t = 20)]
    iters: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long)]
    json: bool,
    /// Also time each stage (stem layers, each Inception block, head): where the time goes.
    #[arg(long)]
    layers: bool,
    /// Images per forward (the heads-only fine-tune runs the frozen layers on batches).
    #[arg(long, default_value_t = 1)]
    batch: usize,
}

#[derive(Args)]
struct FinetuneArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A folder with one sub-folder of images per class (the folder names are the labels).
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 30)]
    steps: usize,
    #[arg(long, default_value_t = FinetuneConfig::default().batch)]
    batch: usize,
    /// Learning rate, in (0, 1] (default 1e-3 for Adam, 1e-2 for SGD).
    #[arg(long, value_parser = parse_lr)]
    lr: Option<f64>,
    /// Weight of each aux loss (the paper: 0.3).
    #[arg(long, default_value_t = train::AUX_LOSS_WEIGHT)]
    aux_weight: f32,
    /// Train without the aux losses.
    #[arg(long)]
    no_aux: bool,
    /// What trains: heads, blocks:N (the last N Inception blocks too) or all.
    #[arg(long = "train", default_value = "heads")]
    trainable: String,
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: Optimizer,
    /// Seed of the batches, augmentations, dropout and fresh heads: a whole number 0…2^64−1.
    #[arg(long, default_value_t = 0, value_parser = parse_seed, allow_negative_numbers = true)]
    seed: u64,
    /// No random crops and flips.
    #[arg(long)]
    no_augment: bool,
    #[arg(long)]
    out: PathBuf,
    /// Write one JSON line per step: {"step", "loss", "main", "aux1", "aux2", "acc"}.
    #[arg(long)]
    log: Option<PathBuf>,
}

impl FinetuneArgs {
    /// The fine-tune's settings: the flags over [`FinetuneConfig::for_optimizer`]'s defaults.
    fn config(&self) -> Result<FinetuneConfig> {
        let defaults = FinetuneConfig::for_optimizer(self.optimizer.into());
        Ok(FinetuneConfig {
            batch: self.batch,
            lr: self.lr.unwrap_or(defaults.lr),
            aux_weights: [self.aux_weight; 2],
            aux: !self.no_aux,
            trainable: Trainable::parse(&self.trainable)?,
            seed: self.seed,
            augment: !self.no_augment,
            ..defaults
        })
    }
}

#[derive(Args)]
struct FetchWeightsArgs {
    #[arg(
        long,
        default_value = "https://download.pytorch.org/models/googlenet-1378be20.pth"
    )]
    url: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Optimizer {
    Adam,
    Sgd,
}

impl From<Optimizer> for OptimizerKind {
    fn from(o: Optimizer) -> Self {
        match o {
            Optimizer::Adam => OptimizerKind::Adam,
            Optimizer::Sgd => OptimizerKind::Sgd,
        }
    }
}

fn parse_variant(s: &str) -> Result<Variant, String> {
    Variant::parse(s)
        .ok_or_else(|| format!("unknown variant `{s}`; expected bvlc, torchvision or seed"))
}

fn parse_lr(s: &str) -> Result<f64, String> {
    s.trim().parse::<f64>().map_err(|_| {
        format!(
            "learning rate `{}` is not a number; expected one in (0, 1], e.g. 0.001",
            escape(s)
        )
    })
}

fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim().parse::<u64>().map_err(|_| {
        format!(
            "seed `{}` is not a whole number in 0…{}",
            escape(s),
            u64::MAX
        )
    })
}

fn parse_dtype(s: &str) -> Result<StoreDtype, String> {
    StoreDtype::parse(s).ok_or_else(|| format!("unknown dtype `{s}`; expected f32 or f16"))
}

fn main() {
    // One line, never a backtrace: a panic here is a bug, reported as such.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        eprintln!(
            "error: internal error (please report): {}",
            msg.lines().next().unwrap_or("")
        );
    }));
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // Already reported (each failed image has its own line).
        if e.downcast_ref::<Reported>().is_none() {
            eprintln!("error: {}", one_line(&e));
        }
        std::process::exit(1);
    }
}

/// An error as one line of visible text: the chain joined by ": ", our own line breaks as
/// spaces, and every control character that came from a file (a label, a file name) escaped.
fn one_line(e: &anyhow::Error) -> String {
    escape(&format!("{e:#}").replace('\n', " "))
}

/// A failure already reported on stderr: the exit status says it, nothing more is printed.
#[derive(Debug)]
struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reported above")
    }
}

impl std::error::Error for Reported {}

fn run(cli: Cli) -> Result<()> {
    let backend = cli.backend;
    match cli.command {
        Command::Classify(args) => classify(&args, backend),
        Command::Explain(args) => explain(&args, backend),
        Command::Logits(args) => logits(&args, backend),
        Command::Inspect(args) => inspect(&args, backend),
        Command::Convert(args) => convert(&args, backend),
        Command::Bench(args) => bench(&args, backend),
        Command::Finetune(args) => finetune(&args, backend),
        Command::FetchWeights(args) => fetch_weights(&args, backend),
    }
}

fn load(path: &Path, opts: &LoadOptions, device: &Device) -> Result<(GoogLeNet, LoadReport)> {
    let map = weights::read_file(path)
        .with_context(|| format!("loading weights {}", text::path(path)))?;
    weights::load_model(&map, opts, device)
        .with_context(|| format!("loading weights {}", text::path(path)))
}

fn classify(args: &ClassifyArgs, backend: Backend) -> Result<()> {
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let device = backend.device()?;
    let path = args.model.weights()?;
    let (model, report) = args.model.load(&path, &device)?;
    let names = labels::class_names(
        args.labels.as_deref(),
        report.labels.as_deref(),
        report.num_classes,
    )?;
    let classifier = Classifier {
        model: model.valid(),
        device,
        variant: report.variant,
        top: args.top,
        names,
    };
    let images = &args.images;
    // Each result is printed (and flushed) as soon as it is known: an image that fails costs
    // only its own line, never the results before or after it.
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "[")?;
    }
    let mut printed = 0;
    let mut failed = Vec::new();
    for image in images {
        let top = match classifier.top(image) {
            Ok(top) => top,
            Err(e) => {
                eprintln!("error: {}", one_line(&e));
                failed.push(text::path(image));
                continue;
            }
        };
        if args.json {
            let v = serde_json::json!({"image": image.display().to_string(), "top": top});
            // Each element is a whole line as soon as it is printed (the comma leads the next
            // one), so a reader line by line gets every result at once.
            writeln!(out, "{}{v}", if printed > 0 { "," } else { "" })?;
        } else {
            writeln!(out, "{}", text::path(image))?;
            for Prediction { index, label, prob } in &top {
                writeln!(
                    out,
                    "  {:>6.2}%  {} (#{index})",
                    prob * 100.0,
                    escape(label)
                )?;
            }
        }
        out.flush()?;
        printed += 1;
    }
    if args.json {
        writeln!(out, "]")?;
        out.flush()?;
    }
    match failed.len() {
        0 => Ok(()),
        _ if images.len() == 1 => Err(Reported.into()),
        n => bail!(
            "{} of {} could not be classified: {}",
            n,
            count(images.len(), "image", "images"),
            failed.join(", ")
        ),
    }
}

/// What `classify` runs each image through.
struct Classifier {
    model: GoogLeNet,
    device: Device,
    /// How the images are preprocessed.
    variant: Variant,
    /// Classes per image.
    top: usize,
    names: Vec<String>,
}

impl Classifier {
    /// One image's top classes.
    fn top(&self, image: &Path) -> Result<Vec<Prediction>> {
        let bytes = files::read_image(image)?;
        let prepared =
            preprocess::prepare(&bytes, self.variant).with_context(|| text::path(image))?;
        let x = input_tensor(prepared.chw, &self.device);
        let pass = inference::classify(&self.model, x, false, false, self.top, &self.names);
        let (c, _) = futures_lite::future::block_on(pass).with_context(|| text::path(image))?;
        Ok(c.top)
    }
}

fn explain(args: &ExplainArgs, backend: Backend) -> Result<()> {
    let head = explain::Head::parse(&args.head).with_context(|| {
        format!(
            "--head `{}`: expected main, aux1 or aux2",
            escape(&args.head)
        )
    })?;
    let block = explain::block_index(&args.layer)?;
    let path = args.model.weights()?;
    let image = args.image.as_path();
    let out = args.out.as_deref();
    if let Some(out) = out {
        let mut inputs = vec![("the image", image), ("--weights", path.as_path())];
        if let Some(l) = &args.labels {
            inputs.push(("--labels", l.as_path()));
        }
        files::check_outputs(&[("--out", out)], &inputs)?;
    }
    let device = backend.device()?;
    let (model, report) = args.model.load(&path, &device)?;
    if head != explain::Head::Main && report.aux_fresh {
        bail!(
            "--head {head:?}: {} holds no trained aux heads (the BVLC release has none); fine-tune with the aux losses on first",
            text::path(&path)
        );
    }
    let model = model.valid();
    let names = labels::class_names(
        args.labels.as_deref(),
        report.labels.as_deref(),
        report.num_classes,
    )?;
    // By index or by name: first names before synonyms, an ambiguous name refused with the
    // classes it names.
    let class = labels::find_class(&args.class, &names, report.num_classes).context("--class")?;
    let bytes = files::read_image(image)?;
    let prepared =
        preprocess::prepare(&bytes, report.variant).with_context(|| text::path(image))?;
    let x = input_tensor(prepared.chw, &device);
    let e =
        futures_lite::future::block_on(explain::grad_cam(&model, x, class, block, head, &names))
            .with_context(|| text::path(image))?;
    if let Some(out) = out {
        write_overlay(&prepared.crop, &e.grid, out)?;
    }
    if args.json {
        let v = serde_json::json!({
            "image": image.display().to_string(), "class": e.class, "label": e.label, "layer": e.layer,
            "head": e.head, "score": e.score, "grid": e.grid,
        });
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print_explanation(image, &e, out);
    }
    Ok(())
}

/// The heat over the crop, in the format `out`'s name says (PNG when it says none), through a
/// temporary file.
fn write_overlay(crop: &image::RgbImage, grid: &[Vec<f32>], out: &Path) -> Result<()> {
    let format = image::ImageFormat::from_path(out).unwrap_or(image::ImageFormat::Png);
    let mut encoded = std::io::Cursor::new(Vec::new());
    explain::overlay(crop, grid)
        .write_to(&mut encoded, format)
        .with_context(|| format!("writing {}", text::path(out)))?;
    files::write(out, encoded.get_ref())?;
    Ok(())
}

fn print_explanation(image: &Path, e: &explain::Explanation, out: Option<&Path>) {
    let (h, w) = (e.grid.len(), e.grid[0].len());
    let (mut best, mut at) = (0f32, (0, 0));
    for (y, row) in e.grid.iter().enumerate() {
        for (x, &v) in row.iter().enumerate() {
            if v > best {
                (best, at) = (v, (y, x));
            }
        }
    }
    println!(
        "{}: {} (#{}), logit {:.2}, on {} ({h}×{w}), {:.0} ms",
        text::path(image),
        escape(&e.label),
        e.class,
        e.score,
        e.layer,
        e.ms
    );
    if best > 0.0 {
        let cell = preprocess::INPUT_SIZE as f32 / h as f32;
        println!(
            "  strongest evidence around pixel ({:.0}, {:.0}) of the 224×224 crop (x, y)",
            (at.1 as f32 + 0.5) * cell,
            (at.0 as f32 + 0.5) * cell
        );
    } else {
        println!("  no positive evidence for this class in {}", e.layer);
    }
    if let Some(out) = out {
        println!("  overlay written to {}", text::path(out));
    }
}

fn logits(args: &LogitsArgs, backend: Backend) -> Result<()> {
    let (weights, input, out) = (
        args.weights.as_path(),
        args.input.as_path(),
        args.out.as_path(),
    );
    let stem = out.with_extension("");
    let (aux2, aux1) = (
        PathBuf::from(format!("{}.aux2.npy", stem.display())),
        PathBuf::from(format!("{}.aux1.npy", stem.display())),
    );
    let mut outputs = vec![("--out", out)];
    if args.train {
        outputs.extend([
            ("--out (aux2)", aux2.as_path()),
            ("--out (aux1)", aux1.as_path()),
        ]);
    }
    files::check_outputs(&outputs, &[("--input", input), ("--weights", weights)])?;
    let bytes = files::read(input, files::ARRAY)?;
    let arr = npy::read(&bytes).with_context(|| text::path(input))?;
    let [n, c, h, w] = match arr.shape[..] {
        [n, c, h, w] => [n, c, h, w],
        _ => bail!(
            "{}: expected an NCHW array of 4 dimensions, got shape {:?}",
            text::path(input),
            arr.shape
        ),
    };
    if n == 0 || c != 3 || !(96..=1024).contains(&h) || !(96..=1024).contains(&w) {
        bail!(
            "{}: expected shape [N≥1, 3, H, W] with 96 ≤ H, W ≤ 1024, got {:?}",
            text::path(input),
            arr.shape
        );
    }
    // The training forward needs an autodiff device: that is where burn's BatchNorm uses
    // batch statistics, as PyTorch does in train mode.
    let device = if args.train {
        backend.device()?.autodiff()
    } else {
        backend.device()?
    };
    let opts = LoadOptions {
        variant: args.variant,
        num_classes: None,
        transform_input: args.transform_input,
    };
    let (model, _) = load(weights, &opts, &device)?;
    let x = Tensor::<4>::from_data(TensorData::new(arr.data, [n, c, h, w]), &device);
    let save = |path: &Path, t: Tensor<2>| -> Result<()> {
        let dims = t.dims();
        let data = t.into_data().try_to_vec::<f32>().expect("f32 logits");
        Ok(files::write(path, &npy::write(&dims, &data))?)
    };
    if args.train {
        if !model.has_aux() {
            bail!("--train needs aux heads, and this model has none");
        }
        let o = model.forward_train(x);
        save(out, o.main)?;
        save(&aux2, o.aux2.expect("checked has_aux"))?;
        save(&aux1, o.aux1.expect("checked has_aux"))?;
    } else {
        save(out, model.valid().forward(x))?;
    }
    Ok(())
}

fn inspect(args: &InspectArgs, backend: Backend) -> Result<()> {
    let model = GoogLeNetConfig::new()
        .with_variant(args.variant)
        .init(&backend.device()?);
    let s = model.summary(preprocess::INPUT_SIZE);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_summary(&s);
    }
    Ok(())
}

fn print_summary(s: &Summary) {
    println!(
        "GoogLeNet, variant {}, input {}×{}×{}, {}\n",
        s.variant,
        s.input[1],
        s.input[2],
        s.input[0],
        count(s.num_classes, "class", "classes")
    );
    println!(
        "{:<26} {:<16} {:>14} {:>12} {:>16}",
        "layer", "kind", "output", "params", "mult-adds"
    );
    for l in &s.layers {
        let shape = format!("{}×{}×{}", l.output[1], l.output[2], l.output[0]);
        println!(
            "{:<26} {:<16} {:>14} {:>12} {:>16}",
            l.name,
            l.kind,
            shape,
            thousands(l.params as u64),
            thousands(l.macs)
        );
    }
    println!(
        "\nmain path: {} parameters, {} multiply-adds ({:.3} G)",
        thousands(s.main_params as u64),
        thousands(s.main_macs),
        s.main_macs as f64 / 1e9
    );
    println!(
        "aux heads: {} parameters, {} multiply-adds (training only)\n",
        thousands(s.aux_params as u64),
        thousands(s.aux_macs)
    );
    println!("Inception blocks (output = 1x1 + 3x3 + 5x5 + pool proj):");
    for b in &s.blocks {
        let [c, h, w] = b.output;
        let [a, b3, b5, p] = b.split;
        println!(
            "  {}: {}×{}×{} → {h}×{w}×{c} = {a} + {b3} + {b5} + {p}   ({} params, {} mult-adds)",
            b.name,
            b.input[1],
            b.input[2],
            b.input[0],
            thousands(b.params as u64),
            thousands(b.macs)
        );
        for sv in &b.savings {
            println!(
                "      {} branch ({}×{} conv, {}→{}): with 1x1 reduction to {}: {} params / {} mult-adds; without: {} params / {} mult-adds ({:.1}× fewer params)",
                sv.branch,
                sv.kernel,
                sv.kernel,
                sv.in_channels,
                sv.out_channels,
                sv.reduce_to,
                thousands(sv.params_with_reduction as u64),
                thousands(sv.macs_with_reduction),
                thousands(sv.params_without_reduction as u64),
                thousands(sv.macs_without_reduction),
                sv.params_without_reduction as f64 / sv.params_with_reduction as f64
            );
        }
    }
}

fn convert(args: &ConvertArgs, backend: Backend) -> Result<()> {
    let (to, dtype) = (args.to.as_path(), args.dtype);
    files::check_outputs(&[("--to", to)], &[("--from", &args.from)])?;
    let device = backend.device()?;
    let opts = LoadOptions {
        variant: args.variant,
        num_classes: None,
        transform_input: args.transform_input,
    };
    let (model, report) = load(&args.from, &opts, &device)?;
    let info = SaveInfo {
        labels: report.labels.clone(),
        aux_trained: !report.aux_fresh,
    };
    let bytes = weights::save_model_as(&model, &info, dtype)?;
    // Through a temporary file: a failed write leaves `to` (and so any source) as it was.
    files::write(to, &bytes)?;
    eprintln!(
        "wrote {} ({:?}, {:.1} MB; {} variant, {}, {} tensors{})",
        text::path(to),
        dtype,
        bytes.len() as f64 / 1e6,
        report.variant,
        count(report.num_classes, "class", "classes"),
        report.loaded,
        if report.aux_fresh {
            "; no trained aux heads, so none saved"
        } else {
            ""
        }
    );
    Ok(())
}

fn bench(args: &BenchArgs, backend: Backend) -> Result<()> {
    let BenchArgs {
        variant,
        threads,
        iters,
        warmup,
        json,
        layers,
        batch,
    } = *args;
    if iters == 0 {
        bail!("--iters must be at least 1");
    }
    if !(1..=64).contains(&batch) {
        bail!("--batch must be 1…64");
    }
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("setting the thread count")?;
    let device = backend.device()?;
    // Real weights when available (the numbers do not depend on them, but denormals would).
    let model = match (variant, paths::shared_weights()) {
        (Variant::Bvlc, Some(p)) => {
            load(
                &p,
                &LoadOptions {
                    variant: Some(Variant::Bvlc),
                    ..LoadOptions::default()
                },
                &device,
            )?
            .0
        }
        _ => GoogLeNetConfig::new().with_variant(variant).init(&device),
    }
    .valid();
    let s = preprocess::INPUT_SIZE;
    let input: Vec<f32> = (0..3 * s * s)
        .map(|i| ((i as f32) * 0.01).sin() * 50.0)
        .collect();
    let batched: Vec<f32> = (0..batch).flat_map(|_| input.iter().copied()).collect();
    let run = || {
        let x = Tensor::<4>::from_data(TensorData::new(batched.clone(), [batch, 3, s, s]), &device);
        let t = Instant::now();
        let out = model.forward(x).into_data();
        std::hint::black_box(out);
        t.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..warmup {
        run();
    }
    let mut times: Vec<f64> = (0..iters).map(|_| run()).collect();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let min = times[0];
    let backend_name = backend.describe(&device);
    if layers {
        let x = input_tensor(input.clone(), &device);
        for inference::StageTime { stage, ms } in
            futures_lite::future::block_on(inference::stage_times(&model, x, iters))
        {
            eprintln!("  {stage:<12} {ms:>8.2} ms");
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"median_ms": median, "min_ms": min, "per_image_ms": median / batch as f64, "batch": batch, "iters": iters, "threads": threads, "backend": backend_name, "variant": variant.name()})
        );
    } else {
        let per_image = if batch > 1 {
            format!(" ({:.2} ms per image)", median / batch as f64)
        } else {
            String::new()
        };
        // The CPU's thread count says nothing about a GPU run.
        let on = match backend {
            Backend::Cpu => format!("{backend_name}, {threads} threads"),
            Backend::Wgpu => backend_name,
        };
        println!(
            "{variant} batch {batch} on {on}: median {median:.2} ms{per_image}, min {min:.2} ms over {iters} runs"
        );
    }
    Ok(())
}

fn fetch_weights(args: &FetchWeightsArgs, backend: Backend) -> Result<()> {
    let url = &args.url;
    let dest = paths::fetched_weights();
    std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
    let pth = dest.with_extension("pth");
    eprintln!("downloading {url} …");
    let status = std::process::Command::new("curl")
        .args(["-fL", "--retry", "3", "-o"])
        .arg(&pth)
        .arg(url)
        .status()
        .context("running curl (is it installed?)")?;
    if !status.success() {
        bail!(
            "download failed ({status}); fetch {url} by hand and run `googlenet convert --from FILE --variant torchvision --transform-input true --to {}`",
            dest.display()
        );
    }
    // torchvision's pretrained weights expect transform_input=True.
    let args = ConvertArgs {
        from: pth,
        variant: Some(Variant::Torchvision),
        transform_input: Some(true),
        to: dest,
        dtype: StoreDtype::F32,
    };
    convert(&args, backend)
}

fn finetune(args: &FinetuneArgs, backend: Backend) -> Result<()> {
    let cfg = args.config()?;
    let steps = args.steps;
    if steps == 0 || steps > train::LIMITS.max_steps {
        bail!(
            "--steps {steps} is out of range 1…{}",
            train::LIMITS.max_steps
        );
    }
    cfg.check()?;
    let path = args.model.weights()?;
    let data = ImageFolder::read(&args.data)?;
    let (out, log) = (args.out.as_path(), args.log.as_deref());
    // No output may be an input: not the weights, not a training image, not each other.
    let mut outputs = vec![("--out", out)];
    if let Some(log) = log {
        outputs.push(("--log", log));
    }
    let mut inputs = vec![("--weights", path.as_path())];
    inputs.extend(data.images().map(|f| ("a training image", f)));
    files::check_outputs(&outputs, &inputs)?;
    let device = backend.device()?;
    let (model, _) = args.model.load(&path, &device)?;
    let examples = data.examples()?;
    let labels = data.labels;
    eprintln!(
        "{} in {}: {}",
        count(examples.len(), "image", "images"),
        count(labels.len(), "class", "classes"),
        labels
            .iter()
            .map(|l| escape(l))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let aux_trained = cfg.aux;
    let mut trainer = Trainer::new(model, examples, labels.clone(), cfg, &device)?;
    // Both outputs through temporary files, renamed only when the fine-tune is done: an error
    // on the way leaves whatever was at those paths as it was.
    let mut log_file = log.map(Output::create).transpose()?;
    for _ in 0..steps {
        let r = futures_lite::future::block_on(trainer.step())?;
        eprintln!(
            "step {:>4}  loss {:.4}  main {:.4}  aux1 {:.4}  aux2 {:.4}  acc {:>5.1}%  {:.0} ms",
            r.step,
            r.loss,
            r.main,
            r.aux1,
            r.aux2,
            r.acc * 100.0,
            r.ms
        );
        if let Some(f) = log_file.as_mut() {
            let line = serde_json::json!({"step": r.step, "loss": r.loss, "main": r.main, "aux1": r.aux1, "aux2": r.aux2, "acc": r.acc});
            f.write_all(format!("{line}\n").as_bytes())?;
        }
    }
    let info = SaveInfo {
        labels: Some(labels),
        aux_trained,
    };
    files::write(out, &weights::save_model(&trainer.model(), &info)?)?;
    if let Some(f) = log_file {
        f.commit()?;
    }
    eprintln!("wrote {}", text::path(out));
    Ok(())
}
