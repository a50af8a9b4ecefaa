"""vae_dist's layer syntax ("conv 32 k3 p1, res 64, attn, up 2, ...") built as a plain PyTorch 1.13 module,
written independently of the C++ side from PyTorch's and diffusers' definitions (ResnetBlock2D, the VAE
mid-block's Attention, Upsample2D's nearest x2), on 1-D [C, L], 2-D [C, H, W] and 3-D [C, D, H, W] samples
(Conv1d/2d/3d, as MONAI's blocks do in 3-D). Parameter names follow the C++ builder's, so a vae_dist
checkpoint (or a test's HDF5 file) loads by name: `<prefix>.conv1.weight`, `<prefix>.res1.norm1.weight`,
`<prefix>.attn1.to_q.weight`, ... Used by the block tests and the training and speed comparisons."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {
    "relu": lambda a: F.relu,
    "silu": lambda a: F.silu,
    "gelu": lambda a: F.gelu,
    "tanh": lambda a: torch.tanh,
    "sigmoid": lambda a: torch.sigmoid,
    "leakyrelu": lambda a: (lambda x: F.leaky_relu(x, float(a[0]))),
}
PARAM_KINDS = ("fc", "conv", "convt", "gn", "res", "attn")
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONVT = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
FUSES = ("fc", "conv", "convt")


def split_layers(text):
    """Top-level comma-separated items, parentheses kept whole."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            item = text[start:i].strip()
            if item:
                items.append(item)
            start = i + 1
    return items


def parse_item(item):
    """(keyword, args, body or None)."""
    if "(" in item:
        open_, close = item.index("("), item.rindex(")")
        return item[:open_].strip(), item[close + 1:].split(), item[open_ + 1:close]
    words = item.split()
    return words[0], words[1:], None


def conv_settings(args, dims):
    """(channels, {k, s, p, op}), each a tuple of one size per spatial axis ("k5x3" per axis, "k3" on all)."""
    s = {"k": None, "s": (1,) * dims, "p": (0,) * dims, "op": (0,) * dims}
    for a in args[1:]:
        key = "op" if a.startswith("op") else a[0]
        v = tuple(int(t) for t in a[len(key):].split("x"))
        s[key] = v * dims if len(v) == 1 else v
    return int(args[0]), s


def conv_out(size, s, transposed):
    """Output sizes per axis, as PyTorch computes them."""
    if transposed:
        return tuple((i - 1) * st - 2 * p + k + op for i, k, st, p, op in zip(size, s["k"], s["s"], s["p"], s["op"]))
    return tuple((i + 2 * p - k) // st + 1 for i, k, st, p in zip(size, s["k"], s["s"], s["p"]))


class ResnetBlock(nn.Module):
    """diffusers' ResnetBlock2D without time embedding and dropout: out = shortcut(x) + conv2(silu(norm2(
    conv1(silu(norm1(x)))))), shortcut a 1x1 conv when the channels change."""

    def __init__(self, cin, cout, groups, eps=1e-6, dims=2):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps)
        self.conv1 = CONV[dims](cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps)
        self.conv2 = CONV[dims](cout, cout, 3, padding=1)
        self.conv_shortcut = CONV[dims](cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    """The VAE mid-block's attention in diffusers (one head, residual): group_norm, to_q/k/v, softmax(q k^T /
    sqrt(C)) v, to_out, + x."""

    def __init__(self, channels, groups, eps=1e-6):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x):
        n, c = x.shape[:2]
        t = self.group_norm(x).view(n, c, -1).transpose(1, 2)  # [N, S, C], S every position
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
        o = self.to_out(a @ v)
        return x + o.transpose(1, 2).reshape(x.shape)


class Residual(nn.Module):
    """res(body): body(x) + x, or + conv_shortcut(x) (1x1) when the body changes the channels."""

    def __init__(self, body, cin, cout, dims):
        super().__init__()
        self.body = body
        if cin != cout:
            self.conv_shortcut = nn.Linear(cin, cout) if dims == 0 else CONV[dims](cin, cout, 1)
        else:
            self.conv_shortcut = None

    def forward(self, x):
        return self.body(x) + (self.conv_shortcut(x) if self.conv_shortcut is not None else x)


