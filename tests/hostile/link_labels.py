"""Plant a link where the grader reads predictions, pointing at the cached test labels.

The attacker cannot see the labels (they are not in the sandbox) but can guess their path on
the grading machine (TEST_VALUES["label_path"]). It reports that the model could not be
exported, claims training succeeded, makes out/predictions.npy a symbolic link to the labels,
and exits before the worker can write anything honest: a parent that followed the link would
score the labels against themselves.
"""
import json
import os
import sys
from pathlib import Path

_out = Path(sys.argv[1]) / "out"
_claims = {"load": {"ok": True, "names": ["Model"], "torch": "2"},
           "model": {"ok": True, "class": "Model", "modules": []},
           "export": {"ok": False, "error": {"type": "ArtifactError", "message": "untraceable"}},
           "train": {"ok": True, "curve": [], "stopped": None, "train_seconds": 1.0,
                     "device": "cpu", "torch": "2"}}
for _stage, _data in _claims.items():
    (_out / f"{_stage}.json").write_text(json.dumps(_data))
os.symlink(TEST_VALUES["label_path"], _out / "predictions.npy")
os._exit(0)
