"""The worker: the only place student code runs (DESIGN.md invariant 1).

It is started as `python -m grader.worker JOB_DIR` in a child process. It
imports the submission, measures what the request asks for (module tree,
traced shapes, function outputs, test-set predictions after training) and
writes raw measurements as JSON and .npy files. It never sees test labels and
never scores anything: the parent does that.
"""
