"""The device-resident trainer: seeded, augmentation on the device, stops cleanly on a NaN.

Runs in-process on the CPU with small synthetic images; the GPU tests at the
end need CUDA and the real MNIST.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import SOLUTIONS, banded_images
from grader.worker.train import (DevicePipeline, TrainingStopped, load_arrays, random_crop,
                                 train_and_predict)

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPE = {"epochs": 2, "batch_size": 16, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
          "scheduler": None, "mean": [0.5], "std": [0.25], "pad": 0, "hflip": True,
          "crop_padding": 2}


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv(x)), 1))


def train(seed: int = 0, recipe: dict | None = None, model: nn.Module | None = None, **data_kw):
    torch.manual_seed(seed)
    return train_and_predict(model or Small(), recipe or RECIPE, banded_images(**data_kw), seed, 3)


def test_same_seed_gives_identical_curve_and_predictions():
    a, b = train(seed=1), train(seed=1)
    assert a["curve"] == b["curve"]
    assert np.array_equal(a["predictions"], b["predictions"])


def test_another_seed_gives_another_run():
    assert train(seed=1)["curve"] != train(seed=2)["curve"]


def test_training_learns_the_synthetic_task():
    out = train(recipe={**RECIPE, "epochs": 6, "hflip": False, "crop_padding": 0})
    assert out["curve"][-1]["loss"] < out["curve"][0]["loss"]
    labels = banded_images()["train_y"][:32].numpy()
    assert (out["predictions"][0] == labels).mean() > 0.8


class Recorder(Small):
    """Remembers which images each training batch held (image i has all pixels equal to i)."""

    def __init__(self):
        super().__init__()
        self.batches: list[list[int]] = []

    def forward(self, x):
        if self.training:
            self.batches.append(torch.round(x[:, 0, 0, 0] * 255).int().tolist())
        return super().forward(x)


def recorded_order(seed: int, n: int = 40) -> list[list[int]]:
    data = {"train_x": torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 8, 8)
            .contiguous(), "train_y": torch.zeros(n, dtype=torch.int64),
            "test_x": torch.zeros(4, 1, 8, 8, dtype=torch.uint8)}
    recipe = {**RECIPE, "epochs": 3, "batch_size": 16, "mean": [0.0], "std": [1.0],
              "hflip": False, "crop_padding": 0}
    model = Recorder()
    train_and_predict(model, recipe, data, seed, 3)
    return model.batches


def test_each_epoch_sees_every_image_once_in_a_seeded_order():
    batches = recorded_order(seed=3)
    assert [len(b) for b in batches] == [16, 16, 8] * 3  # last batch of an epoch is smaller
    epochs = [sum(batches[i:i + 3], []) for i in (0, 3, 6)]
    assert all(sorted(e) == list(range(40)) for e in epochs)
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    assert recorded_order(seed=3) == batches  # and the same order on a rerun
    assert recorded_order(seed=4) != batches


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    x = torch.rand(64, 2, 6, 7)
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    padded = F.pad(x, (2,) * 4)
    offsets = set()
    for i in range(64):
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 7])]
        assert found, f"image {i} is not a window of its padded image"
        offsets.add(found[0])
    assert len(offsets) > 10  # offsets vary from image to image


def test_pipeline_normalises_and_only_augments_training_batches():
    pipe = DevicePipeline({**RECIPE, "crop_padding": 0, "mean": [0.5], "std": [0.25]}, 1,
                          torch.device("cpu"))
    x = torch.randint(0, 256, (200, 1, 5, 5), dtype=torch.uint8)
    expected = (x.float() / 255 - 0.5) / 0.25
    assert torch.allclose(pipe(x, None), expected)  # test images: normalised, never flipped
    out = pipe(x, torch.Generator().manual_seed(0))
    flipped = [not torch.allclose(o, e) for o, e in zip(out, expected)]
    assert all(torch.allclose(o, e.flip(2)) for o, e, f in zip(out, expected, flipped) if f)
    assert 70 < sum(flipped) < 130  # about half


def test_pad_grows_images_before_normalising():
    pipe = DevicePipeline({**RECIPE, "pad": 2, "hflip": False, "crop_padding": 0}, 1,
                          torch.device("cpu"))
    out = pipe(torch.full((1, 1, 28, 28), 255, dtype=torch.uint8), None)
    assert out.shape == (1, 1, 32, 32)
    assert out[0, 0, 0, 0] == pytest.approx((0 - 0.5) / 0.25)  # padding is black, then normalised


class Diverges(Small):
    """The loss becomes infinite on its 5th training step."""

    def __init__(self):
        super().__init__()
        self.steps = 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.steps += 1
            if self.steps == 5:
                return out * float("inf")
        return out


def test_non_finite_loss_stops_training_with_finite_weights():
    model = Diverges()
    out = train(model=model)  # 96 images, batch 16: step 5 is in epoch 1
    assert out["stopped"].startswith("the loss became")
    assert out["stopped"].endswith("at epoch 1, step 5")
    assert out["curve"] and out["curve"][0]["epoch"] == 1  # the 4 good steps are reported
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert out["predictions"].shape == (2, 32)   # the test images, and them moved a pixel


def test_wrong_number_of_class_scores_is_explained():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with pytest.raises(TrainingStopped, match=r"shape \(16, 5\).*\(16, 3\)"):
        train(model=model)


class LearningRates(Small):
    """Remembers the learning rate every training step ran with."""

    def __init__(self):
        super().__init__()
        self.optimizer = None
        self.rates: list[float] = []

    def forward(self, x):
        if self.training and self.optimizer is not None:
            self.rates.append(self.optimizer.param_groups[0]["lr"])
        return super().forward(x)


def rates_under(scheduler: dict, epochs: int = 3) -> list[float]:
    import grader.worker.train as train_module

    model = LearningRates()
    make = train_module.make_optimizer

    def remember(m, recipe, steps):
        optimizer, schedule = make(m, recipe, steps)
        model.optimizer = optimizer
        return optimizer, schedule
    train_module.make_optimizer = remember
    try:
        train(model=model, recipe={**RECIPE, "epochs": epochs, "scheduler": scheduler})
    finally:
        train_module.make_optimizer = make
    return model.rates


def test_one_cycle_warms_up_to_max_lr_then_anneals_every_step():
    rates = rates_under({"name": "onecycle", "max_lr": 0.1, "pct_start": 0.25})
    assert len(rates) == 3 * 6                       # 96 images, batch 16, 3 epochs
    peak = rates.index(max(rates))
    assert rates[0] == pytest.approx(0.1 / 25)       # starts at max_lr / div_factor
    assert max(rates) == pytest.approx(0.1, rel=0.01) and 3 <= peak <= 5
    assert all(a < b for a, b in zip(rates[:peak], rates[1:peak + 1]))
    assert all(a > b for a, b in zip(rates[peak:], rates[peak + 1:]))
    assert rates[-1] < 0.1 / 25 / 100                # ends far below where it started


def test_multistep_changes_the_rate_only_between_epochs():
    rates = rates_under({"name": "multistep", "milestones": [1, 2], "gamma": 0.5})
    assert rates == [0.05] * 6 + [0.025] * 6 + [0.0125] * 6


def test_prepared_arrays_load_as_uint8_with_their_values(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(12, dtype=np.uint8).reshape(3, 4))
    data = load_arrays({"train_x": str(tmp_path / "x.npy")}, torch.device("cpu"))
    assert data["train_x"].dtype == torch.uint8 and data["train_x"][2, 3] == 11


# ---------------------------------------------------------------- GPU (device machine)

def lenet():
    spec = importlib.util.spec_from_file_location("lenet", SOLUTIONS / "lenet5_mnist" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Model


# 944 large steps with random 2-pixel shifts: 99.18% on the CPU (seed 0); the spec's own
# recipe (3 epochs, batch 256, no shifts) reaches 98.7%, enough for its 97% bar but not 99%.
FAST_LENET = {"epochs": 8, "batch_size": 512, "optimizer": {"name": "adam", "lr": 0.004},
              "scheduler": {"name": "multistep", "milestones": [5, 7], "gamma": 0.3},
              "mean": [0.1307], "std": [0.3081], "pad": 2, "crop_padding": 2}


@pytest.mark.gpu
@pytest.mark.data
def test_lenet5_reaches_99_percent_on_mnist_within_2_seconds(data_dir):
    from grader.data import prepare

    prepared = prepare("mnist", data_dir, SOLUTIONS / "lenet5_mnist")
    data = load_arrays(prepared.worker_files, torch.device("cuda"))
    torch.manual_seed(0)
    train_and_predict(lenet()(), {**FAST_LENET, "epochs": 1}, data, 0, 10)  # CUDA warm-up
    torch.manual_seed(0)
    out = train_and_predict(lenet()(), FAST_LENET, data, 0, 10)
    accuracy = (out["predictions"][0] == prepared.test_labels()).mean()
    assert accuracy >= 0.99 and out["train_seconds"] <= 2.0, (accuracy, out["train_seconds"])


@pytest.mark.gpu
def test_gpu_runs_are_repeatable():
    data = {k: v.cuda() for k, v in banded_images(n=512).items()}

    def run():
        torch.manual_seed(0)
        return train_and_predict(Small(), RECIPE, data, 0, 3)

    a, b = run(), run()
    assert a["device"].startswith("cuda") and a["curve"] == b["curve"]
    assert np.array_equal(a["predictions"], b["predictions"])
