"""Flood both output streams with tens of megabytes, then let grading go on."""
import sys

_line = (TEST_VALUES["token"] + " ") * 200 + "\n"
for _ in range(TEST_VALUES["lines"]):
    sys.stdout.write(_line)
    sys.stderr.write(_line)
