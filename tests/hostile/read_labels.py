"""Look for the test labels on disk; finding them makes importing fail with what was found.

Where the labels can be read, the import error carries them into the report (so the test
can see that they were reachable); inside the sandbox they are not there at all.
"""
import glob

import numpy as np

for _pattern in TEST_VALUES["label_globs"]:
    for _path in glob.glob(_pattern):
        try:
            _data = np.load(_path, allow_pickle=False)
            _labels = _data["y_test"] if _path.endswith(".npz") else _data
        except (OSError, ValueError, KeyError):
            continue
        if _labels.shape == (TEST_VALUES["n_test"],):
            raise RuntimeError(f"found the test labels: {_labels[:8].tolist()}")
