"""steplab's torch optimizers under DistributedDataParallel, FSDP2 (``fully_shard``) and
ZeroRedundancyOptimizer: 2 CPU processes (gloo, 127.0.0.1) end with the same parameters on
both ranks, and the same as one process trained on the same global batches; the
single-pass step (``fused=True``: the compiled rule, on each rank, and on FSDP2's local
shards) as well as the default multi-tensor step.

The workers run as separate Python processes started from a script (not
multiprocessing.spawn, which would have to re-import this test module by name).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import steplab.torch as st  # noqa: E402

WORLD_SIZE = 2
STEPS = 25
GLOBAL_BATCH = 16

# Shared by the workers and the single-process reference: model, data, optimizers.
COMMON = textwrap.dedent(
    f"""
    import torch
    import steplab.torch as st

    STEPS, GLOBAL_BATCH = {STEPS}, {GLOBAL_BATCH}
    OPTIMIZERS = {{
        "adam": lambda ps: st.Adam(ps, lr=0.01, weight_decay=1e-3),
        "adam-fused": lambda ps: st.Adam(ps, lr=0.01, weight_decay=1e-3, fused=True),
        "rmsprop": lambda ps: st.RMSProp.like("torch", ps, lr=0.01, centered=True, momentum=0.5),
        "nadam": lambda ps: st.Nadam(ps),
    }}

    def make_model():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(5, 12), torch.nn.Tanh(), torch.nn.Linear(12, 1)
        ).double()

    def global_batches():
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(STEPS, GLOBAL_BATCH, 5, generator=gen, dtype=torch.float64)
        y = torch.randn(STEPS, GLOBAL_BATCH, 1, generator=gen, dtype=torch.float64)
        return x, y

    def train(model, optimizer, batches):
        # batches: (x, y) per step; the loss is the mean over the batch, so DDP's averaged
        # gradient over equal shards equals the gradient of the global batch's mean loss.
        for x, y in batches:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        # FSDP's parameters are DTensor shards: gather the full tensors (on every rank)
        return [getattr(p, "full_tensor", lambda p=p: p)().detach().clone()
                for p in model.parameters()]
    """
)

WORKER = COMMON + textwrap.dedent(
    """
    import datetime, os, sys
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel

    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),  # a lost peer fails the test, never hangs it
    )
    x, y = global_batches()
    shard = GLOBAL_BATCH // world  # each rank takes its slice of every global batch
    mine = [(x[k, rank * shard:(rank + 1) * shard], y[k, rank * shard:(rank + 1) * shard])
            for k in range(STEPS)]
    results = {}
    for name, make in OPTIMIZERS.items():
        model = DistributedDataParallel(make_model())
        results[f"{name} DDP"] = train(model, make(model.parameters()), mine)
    for name in ("adam", "adam-fused", "nadam"):
        model = make_model()
        fully_shard(model)  # FSDP2: each rank holds and steps half of every parameter
        results[f"{name} FSDP"] = train(model, OPTIMIZERS[name](model.parameters()), mine)
    model = DistributedDataParallel(make_model())  # DDP + optimizer state sharded by ZeRO
    optimizer = ZeroRedundancyOptimizer(
        model.parameters(), optimizer_class=st.Adam, lr=0.01, weight_decay=1e-3
    )
    results["adam ZeRO"] = train(model, optimizer, mine)
    torch.save(results, f"{out}.{rank}")  # every rank's, to compare the replicas
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch built without torch.distributed")
def test_ddp_on_two_cpu_processes_equals_single_process(tmp_path):
    script, out = tmp_path / "worker.py", tmp_path / "ddp_params.pt"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # keep gloo on the loopback interface
    port = str(_free_port())
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(WORLD_SIZE), port, str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(WORLD_SIZE)
    ]
    logs = []
    for worker in workers:
        try:
            logs.append(worker.communicate(timeout=150)[0])
        except subprocess.TimeoutExpired:
            for w in workers:
                w.kill()
            raise
    assert all(w.returncode == 0 for w in workers), "\n".join(logs)
    ranks = [torch.load(f"{out}.{rank}") for rank in range(WORLD_SIZE)]
    distributed = ranks[0]
    for run, params in distributed.items():  # the replicas (FSDP: the gathered tensors)
        for other in ranks[1:]:
            for p, q in zip(params, other[run], strict=True):
                assert torch.equal(p, q), f"{run}: the ranks' parameters differ"

    namespace: dict = {}
    exec(COMMON, namespace)  # the very same model, data and optimizers, in this process
    x, y = namespace["global_batches"]()
    batches = [(x[k], y[k]) for k in range(STEPS)]
    start = [p.detach().clone() for p in namespace["make_model"]().parameters()]
    single = {}
    for name, make in namespace["OPTIMIZERS"].items():
        model = namespace["make_model"]()
        assert isinstance(make(model.parameters()), st.TorchOptimizer)
        single[name] = namespace["train"](model, make(model.parameters()), batches)
        assert (single[name][0] - start[0]).abs().max() > 1e-3  # training moved the weights
    assert sorted(distributed) == sorted(
        [f"{n} DDP" for n in single] + ["adam FSDP", "adam-fused FSDP", "nadam FSDP", "adam ZeRO"]
    )
    for run, params in distributed.items():
        reference = single[run.split()[0]]
        for p, q in zip(params, reference, strict=True):
            torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12, msg=run)
    # and the single-pass step trains as the multi-tensor step does
    for p, q in zip(single["adam-fused"], single["adam"], strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
