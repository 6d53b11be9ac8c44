"""Try a training recipe on the LeNet-5 reference, exactly as grading trains it.

Each seed is one `grade solutions/lenet5_mnist --only accuracy` of a copy of the
spec whose `training:` section is replaced by the recipe given here (YAML or
JSON), so the accuracy and the training seconds printed are the ones a grade
would report: export, replay, the device pipeline, predictions.

    python benchmarks/lenet_recipe.py --seeds 0,1,2 \\
        '{epochs: 3, batch_size: 128, optimizer: {name: adam, lr: 0.004},
          scheduler: {name: onecycle, max_lr: 0.004}}'

Keys not given keep the spec's values (dataset, normalize, pad).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "assignments" / "lenet5_mnist" / "spec.yaml"
SOLUTION = REPO / "solutions" / "lenet5_mnist"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", nargs="?", default="{}", help="training keys to override (YAML)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, help="append the figures here, one JSON line per run")
    return p.parse_args()


def assignment(work: Path, recipe: dict) -> Path:
    spec = yaml.safe_load(SPEC.read_text())
    spec["training"].update(recipe)
    folder = work / "lenet5_mnist"
    folder.mkdir()
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return folder


def train_once(folder: Path, seed: int, device: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "grader", str(SOLUTION), "--assignment",
                          str(folder), "--only", "accuracy", "--seed", str(seed), "--device",
                          device, "--format", "json", "--timeout", "3600"],
                         capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    if run.returncode not in (0, 1):
        sys.exit(f"grading failed ({run.returncode}):\n{run.stderr}")
    check = next(c for c in json.loads(run.stdout)["checks"] if c["id"] == "accuracy")
    details = check["details"]
    if "accuracy" not in details:
        sys.exit(f"no accuracy measured (seed {seed}): {check['feedback']}")
    return {"seed": seed, "accuracy": details["accuracy"],
            "train_seconds": details["train_seconds"]}


def main() -> None:
    args = parse_args()
    recipe = yaml.safe_load(args.recipe) or {}
    with tempfile.TemporaryDirectory(prefix="lenet-recipe-") as work:
        folder = assignment(Path(work), recipe)
        runs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            runs.append(train_once(folder, seed, args.device))
            print(f"seed {seed}: {runs[-1]['accuracy']:.4f} in {runs[-1]['train_seconds']:.1f} s "
                  "training", flush=True)
    accuracies = [r["accuracy"] for r in runs]
    print(f"recipe {json.dumps(recipe)}: worst {min(accuracies):.4f}, median training "
          f"{statistics.median(r['train_seconds'] for r in runs):.1f} s, load average "
          f"{os.getloadavg()[0]:.1f}")
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps({"date": datetime.datetime.now().isoformat(timespec="seconds"),
                                "recipe": recipe, "runs": runs,
                                "load": os.getloadavg()[0]}) + "\n")


if __name__ == "__main__":
    main()
