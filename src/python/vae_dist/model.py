"""vae_dist.load: a checkpoint's stored configuration and parameters as a torch.nn.Module (VaeModel) with encode,
decode, forward and sample in the data's units, built as src/vae/model.cpp and src/train/model_config.cpp build the
C++ model; every name and shape is compared with the checkpoint's before the weights are copied."""
import math

import h5py
import numpy as np
import torch
import torch.nn as nn

from .layers import CONV, Chain, VaeDistError

CHECKPOINT_FORMAT = "vae_dist-checkpoint"
# The model families (--model, src/vae/models.cpp) this package builds: all are the same networks, the IWAE's
# trained on the importance-weighted bound, beta-TCVAE's with the KL decomposed. Another family is refused by name.
FAMILIES = ("vae", "iwae", "btcvae")


def parse_config(text):
    """The resolved configuration as vae_dist stores it (`key = value` lines, # comments) -> dict."""
    cfg = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        if "=" not in line:
            raise VaeDistError(f"the stored configuration has a line that is not 'key = value': '{line}'")
        key, value = line.split("=", 1)
        cfg[key.strip()] = value.strip()
    return cfg


def _bool(value):
    v = value.strip().lower()
    if v in ("true", "yes", "on", "1"):
        return True
    if v in ("false", "no", "off", "0", ""):
        return False
    raise VaeDistError(f"'{value}' is not true or false")


def _shape(text):
    return tuple(int(v) for v in text.split("x"))


class ModelSpec:
    """What the checkpoint says the model is: layer lists, shapes, classes, likelihood, clamp, scaling."""

    def __init__(self, cfg, data_shape, classes, where):
        kind = cfg.get("model", "vae") or "vae"  # checkpoints before --model are VAEs
        if kind not in FAMILIES:
            raise VaeDistError(f"{where} holds a model of kind '{kind}' (--model); this package builds "
                               f"{', '.join(FAMILIES)}")
        self.model = kind
        self.data_shape = self.stored_shape = tuple(int(v) for v in data_shape)
        if len(self.data_shape) == 3 and self.data_shape[1:] == (1, 1):
            self.data_shape = self.data_shape[:1]  # C x 1 x 1 is a flat vector to vae_dist (nn/shape.hpp)
        hidden = [int(v) for v in cfg.get("hidden", "400").split(",") if v.strip()]
        self.encoder = cfg.get("encoder", "") or ", ".join(f"fc {h}, relu" for h in hidden)
        self.decoder = cfg.get("decoder", "") or "".join(f"fc {h}, relu, " for h in reversed(hidden)) + \
            f"fc {math.prod(self.data_shape)}"
        if cfg.get("latent-shape"):
            self.latent_shape = _shape(cfg["latent-shape"])
        else:
            self.latent_shape = (int(cfg.get("latent-dim", "20")),)
        self.latent_dim = math.prod(self.latent_shape)
        self.classes = int(classes) if _bool(cfg.get("conditional", "false")) else 0
        if _bool(cfg.get("conditional", "false")) and self.classes < 1:
            raise VaeDistError(f"{where} is of a conditional model but records no class count (attribute 'classes')")
        self.likelihood = cfg.get("likelihood", "bernoulli")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise VaeDistError(f"{where}: the likelihood '{self.likelihood}' is not one this package builds "
                               "(bernoulli, gaussian)")
        sigma = cfg.get("gaussian-sigma", "1")
        self.output_variance = "fixed"
        self.gaussian_sigma = 1.0
        if self.likelihood == "gaussian" and sigma in ("learned", "learned-per-output"):
            self.output_variance = sigma
        elif sigma not in ("learned", "learned-per-output"):
            self.gaussian_sigma = float(sigma)
        clamp = cfg.get("logvar-clamp", "-30,20")
        if clamp == "none":
            self.logvar_min, self.logvar_max = -math.inf, math.inf
        else:
            lo, hi = clamp.split(",")
            self.logvar_min, self.logvar_max = float(lo), float(hi)
        self.standardize = _bool(cfg.get("standardize", "false"))


