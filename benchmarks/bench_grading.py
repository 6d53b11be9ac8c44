"""Where grading time goes, measured in one run on one machine, with the ratios between them.

    (a) the lab's own training pipeline: PIL images, ToTensor/Normalize, a DataLoader
        (batch 4 as in the lab, and batch 128), one epoch of the CIFAR-10 lab net;
    (b) the grader's trainer for one submission: `grade SOLUTION` end to end (start-up,
        shapes, params, training, scoring), with the training time it reports;
    (c) `grade batch` over N copies of the solution with the spec's training, warm workers:
        the whole batch against the trainer's own training time (the sum of every
        submission's `train_seconds`, spread over the --jobs slots);
    (d) `grade SOLUTION --only shapes,params`: wall time of one command, start-up included,
        next to the floor any fresh worker pays: `python -c "import torch"`;
    (e) `grade batch` over N copies, shapes+params, `--workers fresh` (the baseline: two
        new sandboxed workers per submission) and `--workers warm` (fork server and warm
        trainer), alternating, per submission and as a share of a bare `import torch`;
    (f) the training batch of (c) again with the other kind of training: stepped one model
        at a time (`--ensembles never`) against batched ensembles (`--ensembles always`);
        on a GPU (c) is the ensembles' run, on a CPU the one-at-a-time run.

On a GPU box run it as is (full sizes); on a CPU the batches are smaller (24
copies without training, 8 with the spec's recipe) so it finishes in minutes. Every figure is printed, with the date, the hardware and the
machine's load average (a shared machine slows every figure, not the same-run ratios).

    python benchmarks/bench_grading.py --device cuda --json figures.json
    python benchmarks/bench_grading.py --device cpu --copies 24 --jobs 2
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SOLUTION = REPO / "solutions" / "cifar10_cnn" / "model.py"
SPEC = REPO / "assignments" / "cifar10_cnn" / "spec.yaml"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--copies", type=int, help="submissions in the batches (GPU 200, CPU 24)")
    p.add_argument("--train-copies", type=int, help="submissions in the training batch (c) "
                   "(GPU 200, CPU 8)")
    p.add_argument("--runs", type=int, default=3, help="runs of each batch in (e)")
    p.add_argument("--skip-lab", action="store_true", help="leave out (a)")
    p.add_argument("--epochs", type=int,
                   help="epochs per submission (default 10, as issue 12 measures; the spec has 20)")
    p.add_argument("--batch-size", type=int, help="grader's batch size (default: the spec's)")
    p.add_argument("--train-images", type=int, help="training images (default: all there are)")
    p.add_argument("--lab-images", type=int, help="images for the lab's epoch (default: as "
                                                  "--train-images); times are scaled to 50,000")
    p.add_argument("--jobs", type=int, help="grade batch --jobs (default: one per CPU core)")
    p.add_argument("--data-dir", type=Path, help="dataset folder (default: $GRADER_DATA)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args()


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Full sizes on a GPU, small ones on a CPU, anything given on the command line wins."""
    gpu = args.device == "cuda" or (args.device == "auto" and has_cuda())
    big = {"copies": 200, "train_copies": 200, "epochs": 10, "train_images": None}
    small = {"copies": 24, "train_copies": 8, "epochs": 10, "train_images": None}  # spec recipe
    for key, value in (big if gpu else small).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.device = "cuda" if gpu else "cpu"
    args.jobs = args.jobs or os.cpu_count() or 1
    return args


# ---------------------------------------------------------------- set-up

def make_assignment(work: Path, args: argparse.Namespace) -> Path:
    """The lab spec with this run's epochs, batch size and image count.

    Its dataset stays `cifar10`: the full CIFAR-10 where the data folder has it,
    else the grader's fallback, the CIFAR-10 subset .npz.
    """
    spec = yaml.safe_load(SPEC.read_text())
    spec["training"]["epochs"] = args.epochs
    if args.batch_size:
        spec["training"]["batch_size"] = args.batch_size
    if args.train_images:
        spec["training"]["max_train"] = args.train_images
    folder = work / "assignment" / "cifar10_cnn"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return folder


def make_copies(work: Path, n: int) -> Path:
    subs = work / "submissions"
    for i in range(n):
        (subs / f"student{i:03d}").mkdir(parents=True)
        shutil.copy(SOLUTION, subs / f"student{i:03d}" / "model.py")
    return subs


def prepare_data(args: argparse.Namespace, data_dir: Path):
    """Convert the dataset into the grader's cache before timing: that happens once per course."""
    from grader.data import prepare

    return prepare("cifar10", data_dir, REPO, args.train_images)


# ---------------------------------------------------------------- (a) the lab's pipeline

