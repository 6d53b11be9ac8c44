"""Batched ensembles (grader/worker/members.py): stepping several models as one never
changes a grade.

A model graded alone on the batched path trains with a twin; these tests check that a
member of any ensemble ends bitwise where it ends alone (curve, predictions, accuracy on
training images), that a member that diverges or fails stops alone, that models which
cannot be stacked train as themselves, and that `grade batch --ensembles always` gives
every student the result `grade` gives them alone.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from conftest import (GREEDY, LAB, SLOW, SOLUTIONS, alive, banded_images, descendants, grade,
                      tiny_assignment)
from grader.worker import members as members_mod
from grader.worker.train import train_and_predict, train_together

pytestmark = pytest.mark.usefixtures("one_thread")
LENET = SOLUTIONS / "lenet5_mnist" / "model.py"
RECIPE = {"epochs": 2, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.01},
          "scheduler": None, "mean": [0.5], "std": [0.25], "pad": 0, "hflip": True,
          "crop_padding": 2}


class Net(nn.Module):
    """Batch norm (buffers updated in place) and dropout (random masks): the state and the
    randomness a stacked step must keep apart per member."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(self.drop(torch.flatten(F.relu(self.norm(self.conv(x))), 1)))


def alone(model: nn.Module, **kw) -> dict:
    return train_and_predict(model, RECIPE, banded_images(), 0, 3, ensembles=True, **kw)


def together(models: list[nn.Module]) -> list:
    return train_together(models, RECIPE, banded_images(), 0, 3, [lambda _: None] * len(models),
                          ensembles=True)


def same_run(a: dict, b: dict) -> bool:
    return (a["curve"] == b["curve"] and a["stopped"] == b["stopped"]
            and np.array_equal(a["predictions"], b["predictions"])
            and a["final_train_accuracy"] == b["final_train_accuracy"])


def test_a_member_ends_bitwise_where_it_ends_alone_whoever_else_is_in_the_ensemble():
    lone = alone(Net(3))
    assert lone["ensemble"] == 2          # alone on the batched path: with its twin
    for company, position in (([3, 5], 0), ([5, 0, 3, 1], 2), ([0, 3, 0, 4, 2, 1, 5, 6], 1)):
        outcome = together([Net(seed) for seed in company])[position]
        assert outcome["ensemble"] == len(company)
        assert same_run(outcome, lone), company


@pytest.mark.gpu
def test_on_a_gpu_a_member_ends_bitwise_where_it_ends_alone():
    """Deterministic kernels: cuDNN must not pick another algorithm for another ensemble size."""
    data = {k: v.cuda() for k, v in banded_images().items()}
    lone = train_and_predict(Net(3), RECIPE, data, 0, 3, ensembles=True)
    for company, position in (([3, 5], 0), ([5, 0, 3, 1, 2, 4, 6, 7, 8, 9, 10, 11], 2)):
        outcome = train_together([Net(seed) for seed in company], RECIPE, data, 0, 3,
                                 [lambda _: None] * len(company), ensembles=True)[position]
        assert same_run(outcome, lone), company


def test_the_batched_path_is_not_the_plain_one():
    """Why a lone model needs its twin: stepped unbatched, the same model ends elsewhere in
    the last bits, so the path must not depend on the company."""
    plain = train_and_predict(Net(3), RECIPE, banded_images(), 0, 3)
    assert plain["ensemble"] == 0
    assert plain["curve"] != alone(Net(3))["curve"]


class Diverges(Net):
    def __init__(self, seed: int):
        super().__init__(seed)
        with torch.no_grad():
            self.fc.bias.fill_(float("nan"))


def test_a_member_whose_loss_is_not_finite_stops_alone_and_the_others_go_on():
    outcomes = together([Net(1), Diverges(2), Net(4)])
    assert outcomes[1]["stopped"] == alone(Diverges(2))["stopped"] == \
        "the loss became nan at epoch 1, step 1"
    assert outcomes[1]["curve"] == []
    assert same_run(outcomes[0], alone(Net(1))) and same_run(outcomes[2], alone(Net(4)))
    assert len(outcomes[2]["curve"]) == RECIPE["epochs"]