class VaeModel(nn.Module):
    """A vae_dist VAE: encoder chain -> heads encoder.mu / encoder.logvar (fc, or 3x3 convs for a spatial latent)
    -> z -> decoder chain -> the likelihood's mean. Inputs and outputs are in the data file's units: uint8 input is
    scaled by 1/255 as vae_dist scales uint8 data, and a run trained with --standardize standardises its input and
    maps its output back with the statistics stored in the checkpoint. Attributes: spec (ModelSpec), path,
    weights ('raw' or 'ema'), step (the checkpoint's step)."""

    def __init__(self, spec, mean=None, std=None):
        super().__init__()
        self.spec = spec
        k = spec.classes
        self.encoder = Chain(spec.encoder, spec.data_shape, classes=k, what="encoder")
        h = self.encoder.out_shape
        lat = spec.latent_shape
        if len(lat) == 1:
            self.encoder.add_module("mu", nn.Linear(math.prod(h), lat[0]))
            self.encoder.add_module("logvar", nn.Linear(math.prod(h), lat[0]))
        else:
            if len(h) != len(lat) or h[1:] != lat[1:]:
                raise VaeDistError(f"encoder: it ends in {h} per sample, but the latent {lat} needs a map of "
                                   f"{lat[1:]}")
            self.encoder.add_module("mu", CONV[len(h) - 1](h[0], lat[0], 3, padding=1))
            self.encoder.add_module("logvar", CONV[len(h) - 1](h[0], lat[0], 3, padding=1))
        self.decoder = Chain(spec.decoder, lat, last_is_out=True, classes=k, what="decoder")
        out = self.decoder.out_shape
        if out != spec.data_shape and not (len(out) == 1 and out[0] == math.prod(spec.data_shape)):
            raise VaeDistError(f"decoder: it ends in {out} per sample but the data are {spec.data_shape}")
        if spec.output_variance != "fixed":
            shape = spec.stored_shape if spec.output_variance == "learned-per-output" else (1,)
            self.decoder.out_logvar = nn.Parameter(torch.zeros(shape))
        if spec.standardize:
            if mean is None:
                raise VaeDistError("the run trained with --standardize but the checkpoint holds no /standardize "
                                   "statistics")
            self.register_buffer("std_mean", torch.from_numpy(np.asarray(mean, np.float64)), persistent=False)
            self.register_buffer("std_std", torch.from_numpy(np.asarray(std, np.float64)), persistent=False)
        else:
            self.std_mean = self.std_std = None

    # ---- units ----------------------------------------------------------------------------------------------
    def _labels(self, labels, n):
        k = self.spec.classes
        if k == 0:
            if labels is not None:
                raise VaeDistError("this model is not conditional; call it without labels")
            return None
        if labels is None:
            raise VaeDistError(f"this model is conditional on {k} classes; give labels (integers 0..{k - 1})")
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
        if labels.numel() != n:
            raise VaeDistError(f"{labels.numel()} labels for {n} rows")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
            raise VaeDistError(f"a label is outside 0..{k - 1} of the model's {k} classes")
        return nn.functional.one_hot(labels, k).to(torch.float32)

    def to_model_units(self, x):
        """x [N, *data_shape] in the file's units (uint8 0..255, or float) -> float32 as the model reads it."""
        x = torch.as_tensor(x) if not isinstance(x, np.ndarray) else torch.from_numpy(np.ascontiguousarray(x))
        if len(self.spec.data_shape) == 1 and x.dim() > 2 and math.prod(x.shape[1:]) == self.spec.data_shape[0]:
            x = x.reshape(x.shape[0], -1)  # [N, D, 1, 1] for flat data
        if tuple(x.shape[1:]) != self.spec.data_shape:
            raise VaeDistError(f"the input has samples of shape {tuple(x.shape[1:])} but the model takes "
                               f"{self.spec.data_shape} (give [N, {', '.join(map(str, self.spec.data_shape))}])")
        if x.dtype == torch.uint8:
            x = x.to(torch.float32) / 255.0  # as src/data/shard.cpp: float(u) / 255.0f
        else:
            x = x.to(torch.float32)
        if self.std_mean is not None:  # (x - mean) / std in double, rounded once, as FeatureScaling::apply
            n = x.shape[0]
            x = ((x.reshape(n, -1).double() - self.std_mean) / self.std_std).float().reshape(x.shape)
        return x

    def to_data_units(self, m):
        if self.std_mean is not None:  # x * std + mean in double, as FeatureScaling::invert
            n = m.shape[0]
            m = (m.reshape(n, -1).double() * self.std_std + self.std_mean).float().reshape(m.shape)
        return m

    # ---- the model ------------------------------------------------------------------------------------------
    def encode_model_units(self, x, onehot=None):
        h = self.encoder(x, onehot)
        if len(self.spec.latent_shape) == 1:
            h = torch.flatten(h, 1)
        mu, logvar = self.encoder.mu(h), self.encoder.logvar(h)
        if not (math.isinf(self.spec.logvar_min) and math.isinf(self.spec.logvar_max)):
            logvar = torch.clamp(logvar, self.spec.logvar_min, self.spec.logvar_max)
        return mu, logvar

    def decode_model_units(self, z, onehot=None):
        z = z.reshape((z.shape[0],) + self.spec.latent_shape)
        out = self.decoder(z, onehot).reshape((z.shape[0],) + self.spec.data_shape)
        return torch.sigmoid(out) if self.spec.likelihood == "bernoulli" else out

    def encode(self, x, labels=None):
        """q(z|x) for x [N, *data_shape] in the file's units: (mu, logvar), each [N, *latent_shape]; logvar is
        clamped to the run's --logvar-clamp, as vae_latent encode writes it."""
        x = self.to_model_units(x)
        return self.encode_model_units(x, self._labels(labels, x.shape[0]))

    def decode(self, z, labels=None):
        """The mean of p(x|z) for z [N, latent_dim] or [N, *latent_shape], in the data's units: Bernoulli
        probabilities (in [0, 1]: for uint8 data, x 255 gives the file's scale), a Gaussian's mean, a standardised
        run's mean mapped back with its statistics."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.dim() < 2 or math.prod(z.shape[1:]) != self.spec.latent_dim:
            raise VaeDistError(f"z of shape {tuple(z.shape)} is not [N, {self.spec.latent_dim}] or [N, "
                               f"{', '.join(map(str, self.spec.latent_shape))}]")
        return self.to_data_units(self.decode_model_units(z, self._labels(labels, z.shape[0])))

    def forward(self, x, labels=None):
        """The reconstruction through z = mu, in the data's units."""
        mu, _ = self.encode(x, labels)
        return self.decode(mu, labels)

    def sample(self, n, labels=None, temperature=1.0, generator=None):
        """n decodings of z = temperature * eps, eps ~ N(0, I); a conditional model draws row i as class
        i mod K unless labels are given."""
        if self.spec.classes and labels is None:
            labels = torch.arange(n) % self.spec.classes
        z = temperature * torch.randn((n,) + self.spec.latent_shape, generator=generator)
        return self.decode(z, labels)

    def output_logvar(self):
        """log sigma^2 of the Gaussian decoder ([1] or the data's shape, clamped as vae_dist clamps it), None for
        Bernoulli."""
        if self.spec.likelihood != "gaussian":
            return None
        if self.spec.output_variance == "fixed":
            return torch.full((1,), 2.0 * math.log(self.spec.gaussian_sigma))
        v = torch.clamp(self.decoder.out_logvar, self.spec.logvar_min, self.spec.logvar_max)
        return v.reshape(self.spec.data_shape) if v.numel() > 1 else v


