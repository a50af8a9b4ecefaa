"""vae_dist.read_metrics: a run's metrics log (metrics.jsonl, else metrics.csv, as src/io/metrics_log.cpp writes
them) as a pandas DataFrame, or a list of dicts where pandas is not installed."""
import csv
import json
import math
import os

from .layers import VaeDistError

INTEGER_COLUMNS = ("epoch", "step", "samples", "active_units")


def _csv_value(key, text):
    if text == "":
        return None
    if key == "split":
        return text
    if key == "kl_per_dim":
        return [float(v) for v in text.split()]
    if key in INTEGER_COLUMNS:
        return int(text)
    return float(text)  # nan, inf as the CSV writes them


def read_rows(path):
    """The rows of one metrics file (.jsonl or .csv) as dicts; JSON nulls (non-finite values) become nan."""
    rows = []
    if path.endswith(".jsonl"):
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise VaeDistError(f"'{path}' line {i} is not a JSON object: {e}") from None
                rows.append({k: (math.nan if v is None and k not in ("active_units", "kl_per_dim") else v)
                             for k, v in row.items()})
    else:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                rows.append({k: _csv_value(k, v) for k, v in row.items()})
    return rows


def read_metrics(run_dir):
    """The metrics of a run: run_dir/metrics.jsonl (or metrics.csv when there is no JSON-lines file), or a path to
    either file. One row per train/val/test/test_iw record, columns split, epoch, step, samples, loss, recon, kl,
    lr, images_per_s, active_units, kl_per_dim (a list). A pandas DataFrame if pandas imports, else a list of
    dicts."""
    if os.path.isdir(run_dir):
        path = os.path.join(run_dir, "metrics.jsonl")
        if not os.path.exists(path):
            path = os.path.join(run_dir, "metrics.csv")
    else:
        path = run_dir
    if not os.path.exists(path):
        raise VaeDistError(f"no metrics log at '{path}': give a run directory (vae_dist --out) or its "
                           "metrics.csv / metrics.jsonl")
    rows = read_rows(path)
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows)
