"""The hostile suite of tests/test_sandbox.py again, in a child of the fork server.

Every attack there (memory and process bombs, floods, forged files, patched graders,
leftover processes) is appended to the lab solution and graded with `--workers warm`: the
submission's code then runs in a child forked from the warm fork server, with namespaces,
mounts and a cgroup of its own, instead of a fresh bwrap. It must be contained alike: the
same score, the same reason, nothing left behind.
"""
from __future__ import annotations

import sys
import uuid

import pytest

from conftest import grade_contained, submission
from test_sandbox import CASES, FAST, honest_broken  # noqa: F401 - honest_broken is a fixture

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="bubblewrap is Linux-only")


@pytest.mark.parametrize("name", sorted(CASES))
def test_attack_is_contained_in_a_forked_child(tmp_path, name, honest_broken):  # noqa: F811
    attack = CASES[name]
    token = f"hostile-{uuid.uuid4().hex}"
    payload = name.removesuffix("_without_cgroups")
    path = submission(tmp_path, payload, {**attack.values, "token": token}, broken=attack.broken)
    graded = grade_contained(tmp_path, path, *FAST, "--timeout", "60", "--workers", "warm",
                             *attack.args, token=token, env=attack.env)
    expected = honest_broken if attack.expected == "honest" else attack.expected
    assert graded.scores == expected, graded.messages
    if attack.message is None:
        assert graded.report["notes"] == [], graded.messages
    else:
        assert attack.message in graded.messages
    assert "timed out" not in graded.messages
    assert "fresh workers" not in graded.run.err   # the fork server took it, and held
