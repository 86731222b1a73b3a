"""Writes all-MiniLM-L6-v2 (a 6-layer BERT sentence encoder) as ONNX from its safetensors
weights, with the graph built op by op (the shapes and ops of a `torch.onnx.export` of
`transformers.BertModel` at opset 14: decomposed LayerNorm, erf GELU, additive attention mask),
so the corpus needs no PyTorch. Weights go to external data next to the model.

Checked in `corpus.py`: the mean-pooled output of this graph, run by onnxruntime, is the
sentence embedding of the reference implementation up to float rounding (the script compares it
with a NumPy implementation of the same equations written independently of the graph).
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HEADS = 12
HIDDEN = 384
EPS = 1e-12


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.nodes = []
        self.inits = []
        self.n = 0

    def name(self, hint):
        self.n += 1
        return f"{hint}_{self.n}"

    def init(self, name, array):
        # np.ascontiguousarray would turn a scalar into shape [1]; CumSum's axis must be 0-D.
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def const(self, array, hint="const"):
        return self.init(self.name(hint), np.asarray(array))

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x, prefix):
        w = self.init(prefix + ".weight", self.w[prefix + ".weight"].T.copy())
        b = self.init(prefix + ".bias", self.w[prefix + ".bias"])
        return self.op("Add", [self.op("MatMul", [x, w], prefix + ".matmul"), b], prefix + ".add")

    def layer_norm(self, x, prefix):
        mean = self.op("ReduceMean", [x], prefix + ".mean", axes=[-1])
        d = self.op("Sub", [x, mean], prefix + ".sub")
        var = self.op("ReduceMean", [self.op("Mul", [d, d], prefix + ".sq")], prefix + ".var", axes=[-1])
        std = self.op("Sqrt", [self.op("Add", [var, self.const(np.float32(EPS), "eps")])], prefix + ".std")
        y = self.op("Div", [d, std], prefix + ".norm")
        g = self.init(prefix + ".weight", self.w[prefix + ".weight"])
        b = self.init(prefix + ".bias", self.w[prefix + ".bias"])
        return self.op("Add", [self.op("Mul", [y, g], prefix + ".scale"), b], prefix + ".shift")


def export(safetensors_path, out_path, data_name):
    from safetensors.numpy import load_file

    w = load_file(safetensors_path)
    g = Graph(w)
    head_dim = HIDDEN // HEADS
    # Embeddings: word + position(0..seq) + token type, then LayerNorm.
    word = g.op("Gather", [g.init("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]), "input_ids"], "word")
    # Position ids 0..seq-1 for every row: CumSum of ones along the sequence, minus one.
    ones = g.op("Add", [g.op("Mul", ["input_ids", g.const(np.int64(0))]), g.const(np.int64(1))], "ones")
    pos_ids = g.op("Sub", [g.op("CumSum", [ones, g.const(np.int64(1))]), g.const(np.int64(1))], "position_ids")
    pos = g.op("Gather", [g.init("embeddings.position_embeddings.weight", w["embeddings.position_embeddings.weight"]), pos_ids], "position")
    tok = g.op("Gather", [g.init("embeddings.token_type_embeddings.weight", w["embeddings.token_type_embeddings.weight"]), "token_type_ids"], "token_type")
    x = g.layer_norm(g.op("Add", [g.op("Add", [word, pos]), tok]), "embeddings.LayerNorm")
    # Additive mask [batch, 1, 1, seq]: 0 where attended, -10000 where padded.
    maskf = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const(np.array([1, 2], np.int64))])], "mask", to=TensorProto.FLOAT)
    bias = g.op("Mul", [g.op("Sub", [g.const(np.float32(1.0)), maskf]), g.const(np.float32(-10000.0))], "mask_bias")
    split_heads = g.const(np.array([0, 0, HEADS, head_dim], np.int64), "split_heads")
    merge_heads = g.const(np.array([0, 0, HIDDEN], np.int64), "merge_heads")
    scale = g.const(np.float32(1.0 / np.sqrt(head_dim)), "scale")
    for i in range(6):
        p = f"encoder.layer.{i}"
        def heads(t, perm):
            return g.op("Transpose", [g.op("Reshape", [t, split_heads])], perm=perm)
        q = heads(g.linear(x, p + ".attention.self.query"), [0, 2, 1, 3])
        k = heads(g.linear(x, p + ".attention.self.key"), [0, 2, 3, 1])
        v = heads(g.linear(x, p + ".attention.self.value"), [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k], p + ".qk"), scale]), bias])
        probs = g.op("Softmax", [scores], p + ".softmax", axis=-1)
        ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v], p + ".pv")], perm=[0, 2, 1, 3]), merge_heads])
        x = g.layer_norm(g.op("Add", [g.linear(ctx, p + ".attention.output.dense"), x]), p + ".attention.output.LayerNorm")
        h = g.linear(x, p + ".intermediate.dense")
        gelu = g.op("Mul", [g.op("Mul", [h, g.op("Add", [g.op("Erf", [g.op("Div", [h, g.const(np.float32(np.sqrt(2.0)))])]), g.const(np.float32(1.0))])]), g.const(np.float32(0.5))], p + ".gelu")
        x = g.layer_norm(g.op("Add", [g.linear(gelu, p + ".output.dense"), x]), p + ".output.LayerNorm")
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="last_hidden_state"))
    # Mean pooling over attended tokens: the sentence embedding.
    m = g.op("Unsqueeze", [g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT), g.const(np.array([2], np.int64))])
    summed = g.op("ReduceSum", [g.op("Mul", [x, m]), g.const(np.array([1], np.int64))], keepdims=0)
    count = g.op("ReduceSum", [m, g.const(np.array([1], np.int64))], keepdims=0)
    g.nodes.append(helper.make_node("Div", [summed, count], ["sentence_embedding"], name="sentence_embedding"))

    ids = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
    outs = [
        helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", HIDDEN]),
        helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", HIDDEN]),
    ]
    graph = helper.make_graph(g.nodes, "all-MiniLM-L6-v2", ids, outs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], producer_name="trt-rs corpus")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, out_path, save_as_external_data=True, all_tensors_to_one_file=True, location=data_name, size_threshold=1024)
    return w


def reference_embedding(w, ids, mask, types):
    """NumPy BERT + mean pooling, written from the equations (not from the graph above)."""
    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + EPS) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    from math import erf
    verf = np.vectorize(erf)
    b, s = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:s][None] + w["embeddings.token_type_embeddings.weight"][types]
    x = ln(x, "embeddings.LayerNorm")
    d = HIDDEN // HEADS
    add = (1.0 - mask[:, None, None, :].astype(np.float32)) * -10000.0
    for i in range(6):
        p = f"encoder.layer.{i}"
        q, k, v = (lin(x, p + ".attention.self." + n).reshape(b, s, HEADS, d).transpose(0, 2, 1, 3) for n in ("query", "key", "value"))
        a = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + add
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        c = (a @ v).transpose(0, 2, 1, 3).reshape(b, s, HIDDEN)
        x = ln(lin(c, p + ".attention.output.dense") + x, p + ".attention.output.LayerNorm")
        h = lin(x, p + ".intermediate.dense")
        h = 0.5 * h * (1.0 + verf(h / np.sqrt(2.0)))
        x = ln(lin(h, p + ".output.dense") + x, p + ".output.LayerNorm")
    m = mask[..., None].astype(np.float32)
    return (x * m).sum(1) / m.sum(1)
