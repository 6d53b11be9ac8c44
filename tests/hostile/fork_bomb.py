"""Fork bomb: every process forks, generation after generation, then spins.

Bounded (2 ** TEST_VALUES["generations"] processes at most), so that a broken sandbox makes
the test fail instead of taking the test machine down.
"""
import os

for _ in range(TEST_VALUES["generations"]):
    try:
        os.fork()
    except OSError:
        pass
while True:
    pass