def _read_checkpoint(path, weights):
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise VaeDistError(f"cannot open checkpoint '{path}': {e}") from None
    with f:
        if f.attrs.get("format", b"") not in (CHECKPOINT_FORMAT, CHECKPOINT_FORMAT.encode()):
            raise VaeDistError(f"'{path}' is not a vae_dist checkpoint (no format attribute '{CHECKPOINT_FORMAT}')")
        where = f"checkpoint '{path}'"
        text = f["config"][0]
        cfg = parse_config(text.decode() if isinstance(text, bytes) else str(text))
        model = f.attrs.get("model", "vae")
        model = model.decode() if isinstance(model, bytes) else str(model)
        if model not in FAMILIES:
            raise VaeDistError(f"{where} holds a model of kind '{model}' (attribute model); this package builds "
                               f"{', '.join(FAMILIES)}")
        if "data_shape" not in f:
            raise VaeDistError(f"{where} does not record its data shape (/data_shape): it was written by an older "
                               "vae_dist; resume it for one step with a current build to rewrite it")
        data_shape = tuple(int(v) for v in f["data_shape"][...])
        classes = int(f.attrs.get("classes", 0))
        has_ema = "ema" in f
        evaluated = f.attrs.get("eval_weights", "raw")
        evaluated = evaluated.decode() if isinstance(evaluated, bytes) else str(evaluated)
        if weights not in ("auto", "raw", "ema"):
            raise VaeDistError(f"weights='{weights}': use 'auto', 'raw' or 'ema'")
        chosen = evaluated if weights == "auto" else weights
        if chosen == "ema" and not has_ema:
            raise VaeDistError(f"{where} holds no moving average of the weights (its run had no --ema-decay); "
                               "use weights='raw'")
        group = f["ema"] if chosen == "ema" else f["params"]
        params = {name: group[name][...] for name in group}
        mean = f["standardize/mean"][...] if "standardize" in f else None
        std = f["standardize/std"][...] if "standardize" in f else None
        step = int(f.attrs.get("step", 0))
    return cfg, data_shape, classes, params, chosen, mean, std, step


def load(path, weights="auto"):
    """The model of a vae_dist checkpoint as a torch.nn.Module (VaeModel, in eval mode). weights: 'auto' (the ones
    the run evaluated, its --eval-weights), 'raw' (the optimizer's) or 'ema' (the moving average of --ema-decay),
    as vae_latent --weights. Raises VaeDistError naming what it cannot build: an unknown layer kind or option, a
    model family other than vae, iwae and btcvae, or a parameter missing from / extra to / shaped differently in the checkpoint."""
    cfg, data_shape, classes, params, chosen, mean, std, step = _read_checkpoint(path, weights)
    spec = ModelSpec(cfg, data_shape, classes, f"checkpoint '{path}'")
    if spec.standardize and mean is None:
        raise VaeDistError(f"checkpoint '{path}': the run trained with --standardize but holds no /standardize")
    model = VaeModel(spec, mean, std)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in params.items()}
    problems = [f"the checkpoint has no parameter '{k}' {want[k]}, which the model needs" for k in want if k not in have]
    problems += [f"the checkpoint's parameter '{k}' {have[k]} is not one of the model this package built from its "
                 "configuration (a layer kind or option it does not know?)" for k in have if k not in want]
    problems += [f"the parameter '{k}' is {have[k]} in the checkpoint but {want[k]} in the model" for k in want
                 if k in have and have[k] != want[k]]
    if problems:
        raise VaeDistError(f"checkpoint '{path}': " + "; ".join(problems))
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in params.items()})
    model.path, model.weights, model.step = path, chosen, step
    return model.eval()
