"""Would batched ensembles keep grades the same, and would they pay? Measured, not assumed.

Several submissions that share one traced graph could train as one ensemble:
their parameters stacked, the replayed forward run under `torch.func.vmap`
(`functional_call` over the stacked tensors), every member seeing the same
batches. A grade must not depend on who else was in the ensemble (DESIGN.md
invariant 5), so this prints, for the lab net replayed as grading replays it:

    (a) bitwise: a member's weights after the steps, alone with a twin (K = 2) against
        inside ensembles of other sizes and positions, and against plain unbatched
        training (K = 1 through vmap, and no vmap at all); with SGD (momentum), Adam and
        AdamW, and for a net with batch norm (running statistics updated under vmap) and
        dropout (one mask for all members: `randomness="same"`);
    (b) time: an ensemble of K against K separate runs, K = 2, 4, 8 (16 on a GPU).

On CUDA it runs in deterministic mode (cuDNN may pick other kernels for other K).

    python benchmarks/ensembles.py --device cpu --steps 20
"""
from __future__ import annotations

import argparse
import copy
import datetime
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader.worker.export import export_model  # noqa: E402
from grader.worker.replay import load_model  # noqa: E402
from grader.worker.train import make_deterministic  # noqa: E402

SOLUTION = REPO / "solutions" / "cifar10_cnn" / "model.py"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", type=Path)
    return p.parse_args()


def replayed(seed: int) -> torch.nn.Module:
    """The lab net built with `seed`, exported and replayed as the trainer gets it."""
    spec = importlib.util.spec_from_file_location("lab", SOLUTION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(seed)
    folder = Path(tempfile.mkdtemp(prefix="ensemble-"))
    export_model(module.Model(), folder, SOLUTION.parent, torch.randn(2, 3, 32, 32))
    return load_model(folder)


def batches(args, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(args.batch_size, 3, 32, 32, generator=gen).to(device),
             torch.randint(0, 10, (args.batch_size,), generator=gen).to(device))
            for _ in range(args.steps)]


OPTIMIZERS = {"sgd": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
              "adam": lambda p: torch.optim.Adam(p, lr=0.003),
              "adamw": lambda p: torch.optim.AdamW(p, lr=0.003, weight_decay=0.01)}


class Normed(torch.nn.Module):
    """Batch norm and dropout: state updated in place, and random numbers drawn."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.norm = torch.nn.BatchNorm2d(8)
        self.drop = torch.nn.Dropout(0.3)
        self.fc = torch.nn.Linear(8 * 30 * 30, 10)

    def forward(self, x):
        return self.fc(self.drop(torch.flatten(torch.relu(self.norm(self.conv(x))), 1)))


def normed(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return Normed()


def ensemble(members: list[torch.nn.Module], data, device, optimizer: str = "sgd"
             ) -> dict[str, torch.Tensor]:
    """Train the members as one ensemble; the stacked weights (and buffers) afterwards."""
    names = [n for n, _ in members[0].named_parameters()]
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in members])
              .to(device).requires_grad_() for n in names}
    buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in members]).to(device)
               for n, _ in members[0].named_buffers()}
    base = copy.deepcopy(members[0]).to("meta")
    forward = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None),
                   randomness="same")
    step = OPTIMIZERS[optimizer](list(params.values()))
    torch.manual_seed(0)
    for x, y in data:
        out = forward(params, buffers, x)
        loss = sum(F.cross_entropy(out[k], y) for k in range(len(members)))
        step.zero_grad()
        loss.backward()
        step.step()
    return {**{n: p.detach() for n, p in params.items()}, **buffers}


def single(model: torch.nn.Module, data, device) -> dict[str, torch.Tensor]:
    model = copy.deepcopy(model).to(device)
    optimizer = OPTIMIZERS["sgd"](model.parameters())
    torch.manual_seed(0)
    for x, y in data:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {n: p.detach().unsqueeze(0) for n, p in model.named_parameters()}


def member(weights: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    return {n: w[k] for n, w in weights.items()}


def max_difference(a: dict, b: dict) -> float:
    return max((a[n] - b[n]).abs().max().item() for n in a)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        make_deterministic()
    models = [replayed(seed) for seed in range(16)]
    data = batches(args, device)
    twin = member(ensemble([models[3], models[3]], data, device), 0)
    bitwise = {
        "K=2 with another, position 1": max_difference(
            member(ensemble([models[5], models[3]], data, device), 1), twin),
        "K=8, position 3": max_difference(member(ensemble(models[:8], data, device), 3), twin),
        "K=3, position 0": max_difference(
            member(ensemble([models[3], models[0], models[1]], data, device), 0), twin),
        "K=1 (vmap)": max_difference(member(ensemble([models[3]], data, device), 0), twin),
        "no vmap": max_difference(member(single(models[3], data, device), 0), twin),
    }
    for optimizer in ("adam", "adamw"):
        alone = member(ensemble([models[3], models[3]], data, device, optimizer), 0)
        bitwise[f"{optimizer}, K=8, position 3"] = max_difference(
            member(ensemble(models[:8], data, device, optimizer), 3), alone)
    nets = [normed(seed) for seed in range(4)]
    alone = member(ensemble([nets[2], nets[2]], data, device, "adam"), 0)
    bitwise["batch norm + dropout, adam, K=4, position 2"] = max_difference(
        member(ensemble(nets, data, device, "adam"), 2), alone)
    speed = {}
    for k in (2, 4, 8, 16) if device.type == "cuda" else (2, 4, 8):
        batched = timed(lambda: ensemble(models[:k], data, device), device)
        apart = timed(lambda: [single(m, data, device) for m in models[:k]], device)
        speed[k] = {"ensemble_s": batched, "separate_s": apart, "speedup": apart / batched}
    hardware = torch.cuda.get_device_name() if device.type == "cuda" else \
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads"
    print(f"# ensembles, {datetime.date.today()}, {hardware}, torch {torch.__version__}, "
          f"{args.steps} steps of batch {args.batch_size}, load average "
          f"{os.getloadavg()[0]:.1f}")
    print("(a) a member's weights against the same member trained with a twin (K = 2):")
    for label, diff in bitwise.items():
        print(f"    {label:44s} max difference {diff:.3g}" + ("  (bitwise equal)" if diff == 0
                                                              else ""))
    print("(b) one ensemble against separate runs:")
    for k, fig in speed.items():
        print(f"    K={k:2d}: ensemble {fig['ensemble_s']:.2f} s, {k} separate runs "
              f"{fig['separate_s']:.2f} s: {fig['speedup']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"date": datetime.date.today().isoformat(),
                                         "hardware": hardware, "torch": torch.__version__,
                                         "python": platform.python_version(),
                                         "steps": args.steps, "bitwise": bitwise,
                                         "speed": speed}, indent=2))


if __name__ == "__main__":
    main()
