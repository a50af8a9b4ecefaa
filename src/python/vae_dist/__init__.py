"""vae_dist in Python: a trained checkpoint as a torch.nn.Module (load), a run's metrics (read_metrics) and ONNX
export of the encoder or decoder (export_onnx). Pure Python over torch, h5py and numpy; see docs/python.md."""
from .layers import VaeDistError
from .metrics import read_metrics
from .model import VaeModel, load
from .onnx_export import ONNX_OPSET, export_onnx

__all__ = ["load", "read_metrics", "export_onnx", "VaeModel", "VaeDistError", "ONNX_OPSET"]
