"""training_loop: train_one_epoch and evaluate, graded by what they do to seeded problems.

The reference solution earns every point and its skeleton none. Each planted bug is the
solution with one mistake a student makes; it loses exactly the cases whose problem exposes
that mistake (counted here from the spec's own cases, so the expected points follow from what
each case is, not from a run), and the feedback says which mistake it is.
"""
from __future__ import annotations

import json

import pytest
import torch

from conftest import ASSIGNMENTS, SOLUTIONS, grade, graded_functions, spec_error
from grader.spec import load_spec
from grader.worker import fixtures

NAME = "training_loop"
SPEC = load_spec(ASSIGNMENTS / NAME / "spec.yaml")
CHECKS = {c.id: c for c in SPEC.checks}
FULL = {c.id: c.points for c in SPEC.checks}
MISTAKES = {m.reference: m.says for f in SPEC.functions for m in f.mistakes}


def cases(check_id):
    return CHECKS[check_id].options["cases"]


def arg(case, kind):
    return next(a[kind] if kind != "model" else a for a in case.args if kind in a)


def loader(case):
    return arg(case, "loader")


def ragged(case) -> bool:
    """Whether the case's last batch is smaller than the others."""
    return loader(case)["samples"] % loader(case)["batch_size"] != 0


def share(check_id, passing) -> float:
    total = cases(check_id)
    return round(CHECKS[check_id].points * sum(bool(passing(c)) for c in total) / len(total), 4)


def scores(result):
    return {c.id: c.score for c in result.checks}


def feedback(result):
    return {c.id: c.feedback for c in result.checks}


# ---------------------------------------------------------------- solution and skeleton

def test_solution_earns_every_point_and_the_skeleton_none():
    good = grade(SOLUTIONS / NAME, "--format", "json")
    assert good.code == 0, good.out + good.err
    assert good.json()["score"] == sum(FULL.values())
    assert sum(c["details"]["hidden_run"] for c in good.json()["checks"]) >= 3
    skeleton = grade(ASSIGNMENTS / NAME / f"{NAME}.py", "--assignment", NAME, "--format", "json")
    assert skeleton.code == 1
    assert skeleton.json()["score"] == 0
    assert all("a TODO is still unfinished (NotImplementedError)" in c["feedback"]
               for c in skeleton.json()["checks"])


# ---------------------------------------------------------------- train_one_epoch

ZERO_GRAD = ("        optimizer.zero_grad()\n", "")
BACKWARD_TWICE = ("        loss.backward()\n",
                  "        loss.backward(retain_graph=True)\n        loss.backward()\n")


def test_forgetting_zero_grad_loses_the_step_check(tmp_path):
    result = graded_functions(tmp_path, NAME, [ZERO_GRAD])
    # with lr 0 the weights stay, so the epoch's loss is still right: only `step` is lost
    assert scores(result) == {**FULL, "step": 0.0}
    assert MISTAKES["train_without_zero_grad"] in feedback(result)["step"]


def test_skipping_the_step_leaves_the_weights(tmp_path):
    result = graded_functions(tmp_path, NAME, [("        optimizer.step()\n", "")])
    assert scores(result) == {**FULL, "step": 0.0}
    assert MISTAKES["train_without_step"] in feedback(result)["step"]


def test_backward_twice_doubles_the_gradients(tmp_path):
    result = graded_functions(tmp_path, NAME, [BACKWARD_TWICE])
    # every step case uses SGD, where a doubled gradient doubles the step
    assert {arg(c, "optimizer") for c in cases("step")} == {"sgd"}
    assert scores(result) == {**FULL, "step": 0.0}
    assert MISTAKES["train_backward_twice"] in feedback(result)["step"]


def test_training_in_eval_mode(tmp_path):
    result = graded_functions(tmp_path, NAME, [("    model.train()\n", "")])
    # only a model handed over in eval mode notices: the others are in training mode already
    assert scores(result) == {**FULL, "step": share("step", lambda c: arg(c, "model").get("mode") != "eval")}
    assert MISTAKES["train_without_train_mode"] in feedback(result)["step"]


