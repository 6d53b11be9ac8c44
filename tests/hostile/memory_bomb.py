"""Memory bomb: allocate (and touch) 64 MiB more, forever."""
_hoard = []
while True:
    _hoard.append(bytearray(b"x") * (64 << 20))
