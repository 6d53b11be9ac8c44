"""data_pipeline: to_tensor, normalize, layouts, colour order and transforms against torchvision.

The reference solution earns every point and its skeleton none; each planted bug loses exactly
the cases that can show it (counted from the spec's own inputs: a reshape hides nowhere, the
width-axis mistake only in an image as wide as it has channels, `[:, :, ::-1]` only in a
batch), with the mistake named in the feedback.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from conftest import ASSIGNMENTS, SOLUTIONS, grade, graded_functions, spec_error
from grader.spec import load_spec
from grader.worker.fixtures import apply_to_images

NAME = "data_pipeline"
SPEC = load_spec(ASSIGNMENTS / NAME / "spec.yaml")
CHECKS = {c.id: c for c in SPEC.checks}
FULL = {c.id: c.points for c in SPEC.checks}
MISTAKES = {m.reference: m.says for f in SPEC.functions for m in f.mistakes}
TO_TENSOR = "    return torch.from_numpy(image).permute(2, 0, 1).float() / 255.0"
AUGMENT = ("    steps = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] "
           "if train else []")


def shape_of(raw) -> tuple[int, ...]:
    return tuple(raw["random"]) if "random" in raw else np.shape(raw["tensor"])


def share(check_id, passing) -> float:
    cases = CHECKS[check_id].options["cases"]
    return round(CHECKS[check_id].points * sum(bool(passing(c)) for c in cases) / len(cases), 4)


def scores(result):
    return {c.id: c.score for c in result.checks}


def feedback(result, check_id):
    return next(c.feedback for c in result.checks if c.id == check_id)


def test_solution_earns_every_point_and_the_skeleton_none():
    good = grade(SOLUTIONS / NAME, "--format", "json")
    assert good.code == 0, good.out + good.err
    assert good.json()["score"] == sum(FULL.values())
    skeleton = grade(ASSIGNMENTS / NAME / f"{NAME}.py", "--assignment", NAME, "--format", "json")
    assert skeleton.code == 1 and skeleton.json()["score"] == 0


def test_forgetting_to_divide_by_255(tmp_path):
    result = graded_functions(tmp_path, NAME, [(TO_TENSOR, TO_TENSOR.replace(" / 255.0", ""))])
    # every case has a pixel above 1, so every case fails
    assert scores(result) == {**FULL, "to_tensor": 0.0}
    assert MISTAKES["to_tensor_without_scaling"] in feedback(result, "to_tensor")
    assert "expected 1.0, got 255.0" in feedback(result, "to_tensor")   # the white pixel


def test_reshape_instead_of_permute(tmp_path):
    result = graded_functions(tmp_path, NAME, [
        (TO_TENSOR, "    h, w, c = image.shape\n    return torch.from_numpy(image).reshape(c, h, w).float() / 255.0")])
    # a one-channel image is the only one a reshape cannot scramble
    assert scores(result) == {**FULL, "to_tensor": share("to_tensor", lambda c: shape_of(c.args[0])[-1] == 1)}
    assert MISTAKES["to_tensor_by_reshape"] in feedback(result, "to_tensor")


def test_statistics_along_the_width(tmp_path):
    result = graded_functions(tmp_path, NAME, [
        ("    mean = torch.as_tensor(mean, dtype=x.dtype).view(-1, 1, 1)\n"
         "    std = torch.as_tensor(std, dtype=x.dtype).view(-1, 1, 1)\n",
         "    mean = torch.as_tensor(mean, dtype=x.dtype)\n    std = torch.as_tensor(std, dtype=x.dtype)\n")])

    def survives(case):   # equal statistics in every channel, or a single channel
        return len(set(case.args[1])) == 1 and len(set(case.args[2])) == 1

    assert scores(result) == {**FULL, "normalize": share("normalize", survives)}
    text = feedback(result, "normalize")
    assert "RuntimeError" in text                      # 5 wide, 3 channels: shapes clash
    assert MISTAKES["normalize_along_width"] in text   # 3 wide: runs, and is wrong


def test_reshape_instead_of_transpose_for_a_batch(tmp_path):
    result = graded_functions(tmp_path, NAME, [(
        "    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))",
        "    n, h, w, c = images.shape\n    return torch.from_numpy(images.reshape(n, c, h, w))")])
    assert scores(result) == {**FULL, "layouts": share("layouts", lambda c: c.function != "nhwc_to_nchw")}
    assert MISTAKES["nhwc_to_nchw_by_reshape"] in feedback(result, "layouts")


def test_reversing_the_third_axis_fails_only_for_a_batch(tmp_path):
    result = graded_functions(tmp_path, NAME, [("    return image[..., ::-1].copy()",
                                                "    return image[:, :, ::-1].copy()")])
    assert scores(result) == {**FULL, "layouts": share(
        "layouts", lambda c: c.function != "bgr_to_rgb" or len(shape_of(c.args[0])) == 3)}
    assert MISTAKES["bgr_to_rgb_third_axis"] in feedback(result, "layouts")


def test_augmenting_the_test_set(tmp_path):
    result = graded_functions(tmp_path, NAME, [(AUGMENT, AUGMENT.removesuffix(" if train else []"))])
    assert scores(result) == {**FULL, "transforms": share("transforms", lambda c: c.args[0])}
    assert MISTAKES["transforms_augment_always"] in feedback(result, "transforms")


def test_no_augmentation_for_training(tmp_path):
    result = graded_functions(tmp_path, NAME, [(AUGMENT, "    steps = []")])
    assert scores(result) == {**FULL, "transforms": share("transforms", lambda c: not c.args[0])}
    assert MISTAKES["transforms_augment_never"] in feedback(result, "transforms")


def test_flipping_before_cropping_is_accepted(tmp_path):
    result = graded_functions(tmp_path, NAME, [(
        AUGMENT, AUGMENT.replace("transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()",
                                 "transforms.RandomHorizontalFlip(), transforms.RandomCrop(32, padding=4)"))])
    assert scores(result) == FULL


def test_torchvision_v2_gives_the_same_tensors():
    """Students may write transforms.v2; it draws the same random numbers in the same order."""
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    mean_std = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    v1 = load_solution().build_transforms(True)
    modern = v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToImage(),
                         v2.ToDtype(torch.float32, scale=True), v2.Normalize(*mean_std)])
    assert torch.allclose(apply_to_images(v1, images, 4), apply_to_images(modern, images, 4), atol=1e-6)


def test_training_transforms_give_crops_of_the_padded_image_and_flips():
    """What the transforms case expects, seen directly: every draw is one of the 9 x 9 crops of
    the image padded by 4, mirrored or not, normalised to [-1, 1]; the test draw is the image."""
    image = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    plain = torch.from_numpy(image[0]).permute(2, 0, 1).float() / 255 * 2 - 1
    padded = torch.nn.functional.pad(plain, (4, 4, 4, 4), value=-1.0)   # black is -1 after Normalize
    crops = [c for dy in range(9) for dx in range(9)
             for c in (padded[:, dy:dy + 32, dx:dx + 32], padded[:, dy:dy + 32, dx:dx + 32].flip(2))]
    draws = apply_to_images(load_solution().build_transforms(True), image, 12)[0]
    found = [next(i for i, c in enumerate(crops) if torch.allclose(d, c, atol=1e-6)) for d in draws]
    assert len(set(found)) > 1 and {i % 2 for i in found} == {0, 1}   # positions vary, both flips
    test = apply_to_images(load_solution().build_transforms(False), image, 3)[0]
    assert all(torch.allclose(t, plain, atol=1e-6) for t in test)


def load_solution():
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("data_pipeline_solution",
                                                         SOLUTIONS / NAME / f"{NAME}.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("old,new,key,words", [
    ("dtype: uint8}\n          draws: 3", "dtype: float32}\n          draws: 3",
     "checks[3].cases[0].observe.apply_to", "must be random uint8 images"),
    ("draws: 3", "draws: 0", "checks[3].cases[0].observe.draws", "must be > 0"),
    ("accept: [transforms_flip_first]", "accept: [flip_first]", "functions[4].accept[0]",
     "unknown reference 'flip_first'"),
    ("as: numpy}]\n        expect: {tensor: [[[0.0", "as: array}]\n        expect: {tensor: [[[0.0",
     "checks[0].cases[0].args[0].as", "unknown kind 'array'"),
])
def test_a_broken_pipeline_spec_names_the_key(tmp_path, old, new, key, words):
    error = spec_error(tmp_path, NAME, old, new)
    assert error.key == key and words in str(error)