def test_returning_the_last_batch_loss(tmp_path):
    result = graded_functions(tmp_path, NAME, [("    return total_loss / total_samples",
                                                "    return loss.item()")])
    assert all(loader(c)["samples"] > loader(c)["batch_size"] for c in cases("epoch_loss"))
    assert scores(result) == {**FULL, "epoch_loss": 0.0}
    assert MISTAKES["train_last_batch_loss"] in feedback(result)["epoch_loss"]


def test_mean_of_batch_losses_is_wrong_only_for_a_smaller_last_batch(tmp_path):
    result = graded_functions(tmp_path, NAME, [
        ("        total_loss += loss.item() * len(labels)\n        total_samples += len(labels)",
         "        total_loss += loss.item()\n        total_samples += 1")])
    assert scores(result) == {**FULL, "epoch_loss": share("epoch_loss", lambda c: not ragged(c))}
    assert MISTAKES["train_mean_of_batch_means"] in feedback(result)["epoch_loss"]
    assert any(not ragged(c) for c in cases("epoch_loss"))   # the two means can agree


# ---------------------------------------------------------------- evaluate

def test_evaluating_in_training_mode(tmp_path):
    result = graded_functions(tmp_path, NAME, [("    model.eval()\n", "")])
    # the accuracy check's models have neither dropout nor batch norm, so only eval_mode sees it
    assert not any(layer[0] in ("Dropout", "BatchNorm1d", "BatchNorm2d")
                   for c in cases("accuracy") for layer in arg(c, "model")["model"])
    assert scores(result) == {**FULL, "eval_mode": 0.0}
    text = feedback(result)["eval_mode"]
    assert MISTAKES["evaluate_without_eval"] in text
    assert "model.training at each forward call: expected False at every call, got True" in text


def test_evaluating_with_gradients_on(tmp_path):
    result = graded_functions(tmp_path, NAME, [("    with torch.no_grad():\n", "    if True:\n")])
    assert scores(result) == {**FULL, "no_grad": 0.0}
    assert MISTAKES["evaluate_with_grad"] in feedback(result)["no_grad"]


def test_accuracy_averaged_over_batches(tmp_path):
    result = graded_functions(tmp_path, NAME, [(
        "            correct += (predicted == labels).sum().item()\n            total += len(labels)",
        "            correct += (predicted == labels).float().mean().item()\n            total += 1")])
    assert scores(result) == {**FULL, "accuracy": share("accuracy", lambda c: not ragged(c))}
    assert MISTAKES["evaluate_per_batch"] in feedback(result)["accuracy"]


def test_accuracy_in_percent(tmp_path):
    result = graded_functions(tmp_path, NAME, [("    return correct / total", "    return 100 * correct / total")])
    # eval_mode's second case compares the accuracy too
    assert scores(result) == {**FULL, "accuracy": 0.0, "eval_mode": share("eval_mode", lambda c: c.observe)}
    assert MISTAKES["evaluate_in_percent"] in feedback(result)["accuracy"]


def test_batches_left_on_the_host_in_training(tmp_path):
    result = graded_functions(tmp_path, NAME, [(
        "        inputs, labels = inputs.to(device), labels.to(device)\n        optimizer",
        "        optimizer")])
    assert scores(result) == {**FULL, "device": share("device", lambda c: c.function == "evaluate")}
    assert "whether each batch went through .to(device) before the model (and the loss) saw it: " \
           "expected True at every call, got False" in feedback(result)["device"]


