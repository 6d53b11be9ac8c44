"""Training shows its progress: a live bar on a terminal, a line per epoch in logs, stdout in
notebooks; and what the worker writes about it can never break grading."""
from __future__ import annotations

import json
import sys
import threading
import time

import nbclient
import nbformat
import pytest

from conftest import SOLUTIONS, grade, on_a_terminal, tiny_assignment
from grader import progress, protocol

RECIPE = {"epochs": 3, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.003}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_assignment(tmp_path_factory.mktemp("tiny"), "cifar10_cnn", (0.5, 0.1), **RECIPE)


def job_folder(tmp_path):
    (tmp_path / protocol.OUT_DIR).mkdir()
    return tmp_path


def test_follow_hands_each_epoch_to_the_sink_in_order(tmp_path):
    job = job_folder(tmp_path)
    writer = progress.EpochWriter(job / protocol.OUT_DIR, epochs=3)
    seen: list[progress.Epoch] = []

    def train():
        writer.start()
        for epoch in (1, 2, 3):
            time.sleep(0.3)
            writer({"epoch": epoch, "loss": 1.0 / epoch, "train_accuracy": 0.3 * epoch})

    with progress.follow([job], seen.append):
        worker = threading.Thread(target=train)
        worker.start()
        worker.join()
    assert [e.epoch for e in seen] == [0, 1, 2, 3]
    assert seen[-1].epochs == 3 and seen[-1].loss == pytest.approx(1 / 3)
    assert seen[2].describe().startswith("epoch 2/3, loss 0.500, train accuracy 60.0% (")


def test_what_is_not_an_epoch_is_passed_over(tmp_path):
    job = job_folder(tmp_path)
    lines = ['{"epoch": 1, "epochs": 2, "seconds": 1.5}', "not json", "[1, 2]",
             '{"epoch": 3, "epochs": 2, "seconds": 1}',
             '{"epoch": true, "epochs": 2, "seconds": 1}',
             '{"epoch": 2, "epochs": 2, "seconds": 2, "loss": "NaN"}',
             '{"epoch": 2, "epochs": 2, "seconds": 2.5}']
    (job / protocol.OUT_DIR / progress.FILE).write_text("\n".join(lines) + "\n" + '{"epoch": 9')
    seen: list[progress.Epoch] = []
    with progress.follow([job], seen.append):
        pass
    assert [(e.epoch, e.loss) for e in seen] == [(1, None), (2, None), (2, None)]


def test_a_link_planted_as_the_progress_file_is_not_followed(tmp_path):
    job = job_folder(tmp_path)
    secret = tmp_path / "labels.txt"
    secret.write_text('{"epoch": 1, "epochs": 1, "seconds": 0}\n')
    (job / protocol.OUT_DIR / progress.FILE).symlink_to(secret)
    seen: list[progress.Epoch] = []
    with progress.follow([job], seen.append):
        pass
    assert seen == []


@pytest.mark.slow
def test_piped_grade_prints_a_line_per_epoch_on_stderr_and_only_the_report_on_stdout(tiny):
    run = grade(SOLUTIONS / "cifar10_cnn", "--assignment", tiny, "--device", "cpu",
                "--format", "json")
    assert run.code == 0, run.err
    json.loads(run.out)
    lines = [line for line in run.err.splitlines() if line.startswith("cifar10_cnn: ")]
    assert lines[0] == "cifar10_cnn: training 3 epochs"
    assert [line.split(",")[0] for line in lines[1:]] == [
        "cifar10_cnn: epoch 1/3", "cifar10_cnn: epoch 2/3", "cifar10_cnn: epoch 3/3"]


@pytest.mark.slow
def test_a_terminal_gets_a_live_bar(tiny):
    code, screen = on_a_terminal([sys.executable, "-m", "grader", str(SOLUTIONS / "cifar10_cnn"),
                                  "--assignment", str(tiny), "--device", "cpu", "--out",
                                  str(tiny / "report.json")], timeout=600)
    assert code == 0, screen
    assert "epochs" in screen and "━" in screen          # the bar, redrawn in place
    assert "\x1b[" in screen                             # ... with the cursor moved back
    assert "cifar10_cnn: epoch 1/3" not in screen        # not the log lines


@pytest.mark.slow
def test_a_notebook_check_prints_progress_to_stdout_not_stderr(tiny, tmp_path):
    nb = nbformat.v4.new_notebook()
    model = (SOLUTIONS / "cifar10_cnn" / "model.py").read_text().split("# %%\nclass Model")[1]
    nb.cells = [nbformat.v4.new_code_cell("import torch\nfrom torch import nn\n"
                                          "import torch.nn.functional as F"),
                nbformat.v4.new_code_cell("class Model" + model),
                nbformat.v4.new_code_cell(f'from grader import nb\nnb.check("accuracy", Model, '
                                          f'assignment=r"{tiny}")')]
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = nb.cells[-1].outputs
    assert not [o for o in outputs if o.get("name") == "stderr"]
    stdout = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    assert "cifar10_cnn: epoch 3/3" in stdout
    assert float(next(o for o in outputs if o.output_type == "execute_result")
                 .data["text/plain"]) == 3.0


def test_a_notebook_without_data_gets_one_line_not_a_traceback(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        'from grader import nb\nnb.check("accuracy", assignment="cifar10_cnn")')]
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    monkeypatch.setenv("GRADER_DATA", str(tmp_path / "no-data"))     # the kernel inherits it
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        client.execute()
    error = next(o for o in nb.cells[0].outputs if o.output_type == "error")
    assert error.ename == "CannotGrade"
    assert len(error.traceback) == 1
    assert "grade download cifar10" in error.traceback[0]
