"""Leave processes behind: a plain child and a daemon that escapes its process group."""
import os
import subprocess
import sys

_sleeper = [sys.executable, "-c", "import time; time.sleep(600)", TEST_VALUES["token"]]
subprocess.Popen(_sleeper, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, _sleeper)
    os._exit(0)
os.wait()
if TEST_VALUES["then_hang"]:
    while True:
        pass
