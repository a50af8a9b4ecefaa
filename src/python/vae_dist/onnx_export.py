"""vae_dist.export_onnx: the decoder (z -> the likelihood's mean, in the data's units) or the encoder
(x -> mu, logvar) of a loaded model as an ONNX file, through torch.onnx.export at opset ONNX_OPSET."""
import warnings

import torch
import torch.nn as nn

from .layers import VaeDistError

# The newest opset torch 1.13 exports and Debian's onnx 1.12 checks; onnxruntime reads it.
ONNX_OPSET = 17


class _Part(nn.Module):
    """One half of a VaeModel, the standardisation in double as the module does it (float32 would lose the
    digits of a feature whose offset dwarfs its spread), a conditional model's label as an int64 input [N],
    one-hot inside."""

    def __init__(self, model, part):
        super().__init__()
        self.model, self.part = model, part
        self.mean, self.std = model.std_mean, model.std_std
        self.register_buffer("classes", torch.arange(model.spec.classes), persistent=False)

    def onehot(self, labels):
        return (labels.reshape(-1, 1) == self.classes.reshape(1, -1)).to(torch.float32)

    def forward(self, first, labels=None):
        m = self.model
        onehot = self.onehot(labels) if m.spec.classes else None
        n = first.shape[0]
        if self.part == "decoder":
            out = m.decode_model_units(first, onehot)
            if self.mean is not None:
                out = (out.reshape(n, -1).double() * self.std + self.mean).float().reshape(out.shape)
            return out
        x = first
        if self.mean is not None:
            x = ((x.reshape(n, -1).double() - self.mean) / self.std).float().reshape(x.shape)
        return m.encode_model_units(x, onehot)


def export_onnx(model, path, part="decoder", batch=1):
    """Writes model's decoder (part="decoder": input z [N, *latent_shape] float32, output mean [N, *data_shape] in
    the data's units) or encoder (part="encoder": input x [N, *data_shape] float32 in the data's float units, uint8
    data divided by 255; outputs mu, logvar [N, *latent_shape], logvar clamped) to path. A conditional model has a
    second input, labels int64 [N]. N is a dynamic axis; batch sets the tracing batch. Returns path."""
    if part not in ("decoder", "encoder"):
        raise VaeDistError(f"part='{part}': use 'decoder' or 'encoder'")
    spec = model.spec
    wrapper = _Part(model, part).eval()
    first_shape = (batch,) + (spec.latent_shape if part == "decoder" else spec.data_shape)
    first_name = "z" if part == "decoder" else "x"
    args = [torch.zeros(first_shape)]
    names = [first_name]
    if spec.classes:
        args.append(torch.zeros(batch, dtype=torch.int64))
        names.append("labels")
    outputs = ["mean"] if part == "decoder" else ["mu", "logvar"]
    dynamic = {k: {0: "batch"} for k in names + outputs}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's notes on constant shapes: the batch axis is dynamic, every other size is the model's.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, tuple(args), path, input_names=names, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=ONNX_OPSET, do_constant_folding=True)
    return path
