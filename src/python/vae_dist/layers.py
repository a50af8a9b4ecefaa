"""vae_dist's layer lists ("conv 32 k3 p1, res 64, attn, up 2, ...") as plain PyTorch 1.13 modules, after the C++
builder (src/nn/builder.cpp, src/nn/block.cpp) and PyTorch's and diffusers' definitions (ResnetBlock2D, the VAE
mid-block's Attention, nearest up-sampling), on flat [D], 1-D [C, L], 2-D [C, H, W] and 3-D [C, D, H, W] samples.
Parameters carry the C++ names under the chain (`conv1.weight`, `res1.norm1.weight`, `attn1.to_q.weight`), so a
checkpoint's /params load by name."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class VaeDistError(ValueError):
    """A checkpoint, layer list or input this package cannot turn into the model it describes."""


ACTIVATIONS = {
    "relu": lambda a: F.relu,
    "silu": lambda a: F.silu,
    "gelu": lambda a: F.gelu,
    "tanh": lambda a: torch.tanh,
    "sigmoid": lambda a: torch.sigmoid,
    "leakyrelu": lambda a: (lambda x: F.leaky_relu(x, float(a[0]))),
}
PARAM_KINDS = ("fc", "conv", "convt", "gn", "res", "attn")
SHAPE_KINDS = ("flatten", "reshape", "up")
KINDS = PARAM_KINDS + SHAPE_KINDS + tuple(ACTIVATIONS)
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONVT = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def split_layers(text):
    """Top-level comma-separated items, parentheses kept whole."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            raise VaeDistError(f"layer list '{text}': ')' at character {i + 1} closes nothing")
        if ch == "," and depth == 0:
            item = text[start:i].strip()
            if item:
                items.append(item)
            start = i + 1
    if depth > 0:
        raise VaeDistError(f"layer list '{text}': a '(' is never closed")
    return items


def parse_item(item):
    """(keyword, args, body or None)."""
    if "(" in item:
        open_, close = item.index("("), item.rindex(")")
        return item[:open_].strip(), item[close + 1:].split(), item[open_ + 1:close]
    words = item.split()
    return words[0], words[1:], None


def _int(word, what):
    try:
        return int(word)
    except ValueError:
        raise VaeDistError(f"{what}: '{word}' is not an integer") from None


def conv_settings(args, dims):
    """(channels, {k, s, p, op}), each a tuple of one size per spatial axis ("k5x3" per axis, "k3" on all)."""
    what = "conv/convt '" + " ".join(args) + "'"
    if not args:
        raise VaeDistError(f"{what}: no channel count")
    s = {"k": None, "s": (1,) * dims, "p": (0,) * dims, "op": (0,) * dims}
    for a in args[1:]:
        key = "op" if a.startswith("op") else a[:1]
        if key not in s:
            raise VaeDistError(f"{what}: the setting '{a}' is not one this package builds (k, s, p, op)")
        v = tuple(_int(t, what) for t in a[len(key):].split("x"))
        if len(v) not in (1, dims):
            raise VaeDistError(f"{what}: '{a}' names {len(v)} axes but the data has {dims}")
        s[key] = v * dims if len(v) == 1 else v
    if s["k"] is None:
        raise VaeDistError(f"{what}: no kernel size (kK)")
    return _int(args[0], what), s