def lab_epoch(files: dict[str, str], batch_size: int, images: int, device: str) -> float:
    """Seconds for one epoch of the lab's loop: PIL -> ToTensor -> Normalize -> DataLoader."""
    import numpy as np
    import torch
    import torchvision.transforms as T
    from PIL import Image

    x = np.load(files["train_x"])[:images].transpose(0, 2, 3, 1)  # HWC, as torchvision keeps it
    y = np.load(files["train_y"])[:images]
    transform = T.Compose([T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

    class LabSet(torch.utils.data.Dataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return transform(Image.fromarray(x[i])), int(y[i])

    loader = torch.utils.data.DataLoader(LabSet(), batch_size=batch_size, shuffle=True,
                                         num_workers=2)
    net = load_solution().to(device)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    start = time.perf_counter()
    running = 0.0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
        running += loss.item()
    return time.perf_counter() - start


def load_solution():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lab_solution", SOLUTION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Model()


# ---------------------------------------------------------------- (b), (c), (d): the grader

def run_grade(*args: str | Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "grader", *map(str, args)], capture_output=True,
                          text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"grade {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, proc


def one_submission(assignment: Path, device: str, env: dict[str, str]) -> dict:
    wall, proc = run_grade(SOLUTION.parent, "--assignment", assignment, "--format", "json",
                           "--device", device, env=env)
    acc = next(c for c in json.loads(proc.stdout)["checks"] if c["kind"] == "accuracy")
    return {"wall_s": wall, "train_s": acc["details"]["train_seconds"],
            "accuracy": acc["details"]["accuracy"], "device": acc["details"]["device"]}


def batch(subs: Path, assignment: Path, out: Path, args, env: dict[str, str], *extra: str
          ) -> float:
    shutil.rmtree(out, ignore_errors=True)
    wall, _ = run_grade("batch", subs, "--assignment", assignment, "--out", out, "--jobs",
                        str(args.jobs), "--device", args.device, *extra, env=env)
    return wall


def training_batch(subs: Path, assignment: Path, out: Path, args, env: dict[str, str],
                   *extra: str) -> dict:
    """(c) and (f): the whole batch, and the training time every submission reported."""
    wall = batch(subs, assignment, out, args, env, "--workers", "warm", *extra)
    train = [next(c for c in json.loads((folder / "result.json").read_text())["checks"]
                  if c["kind"] == "accuracy")["details"]["train_seconds"]
             for folder in sorted(out.iterdir()) if (folder / "result.json").is_file()]
    return {"wall_s": wall, "train_s": sum(train), "graded": len(train)}


def shapes_batches(subs: Path, assignment: Path, out: Path, args, env: dict[str, str]
                   ) -> dict[str, float]:
    """(e): median wall time of the shapes+params batch per worker kind, taking turns."""
    times: dict[str, list[float]] = {"fresh": [], "warm": []}
    for _ in range(args.runs):
        for workers in times:
            times[workers].append(batch(subs, assignment, out, args, env, "--workers", workers,
                                        "--only", "shapes,params"))
    return {workers: statistics.median(t) for workers, t in times.items()}


def import_torch(runs: int = 5) -> float:
    """Median wall time of a fresh Python importing torch: what every worker pays first."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def shapes_params(assignment: Path, env: dict[str, str], runs: int = 5) -> float:
    """Median wall time of the whole command, Python and torch start-up included."""
    return statistics.median(
        run_grade(SOLUTION.parent, "--assignment", assignment, "--only", "shapes,params",
                  "--format", "json", env=env)[0] for _ in range(runs))


# ---------------------------------------------------------------- report

def hardware(device: str) -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    gpu = f", {torch.cuda.get_device_name()}" if device == "cuda" else ""
    return f"{os.cpu_count()} x {cpu}{gpu}; torch {torch.__version__}, Python {platform.python_version()}"


def report(fig: dict, args) -> str:
    per50k = 50000 / fig["train_images"]
    grader_epoch = fig["one"]["train_s"] / args.epochs
    torch_s = fig["import_torch_s"]
    lines = [
        f"date: {fig['date']}", f"hardware: {fig['hardware']}",
        f"load average before / after: {fig['load_before']:.1f} / {fig['load_after']:.1f} "
        f"(on {os.cpu_count()} CPUs)",
        f"data: {fig['dataset']}, {fig['train_images']} training images; "
        f"{args.epochs} epoch(s) per submission, device {args.device}",
        "",
    ]
    if "lab4_s" in fig:
        lines += [
            f"(a) lab pipeline, batch 4:    {fig['lab4_s']:8.2f} s/epoch  "
            f"({fig['lab4_s'] * 50000 / fig['lab_images']:.1f} s per 50k images)",
            f"(a) lab pipeline, batch 128:  {fig['lab128_s']:8.2f} s/epoch  "
            f"({fig['lab128_s'] * 50000 / fig['lab_images']:.1f} s per 50k images)"]
    c, e = fig["training_batch"], fig["shapes_batch"]
    lines += [
        f"(b) grader trainer:           {grader_epoch:8.2f} s/epoch  "
        f"({grader_epoch * per50k:.2f} s per 50k images), accuracy {fig['one']['accuracy']:.3f}",
        f"(b) one submission end to end: {fig['one']['wall_s']:7.2f} s wall, of which "
        f"{fig['one']['wall_s'] - fig['one']['train_s']:.2f} s is not training",
        f"(c) grade batch, {args.train_copies} copies with training, --jobs {args.jobs}, warm: "
        f"{c['wall_s']:.2f} s wall; training {c['train_s']:.2f} s summed over submissions",
        f"(d) shapes+params, one submission: {fig['shapes_params_s']:.2f} s wall (median of 5); "
        f"a bare `import torch` takes {torch_s:.2f} s (median of 5)",
        f"(e) grade batch, {args.copies} copies, shapes+params, --jobs {args.jobs} (median of "
        f"{args.runs}): fresh {e['fresh']:.2f} s ({e['fresh'] / args.copies:.3f} s per "
        f"submission), warm {e['warm']:.2f} s ({e['warm'] / args.copies:.3f} s per submission)",
        "",
        "ratios (same run):",
        f"  (e) per submission / bare import torch: fresh {e['fresh'] / args.copies / torch_s:.2f}x, "
        f"warm {e['warm'] / args.copies / torch_s:.2f}x (target <= 0.35x)",
        f"  (e) warm / fresh batch: {e['warm'] / e['fresh']:.2f}x",
        f"  (c) batch wall x jobs / summed training time: "
        f"{c['wall_s'] * args.jobs / c['train_s']:.2f}x (target <= 1.3x); batch wall / summed "
        f"training time: {c['wall_s'] / c['train_s']:.2f}x",
        f"  one submission alone / per submission in the training batch: "
        f"{fig['one']['wall_s'] / (c['wall_s'] / args.train_copies):.1f}x",
        f"  200 submissions at the training batch's rate: "
        f"{c['wall_s'] / args.train_copies * 200:.0f} s",
    ]
    stacked, apart = ((c, fig["training_batch_never"]) if "training_batch_never" in fig
                      else (fig["training_batch_always"], c))
    lines += [
        f"(f) the training batch stepped one model at a time: {apart['wall_s']:.2f} s wall, "
        f"training {apart['train_s']:.2f} s; as batched ensembles: {stacked['wall_s']:.2f} s "
        f"wall, training {stacked['train_s'] / max(1, args.train_copies):.2f} s per submission "
        f"(an ensemble's time is reported by each member)",
        f"  (f) one at a time / ensembles, batch wall: {apart['wall_s'] / stacked['wall_s']:.2f}x",
    ]
    if "lab4_s" in fig:
        lines += [
            f"  lab batch 4 / grader epoch:    "
            f"{fig['lab4_s'] / fig['lab_images'] / (grader_epoch / fig['train_images']):8.1f}x",
            f"  lab batch 128 / grader epoch:  "
            f"{fig['lab128_s'] / fig['lab_images'] / (grader_epoch / fig['train_images']):8.1f}x"]
    return "\n".join(lines)


def main() -> None:
    args = defaults(parse_args())
    data_dir = (args.data_dir or Path(os.environ.get("GRADER_DATA") or
                                      REPO.parent / "shared" / "data")).resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    env = {**os.environ, "GRADER_CACHE": str(work / "cache"), "GRADER_DATA": str(data_dir),
           "PYTHONPATH": str(REPO)}
    os.environ.update(GRADER_CACHE=env["GRADER_CACHE"])
    try:
        assignment = make_assignment(work, args)
        prepared = prepare_data(args, data_dir)
        lab_images = min(args.lab_images or prepared.n_train, prepared.n_train)
        fig = {"date": datetime.date.today().isoformat(), "hardware": hardware(args.device),
               "dataset": f"{prepared.name} ({prepared.variant})", "train_images": prepared.n_train,
               "lab_images": lab_images}
        fig["load_before"] = os.getloadavg()[0]
        fig["import_torch_s"] = import_torch()
        fig["shapes_params_s"] = shapes_params(assignment, env)
        fig["one"] = one_submission(assignment, args.device, env)
        fig["shapes_batch"] = shapes_batches(make_copies(work, args.copies), assignment,
                                             work / "out", args, env)
        trainees = make_copies(work / "training", args.train_copies)
        fig["training_batch"] = training_batch(trainees, assignment, work / "out", args, env)
        other = "never" if args.device == "cuda" else "always"
        fig["training_batch_" + other] = training_batch(trainees, assignment, work / "out",
                                                        args, env, "--ensembles", other)
        if not args.skip_lab:
            for bs in (4, 128):
                fig[f"lab{bs}_s"] = lab_epoch(prepared.worker_files, bs, lab_images, args.device)
        fig["load_after"] = os.getloadavg()[0]
        print(report(fig, args))
        if args.json:
            args.json.write_text(json.dumps({**fig, "args": {k: str(v) for k, v in
                                                              vars(args).items()}}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
