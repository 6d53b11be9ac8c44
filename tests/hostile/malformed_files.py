"""Break the parent with what the worker writes: every stage file this process writes is
replaced by something a careless reader chokes on (TEST_VALUES["kind"] says what)."""
import json
import os

import grader.protocol as _protocol

_kind = TEST_VALUES["kind"]


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    if _kind == "deep":
        text = "[" * 200_000 + "]" * 200_000
    elif _kind == "wrong_types":
        text = json.dumps({"ok": False, "error": "x"} if path.name != "load.json" else
                          {"ok": True, "torch": ["not", "a", "version"]})
    elif _kind == "nan":
        text = '{"ok": true, "torch": NaN, "names": [Infinity]}'
    elif _kind == "huge_numbers":
        text = json.dumps({"ok": True, "torch": "2.0", "modules": 10 ** 400})
    else:
        text = "\xff\xfe not json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    os.replace(tmp, path)


_protocol.write_json_atomic = _write