class Chain(nn.Module):
    """A layer list as the C++ builder builds it: names per kind, activations fused (here simply applied)
    after fc/conv/convt, a flatten before an fc on an image. Children are registered under the C++ names
    (without the prefix); steps holds (callable, name) in order."""

    def __init__(self, text, in_shape, last_is_out=False):
        super().__init__()
        self.steps = []
        self.in_shape = tuple(in_shape)
        shape = tuple(in_shape)
        items = [parse_item(i) for i in split_layers(text)]
        last_param = max([i for i, it in enumerate(items) if it[0] in PARAM_KINDS], default=-1)
        counts = {}
        for i, (kw, args, body) in enumerate(items):
            name = None
            if kw in PARAM_KINDS:
                counts[kw] = counts.get(kw, 0) + 1
                name = "out" if last_is_out and i == last_param else f"{kw}{counts[kw]}"
            shape = self.add(kw, args, body, name, shape)
        self.out_shape = shape

    def add(self, kw, args, body, name, shape):
        flat = len(shape) == 1
        dims = len(shape) - 1  # spatial axes: 0 flat, 1, 2 or 3
        if kw == "fc":
            if not flat:
                self.steps.append((lambda x: torch.flatten(x, 1), None))
                shape = (math.prod(shape),)
            m = nn.Linear(shape[0], int(args[0]))
            shape = (int(args[0]),)
        elif kw in ("conv", "convt"):
            c, s = conv_settings(args, dims)
            if kw == "conv":
                m = CONV[dims](shape[0], c, s["k"], s["s"], s["p"])
            else:
                m = CONVT[dims](shape[0], c, s["k"], s["s"], s["p"], output_padding=s["op"])
            shape = (c,) + conv_out(shape[1:], s, kw == "convt")
        elif kw in ACTIVATIONS:
            self.steps.append((ACTIVATIONS[kw](args), None))
            return shape
        elif kw == "flatten":
            self.steps.append((lambda x: torch.flatten(x, 1), None))
            return (math.prod(shape),)
        elif kw == "reshape":
            target = tuple(int(v) for v in args[0].split("x"))
            self.steps.append((lambda x, t=target: x.reshape(x.shape[0], *t), None))
            return target
        elif kw == "up":
            f = int(args[0])
            self.steps.append((lambda x, f=f: F.interpolate(x, scale_factor=f, mode="nearest"), None))
            return (shape[0],) + tuple(v * f for v in shape[1:])
        elif kw == "gn":
            m = nn.GroupNorm(int(args[0]), shape[0], float(args[1]) if len(args) > 1 else 1e-6)
        elif kw == "res" and body is None:
            groups = int(args[1][1:]) if len(args) > 1 else 32
            m = ResnetBlock(shape[0], int(args[0]), groups, dims=dims)
            shape = (int(args[0]),) + tuple(shape[1:])
        elif kw == "res":
            inner = Chain(body, shape)
            m = Residual(inner, shape[0], inner.out_shape[0], dims)
            shape = inner.out_shape
        elif kw == "attn":
            groups = int(args[0][1:]) if args else 32
            m = Attention(shape[0], groups)
        else:
            raise ValueError(f"vd_torch does not know the layer '{kw}'")
        self.add_module(name, m)
        self.steps.append((m, name))
        return shape

    def forward(self, x):
        for f, _ in self.steps:
            x = f(x)
        return x


def load_named(module, prefix, get):
    """Copies every parameter `<prefix>.<path>` from get(name) (a numpy array) into module."""
    with torch.no_grad():
        for path, p in module.named_parameters():
            path = path.replace("body.", "")  # Residual's body is named after the block itself
            p.copy_(torch.from_numpy(get(f"{prefix}.{path}")).reshape(p.shape))


def grads_named(module, prefix):
    return {f"{prefix}.{path.replace('body.', '')}": p.grad for path, p in module.named_parameters()}
