#!/usr/bin/env python3
"""CPU time to create a small file and remove it again, on the filesystem of
each directory given, as JSON: {"<dir>": {"fs": type, "create_us": µs,
"remove_us": µs}}. make bench runs it on its work directory (the one the
engine's data and the consumer benches' logs live on) and on /dev/shm: each
part the engine writes is a directory of files, so the price of a file on
this machine's disk is part of the price of every insert and merge."""
import json
import os
import subprocess
import sys
import tempfile
import time

FILES = 3000  # per round
ROUNDS = 3    # the median round is reported


def measure(parent):
    d = tempfile.mkdtemp(prefix="filecreate-", dir=parent)
    creates, removes = [], []
    try:
        for r in range(ROUNDS):
            names = [os.path.join(d, f"{r}-{i}") for i in range(FILES)]
            t = time.process_time()
            for n in names:
                fd = os.open(n, os.O_CREAT | os.O_WRONLY, 0o600)
                os.write(fd, b"x" * 128)
                os.close(fd)
            creates.append((time.process_time() - t) / FILES * 1e6)
            t = time.process_time()
            for n in names:
                os.remove(n)
            removes.append((time.process_time() - t) / FILES * 1e6)
    finally:
        os.rmdir(d)
    fs = subprocess.run(["stat", "-f", "-c", "%T", parent], capture_output=True, text=True).stdout.strip()
    return {"fs": fs, "create_us": sorted(creates)[ROUNDS // 2], "remove_us": sorted(removes)[ROUNDS // 2]}


print(json.dumps({p: measure(p) for p in sys.argv[1:] if os.path.isdir(p)}))