def test_labels_left_on_the_host_are_seen_too(tmp_path):
    result = graded_functions(tmp_path, NAME, [(
        "        inputs, labels = inputs.to(device), labels.to(device)\n        optimizer",
        "        inputs = inputs.to(device)\n        optimizer")])
    n = loader(cases("device")[0])
    batches = -(-n["samples"] // n["batch_size"])
    assert scores(result)["device"] == share("device", lambda c: c.function == "evaluate")
    assert f"got False at {batches} of {2 * batches} calls" in feedback(result)["device"]


def test_same_submission_same_score(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = graded_functions(tmp_path / "a", NAME, [BACKWARD_TWICE])
    second = graded_functions(tmp_path / "b", NAME, [BACKWARD_TWICE])
    assert [c.to_json() for c in first.checks] == [c.to_json() for c in second.checks]


# ---------------------------------------------------------------- the objects that notice

def test_a_batch_knows_whether_it_was_moved():
    x = torch.zeros(4, 3).as_subclass(fixtures.HostBatch)
    assert isinstance(x.view(2, 6), fixtures.HostBatch)          # reshaping is not moving
    assert isinstance(x.to(torch.float64), fixtures.HostBatch)   # nor is changing the type
    for moved in (x.to("cpu"), x.to(torch.device("cpu")), x.to(device="cpu"), x.to(torch.zeros(1))):
        assert type(moved) is torch.Tensor


def test_the_model_notes_how_each_forward_ran():
    model = fixtures.build_model([["Linear", 3, 2]], weights={
        "0.weight": {"array": {"shape": [2, 3], "dtype": "float32", "values": [0.0] * 6}},
        "0.bias": {"array": {"shape": [2], "dtype": "float32", "values": [0.0] * 2}}})
    batch = torch.zeros(1, 3).as_subclass(fixtures.HostBatch)
    model(batch)
    model.eval()
    with torch.no_grad():
        model(batch.to("cpu"))
    assert model.calls == [(True, True, False), (False, False, True)]


def test_the_worker_gets_inputs_and_no_expected_values():
    from grader.checks.functions import prepare_request

    request = prepare_request(SPEC, hidden=False)
    text = json.dumps(request)
    assert "expect" not in text and "reference" not in text
    first = request["cases"][0]
    assert first["observe"] == "weights"
    assert set(first["args"][0]) == {"model", "freeze", "weights", "mode"}   # starting weights
    assert first["args"][1]["loader"]["x"]["array"]["shape"] == [loader(cases("step")[0])["samples"],
                                                                 *loader(cases("step")[0])["shape"]]


@pytest.mark.parametrize("old,new,key,words", [
    ("observe: grad_enabled", "observe: gradients", "checks[4].cases[0].observe",
     "unknown observation 'gradients'"),
    ("{optimizer: sgd, lr: 0.1}\n          - {loss: cross_entropy}\n          - {device: cpu}\n        observe: weights\n      - label: \"SGD",
     "{optimizer: sgd, lr: -0.1}\n          - {loss: cross_entropy}\n          - {device: cpu}\n        observe: weights\n      - label: \"SGD",
     "checks[0].cases[0].args[2].lr", "must be >= 0"),
    ("{loader: {samples: 40, shape: [6], classes: 3, batch_size: 8, seed: 42}}",
     "{loader: {samples: 40, shape: [6], classes: 3, batch_size: 8}}",
     "checks[4].cases[0].args[1].loader.seed", "missing"),
    ("{model: [[Linear, 6, 8], [ReLU], [Linear, 8, 3]], seed: 41}",
     "{model: [[Linear, 6, 8], [ReLU], [Linear, 8, 3]]}",
     "checks[4].cases[0].observe", "has no model with weights"),
    ("{device: cpu}\n        observe: grad_enabled", "{device: cuda}\n        observe: grad_enabled",
     "checks[4].cases[0].args[2].device", "unknown device 'cuda'"),
    ("reference: train_without_step", "reference: train_without_stepp",
     "functions[0].mistakes[1].reference", "unknown reference"),
])
def test_a_broken_training_spec_names_the_key(tmp_path, old, new, key, words):
    error = spec_error(tmp_path, NAME, old, new)
    assert error.key == key and words in str(error)


def test_security_page_states_what_the_flags_are_worth():
    """docs/SECURITY.md says how many points forged flags could buy: derived from the spec."""
    flagged = sum(c.points / len(c.options["cases"]) for c in SPEC.checks
                  for case in c.options["cases"] if case.observe in ("training_mode", "grad_enabled",
                                                                     "moved_to_device"))
    text = " ".join((SOLUTIONS.parent / "docs" / "SECURITY.md").read_text().split())
    assert f"({flagged:g} of training_loop's {sum(FULL.values()):g} points)" in text