def replayed_lenet(seed: int, folder) -> nn.Module:
    """The LeNet-5 reference as the trainer gets it: C3 writes its weights into a kernel
    through a boolean connection table (`kernel[links] = weight`), which vmap can only do
    with a table every member shares."""
    import importlib.util

    from grader.worker.export import export_model
    from grader.worker.replay import load_model

    spec = importlib.util.spec_from_file_location("lenet", LENET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(seed)
    export_model(module.Model(), folder / str(seed), LENET.parent, torch.randn(2, 1, 32, 32))
    return load_model(folder / str(seed))


def test_lenet5s_connection_table_is_shared_and_its_members_still_train_as_alone(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = {"train_x": torch.randint(0, 255, (64, 1, 32, 32), dtype=torch.uint8, generator=g),
            "train_y": torch.randint(0, 10, (64,), generator=g),
            "test_x": torch.randint(0, 255, (16, 1, 32, 32), dtype=torch.uint8, generator=g)}
    recipe = {**RECIPE, "epochs": 1, "hflip": False}
    outcomes = train_together([replayed_lenet(s, tmp_path) for s in (4, 1, 2)], recipe, data,
                              0, 10, [lambda _: None] * 3, ensembles=True)
    lone = train_and_predict(replayed_lenet(1, tmp_path), recipe, data, 0, 10, ensembles=True)
    assert outcomes[1]["ensemble"] == 3 and lone["ensemble"] == 2
    assert same_run(outcomes[1], lone)


def test_a_model_that_cannot_be_stacked_trains_as_itself_in_any_company():
    pruned = Net(2)
    prune.custom_from_mask(pruned.conv, "weight", torch.ones_like(pruned.conv.weight))
    outcomes = together([Net(1), pruned, Net(4)])
    assert [o["ensemble"] for o in outcomes] == [2, 0, 2]
    plain = Net(2)
    prune.custom_from_mask(plain.conv, "weight", torch.ones_like(plain.conv.weight))
    assert same_run(outcomes[1], train_and_predict(plain, RECIPE, banded_images(), 0, 3))
    assert same_run(outcomes[0], alone(Net(1)))


def test_an_ensemble_that_fails_as_a_whole_gives_each_member_its_own_run(monkeypatch):
    """A failure that only a group meets (here: any ensemble of more than two) must not be
    anyone's grade: each member is trained again on its own, as it would be alone."""
    forward = members_mod.Stacked.forward

    def only_twins(self, x, num_classes):
        if self.count > 2:
            raise RuntimeError("an ensemble this size cannot step")
        return forward(self, x, num_classes)
    monkeypatch.setattr(members_mod.Stacked, "forward", only_twins)
    outcomes = together([Net(1), Net(2), Net(3)])
    assert all(o["ensemble"] == 2 for o in outcomes)
    assert same_run(outcomes[1], alone(Net(2)))


def test_models_share_a_signature_when_only_their_weights_and_source_lines_differ(tmp_path):
    from grader.worker.export import export_model
    from grader.worker.replay import load_model

    def exported(name: str, model: nn.Module, frames: bool = True):
        folder = tmp_path / name
        export_model(model, folder, tmp_path, torch.randn(2, 1, 8, 8))
        manifest = json.loads((folder / "manifest.json").read_text())
        if not frames:
            for entry in manifest["modules"]:
                for node in entry.get("graph") or []:
                    node["frames"] = []
            (folder / "manifest.json").write_text(json.dumps(manifest))
        return members_mod.signature(folder, load_model(folder))
    wider = Net(0)
    wider.fc = nn.Linear(4 * 8 * 8, 5)
    assert exported("a", Net(0)) == exported("b", Net(7)) == exported("c", Net(7), frames=False)
    assert exported("d", wider) != exported("e", Net(0))


# ------------------------------------------------------------- the whole grader, on the CLI

def comparable(result: dict) -> dict:
    """What must agree however a submission was graded (not its timing, nor its company)."""
    result.pop("duration_s")
    for check in result["checks"]:
        check["details"].pop("train_seconds", None)
        check["details"].pop("ensemble", None)
    return result


@pytest.mark.slow
def test_a_batch_of_ensembles_grades_every_student_as_grade_does_alone(tmp_path):
    assignment = tiny_assignment(tmp_path, "cifar10_cnn", (0.5, 0.1), epochs=2, batch_size=32,
                                 optimizer={"name": "adam", "lr": 0.003})
    wider = LAB.replace("nn.Linear(120, 84)", "nn.Linear(120, 90)").replace(
        "nn.Linear(84, 10)", "nn.Linear(90, 10)")
    subs = students(tmp_path, {"ann": LAB, "bob": SEEDED, "cat": wider, "dan": LAB,
                               "eve": "class Model(:\n"})
    common = ("--assignment", str(assignment), "--device", "cpu", "--ensembles", "always")
    run = grade("batch", subs, "--out", tmp_path / "out", "--jobs", "1", *common, timeout=900)
    assert run.code == 0, run.err
    for student, stepped_with in (("ann", 3), ("bob", 3), ("cat", 2), ("dan", 3)):
        graded = graded_alike(subs, tmp_path / "out", student, common)
        assert graded["checks"][-1]["details"]["ensemble"] == stepped_with, student
    assert "alone in a fresh worker" not in run.err


@pytest.mark.slow
def test_a_model_that_exhausts_the_trainer_sends_its_whole_group_to_fresh_workers(tmp_path):
    """The trainer dies with the group in it: every member is measured again alone, and only
    the greedy one is charged for it."""
    assignment = tiny_assignment(tmp_path, "cifar10_cnn", (0.5, 0.1), epochs=1, batch_size=32,
                                 optimizer={"name": "adam", "lr": 0.003})
    subs = students(tmp_path, {"ann": LAB, "greedy": GREEDY, "zed": SEEDED})
    common = ("--assignment", str(assignment), "--device", "cpu", "--ensembles", "always",
              "--memory-limit", "1G")
    run = grade("batch", subs, "--out", tmp_path / "out", "--jobs", "1", *common, timeout=900)
    assert run.code == 0, run.err
    greedy = graded_alike(subs, tmp_path / "out", "greedy", common)["checks"][-1]
    assert greedy["score"] == 0 and "killed: exceeded 1 GiB memory" in greedy["feedback"]
    for student in ("ann", "zed"):
        assert graded_alike(subs, tmp_path / "out", student, common)["checks"][-1]["score"] > 0
        assert f"measuring {subs / (student + '.py')} again, alone in a fresh worker" in run.err


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_a_batch_that_grades_side_by_side_leaves_no_process_behind(tmp_path):
    """A slot's threads wait for each other; killed, it must not wait for them to finish."""
    assignment = tiny_assignment(tmp_path, "cifar10_cnn", (0.5, 0.1), epochs=1, batch_size=32,
                                 optimizer={"name": "adam", "lr": 0.003})
    subs = students(tmp_path, {"ann": LAB, "slow": SLOW, "zed": SEEDED})
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "grader", "batch", str(subs), "--assignment",
                             str(assignment), "--out", str(out), "--jobs", "1", "--device",
                             "cpu", "--ensembles", "always"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "slow" / "key.json").exists() and time.time() < deadline and \
            len(list((out / ".running").glob("*.json"))) < 3:
        time.sleep(0.2)
    time.sleep(5)                  # the trainer is busy with the group
    below = descendants(proc.pid)
    assert len(below) >= 3, "the batch never got as far as its trainer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while any(alive(p) for p in below) and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in below if alive(p)], "processes outlived the killed batch"


SEEDED = LAB.replace("super().__init__()", "super().__init__()\n        torch.manual_seed(7)")


def students(tmp_path, files: dict[str, str]):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name, text in files.items():
        (subs / f"{name}.py").write_text(text)
    return subs


def graded_alike(subs, out, student: str, common: tuple) -> dict:
    """The student's batch result, once checked equal to `grade` of their file alone."""
    graded = json.loads((out / student / "result.json").read_text())
    single = grade(subs / f"{student}.py", "--format", "json", *common, timeout=900).json()
    assert comparable(json.loads(json.dumps(graded))) == comparable(single), student
    return graded
