"""Create empty files in the private tmpfs: no bytes, so no size cap notices, but each inode
and dentry is kernel memory."""
import os
import tempfile
import time

_folder = tempfile.mkdtemp()
for _i in range(TEST_VALUES["files"]):
    open(os.path.join(_folder, str(_i)), "w").close()
time.sleep(30)
