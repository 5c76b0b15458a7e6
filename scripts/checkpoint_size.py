"""Checkpoint size, save and load time, and peak memory while saving, for a full replay buffer of 100k transitions.

Two buffers: CartPole's (4 float32 observations) and Atari-sized frames (4x84x84 uint8 observations), both
full of synthetic transitions, saved as a checkpoint holding the buffer's ``state_dict`` (what
``OffPolicyAlgorithm`` puts in every checkpoint; networks and optimizers add little beside it), by two
writers: rl-lightning's ``AtomicCheckpointIO`` (the default) and Lightning's own ``TorchCheckpointIO``.
"Peak memory while saving" is the largest rise of the process's resident memory during the save, over
what it held just before (the buffer itself); loading reads the file back with ``weights_only=True``.
Each measurement runs in a fresh process, so that no allocation of one is reused by the next.

    python scripts/checkpoint_size.py                         # both buffers, both writers
    python scripts/checkpoint_size.py --buffers cartpole --transitions 10000
    python scripts/checkpoint_size.py --folder /mnt/disk      # write the checkpoints on another disk

Lightning's writer serialises the whole checkpoint into memory before writing it; it is skipped where the
free memory cannot hold the buffer and that copy with room to spare (the Atari buffer is 5.6 GB).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BUFFERS = {
    "cartpole": ((4,), "float32", "CartPole: 4 float32"),
    "atari": ((4, 84, 84), "uint8", "4x84x84 uint8"),
}
WRITERS = ("atomic", "lightning")


def measure(buffer_name: str, writer_name: str, transitions: int, folder: Path) -> dict[str, Any]:
    """Fill a buffer, save it with one writer, load it back; in this (fresh) process."""
    import psutil
    import torch
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    from rl_lightning.algos.checkpointing import AtomicCheckpointIO, read_checkpoint
    from rl_lightning.buffers import ReplayBuffer

    shape, dtype_name, _ = BUFFERS[buffer_name]
    dtype = getattr(torch, dtype_name)
    buffer = ReplayBuffer(transitions, shape, dtype, (), torch.long, seed=0)
    generator = torch.Generator().manual_seed(0)
    for tensor in buffer.storage.values():
        if tensor.dtype == torch.uint8:
            tensor.random_(0, 256, generator=generator)  # random frames: no compression could shrink them
        elif tensor.is_floating_point():
            tensor.normal_(generator=generator)
        else:
            tensor.random_(0, 2, generator=generator)
    buffer.size = transitions
    checkpoint = {"rl_lightning": {"buffer": buffer.state_dict()}}
    path = folder / f"{buffer_name}-{writer_name}.ckpt"
    writer = AtomicCheckpointIO() if writer_name == "atomic" else TorchCheckpointIO()

    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    saving = True

    def sample() -> None:
        nonlocal peak
        while saving:
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    writer.save_checkpoint(checkpoint, path)
    save_seconds = time.perf_counter() - started
    saving = False
    sampler.join()

    del checkpoint
    started = time.perf_counter()
    loaded = read_checkpoint(path, map_location="cpu", weights_only=True)
    load_seconds = time.perf_counter() - started
    assert torch.equal(loaded["rl_lightning"]["buffer"]["storage"]["observations"], buffer.storage["observations"])
    size = path.stat().st_size
    path.unlink()
    return {
        "buffer": buffer_name,
        "writer": writer_name,
        "transitions": transitions,
        "buffer_mib": buffer.nbytes / 2**20,
        "file_mib": size / 2**20,
        "save_s": save_seconds,
        "load_s": load_seconds,
        "peak_extra_mib": (peak - baseline) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buffers", nargs="+", choices=list(BUFFERS), default=list(BUFFERS))
    parser.add_argument("--writers", nargs="+", choices=WRITERS, default=list(WRITERS))
    parser.add_argument("--transitions", type=int, default=100_000)
    parser.add_argument("--folder", type=Path, help="where the checkpoints are written (default: a temporary one)")
    parser.add_argument("--child", nargs=2, metavar=("BUFFER", "WRITER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.transitions, args.folder)))
        return

    import psutil

    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        rows = []
        for buffer_name in args.buffers:
            shape, dtype_name, _ = BUFFERS[buffer_name]
            item_bytes = 1 if dtype_name == "uint8" else 4
            checkpoint_bytes = 2 * args.transitions * item_bytes * math.prod(shape)
            for writer_name in args.writers:
                if writer_name == "lightning" and psutil.virtual_memory().available < 2.5 * checkpoint_bytes:
                    needed = 2.5 * checkpoint_bytes / 2**30
                    print(f"skipped: {buffer_name} with Lightning's writer: needs {needed:.1f} GiB", file=sys.stderr)
                    continue
                command = [sys.executable, __file__, "--child", buffer_name, writer_name]
                command += ["--transitions", str(args.transitions), "--folder", folder]
                result = subprocess.run(command, capture_output=True, text=True, check=True)
                rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), file=sys.stderr)

    print(f"| buffer ({args.transitions} transitions) | writer | file | save | load | peak extra memory while saving |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {BUFFERS[row['buffer']][2]} | {row['writer']} | {row['file_mib']:.1f} MiB | {row['save_s']:.2f} s | "
            f"{row['load_s']:.2f} s | {row['peak_extra_mib']:.1f} MiB |"
        )


if __name__ == "__main__":
    main()
