"""Training-step throughput of the reference VAE under DistributedDataParallel (gloo, 127.0.0.1 only);
--model mlp|conv and --conditional select the model as in pytorch_vae.py.
Spawns --world-size processes with torch.multiprocessing; each rank trains batch --batch-size on its own in-memory data."""
import argparse
import os
import resource
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from bench_pytorch import add_common_args, describe, setup
from pytorch_vae import make_optimizer, train_step


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, a, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # keep gloo traffic on loopback
    torch.set_num_threads(a.threads_per_rank)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=a.world_size)
    torch.manual_seed(a.seed)  # DDP broadcasts rank 0's parameters anyway
    net, batches, cbatches = setup(a, a.seed + 7919 * rank)
    model = DDP(net)
    opt = make_optimizer(model, a.lr)

    def labels(k):
        return None if cbatches is None else cbatches[k % a.nbatches]

    k = 0
    for _ in range(a.warmup):
        train_step(model, opt, batches[k % a.nbatches], cb=labels(k))
        k += 1
    rep_dt = []
    for _ in range(a.reps):
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            train_step(model, opt, batches[k % a.nbatches], cb=labels(k))
            k += 1
        dt = time.perf_counter() - t0
        rep_dt.append(dt)
    dist.barrier()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # ru_maxrss is KiB on Linux
    # gather per-rank timings and RSS on every rank (all_gather of a small float tensor)
    mine = torch.tensor(rep_dt + [rss_mb], dtype=torch.float64)
    allv = [torch.zeros_like(mine) for _ in range(a.world_size)]
    dist.all_gather(allv, mine)
    if rank == 0:
        per_rep_max = [max(float(v[r]) for v in allv) for r in range(a.reps)]  # slowest rank bounds the step
        agg = [a.world_size * a.steps * a.batch_size / dt for dt in per_rep_max]
        print(f"ddp_pytorch: torch {torch.__version__} backend=gloo world_size={a.world_size} "
              f"threads_per_rank={torch.get_num_threads()} batch_per_rank={a.batch_size} "
              f"{describe(net, a)} loadavg_1min_end={os.getloadavg()[0]:.2f}")
        print("reps aggregate images_per_s: " + " ".join(f"{v:.1f}" for v in agg))
        print(f"ms_per_step_median={statistics.median(per_rep_max) / a.steps * 1e3:.4f}")
        for r, v in enumerate(allv):
            print(f"rank={r} peak_rss_mb={float(v[-1]):.1f}")
        print(f"images_per_s={statistics.median(agg):.1f} "
              f"per_rank_images_per_s={statistics.median(agg) / a.world_size:.1f}", flush=True)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    add_common_args(p)
    p.add_argument("--world-size", type=int, default=2, help="number of ranks P")
    p.add_argument("--threads-per-rank", type=int, default=1, help="torch.set_num_threads in each rank")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    a = p.parse_args()
    port = a.port or free_port()
    mp.spawn(worker, args=(a, port), nprocs=a.world_size, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