def conv_out(size, s, transposed):
    """Output sizes per axis, as PyTorch computes them."""
    if transposed:
        return tuple((i - 1) * st - 2 * p + k + op for i, k, st, p, op in zip(size, s["k"], s["s"], s["p"], s["op"]))
    return tuple((i + 2 * p - k) // st + 1 for i, k, st, p in zip(size, s["k"], s["s"], s["p"]))


def _groups(args, what):
    """The optional 'gG' of attn and res (32 by default)."""
    if not args:
        return 32
    if len(args) > 1 or not args[0].startswith("g"):
        raise VaeDistError(f"{what}: '{' '.join(args)}' is not an optional group count 'gG'")
    return _int(args[0][1:], what)


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
        self.sqrt_c = math.sqrt(channels)  # a constant, not a traced size

    def forward(self, x):
        n, c = x.shape[:2]
        t = self.group_norm(x).reshape(n, c, -1).transpose(1, 2)  # [N, S, C], S every position
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        a = torch.softmax(torch.matmul(q, k.transpose(1, 2)) / self.sqrt_c, dim=-1)
        o = self.to_out(torch.matmul(a, v))
        return x + o.transpose(1, 2).reshape(x.shape)


class Chain(nn.Module):
    """A layer list as the C++ builder builds it: names per kind ("out" for the last layer with parameters when
    last_is_out), activations applied after fc/conv/convt (the C++ fuses relu), a flatten before an fc on an image,
    and with classes > 0 the one-hot label appended to the input of the first fc (a conditional model). Children
    are registered under the C++ names without the prefix; steps holds (callable, name) in order, the label's
    concatenation as ("label", None)."""

    def __init__(self, text, in_shape, last_is_out=False, classes=0, what="network"):
        super().__init__()
        self.steps = []
        self.what = what
        self.in_shape = tuple(in_shape)
        self.classes = classes
        shape = tuple(in_shape)
        items = [parse_item(i) for i in split_layers(text)]
        for kw, _, _ in items:
            if kw not in KINDS:
                raise VaeDistError(f"{what}: the layer kind '{kw}' is not one this package builds "
                                   f"(it builds {', '.join(KINDS)})")
        last_param = max([i for i, it in enumerate(items) if it[0] in PARAM_KINDS], default=-1)
        counts = {}
        conditioned = classes == 0
        for i, (kw, args, body) in enumerate(items):
            name = None
            if kw in PARAM_KINDS:
                counts[kw] = counts.get(kw, 0) + 1
                name = "out" if last_is_out and i == last_param else f"{kw}{counts[kw]}"
            if kw == "fc" and not conditioned:
                if len(shape) > 1:
                    self.steps.append((lambda x: torch.flatten(x, 1), None))
                    shape = (math.prod(shape),)
                self.steps.append(("label", None))
                shape = (shape[0] + classes,)
                conditioned = True
            try:
                shape = self.add(kw, args, body, name, shape)
            except (ValueError, IndexError) as e:
                if isinstance(e, VaeDistError):
                    raise
                raise VaeDistError(f"{what}: layer '{kw} {' '.join(args)}' cannot be built on {shape}: {e}") from None
        if not conditioned:
            raise VaeDistError(f"{what} has no fc layer, so a conditional model has nowhere to take its label")
        self.out_shape = shape

    def add(self, kw, args, body, name, shape):
        flat = len(shape) == 1
        dims = len(shape) - 1  # spatial axes: 0 flat, 1, 2 or 3
        where = f"{self.what}: layer '{kw} {' '.join(args)}'".rstrip()
        if kw in ("conv", "convt", "gn", "up", "attn") or (kw == "res" and body is None):
            if flat:
                raise VaeDistError(f"{where} needs a C x ... map, but its input is flat {shape}")
        if kw == "fc":
            if not flat:
                self.steps.append((lambda x: torch.flatten(x, 1), None))
                shape = (math.prod(shape),)
            if len(args) != 1:
                raise VaeDistError(f"{where}: 'fc' takes one width")
            m = nn.Linear(shape[0], _int(args[0], where))
            shape = (m.out_features,)
        elif kw in ("conv", "convt"):
            c, s = conv_settings(args, dims)
            if kw == "conv":
                m = CONV[dims](shape[0], c, s["k"], s["s"], s["p"])
            else:
                m = CONVT[dims](shape[0], c, s["k"], s["s"], s["p"], output_padding=s["op"])
            shape = (c,) + conv_out(shape[1:], s, kw == "convt")
        elif kw in ACTIVATIONS:
            if (kw == "leakyrelu") != (len(args) == 1) or len(args) > 1:
                raise VaeDistError(f"{where}: settings this package does not build")
            self.steps.append((ACTIVATIONS[kw](args), None))
            return shape
        elif kw == "flatten":
            self.steps.append((lambda x: torch.flatten(x, 1), None))
            return (math.prod(shape),)
        elif kw == "reshape":
            target = tuple(_int(v, where) for v in args[0].split("x"))
            if math.prod(target) != math.prod(shape):
                raise VaeDistError(f"{where}: {math.prod(shape)} values cannot become {target}")
            self.steps.append((lambda x, t=target: x.reshape((x.shape[0],) + t), None))
            return target
        elif kw == "up":
            f = _int(args[0], where)
            self.steps.append((lambda x, f=f: F.interpolate(x, scale_factor=f, mode="nearest"), None))
            return (shape[0],) + tuple(v * f for v in shape[1:])
        elif kw == "gn":
            m = nn.GroupNorm(_int(args[0], where), shape[0], float(args[1]) if len(args) > 1 else 1e-6)
        elif kw == "res" and body is None:
            m = ResnetBlock(shape[0], _int(args[0], where), _groups(args[1:], where), dims=dims)
            shape = (m.conv1.out_channels,) + tuple(shape[1:])
        elif kw == "res":
            if args:
                raise VaeDistError(f"{where}: 'res(...)' takes nothing after its layers")
            m = Residual(body, shape, f"{self.what}: in 'res({body})'")
            shape = m.out_shape
        elif kw == "attn":
            m = Attention(shape[0], _groups(args, where))
        else:  # pragma: no cover - KINDS is checked first
            raise VaeDistError(f"{self.what}: the layer kind '{kw}' is not one this package builds")
        self.add_module(name, m)
        self.steps.append((m, name))
        return shape

    def forward(self, x, onehot=None):
        for f, _ in self.steps:
            x = torch.cat([x, onehot], dim=1) if f == "label" else f(x)
        return x


class Residual(Chain):
    """res(body): body(x) + x, or + conv_shortcut(x) (a 1x1 conv, an fc on flat data) when the body changes the
    channels. The body's layers are named under the block itself, as the C++ builder names them."""

    def __init__(self, body, in_shape, what):
        super().__init__(body, in_shape, what=what)
        if len(self.out_shape) != len(in_shape) or self.out_shape[1:] != tuple(in_shape[1:]):
            raise VaeDistError(f"{what}: the body turns {tuple(in_shape)} into {self.out_shape}; a residual block "
                               "keeps the map size")
        cin, cout, dims = in_shape[0], self.out_shape[0], len(in_shape) - 1
        if cin != cout:
            self.conv_shortcut = nn.Linear(cin, cout) if dims == 0 else CONV[dims](cin, cout, 1)
        else:
            self.conv_shortcut = None

    def forward(self, x, onehot=None):
        h = super().forward(x)
        return h + (self.conv_shortcut(x) if self.conv_shortcut is not None else x)
