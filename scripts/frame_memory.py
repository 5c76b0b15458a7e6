"""Memory of Atari replay: the frame-stack buffer (each frame once) against stacked storage, per transition and at 1M.

Allocates a :class:`~rl_lightning.buffers.FrameStackReplayBuffer` for Atari frames (4 stacked 84x84 uint8) at two
capacities, fills every byte of it (so that the pages are resident), and reports the bytes it holds
(``nbytes``) and the rise of the process's resident memory. The buffer's size is linear in its capacity
(``bytes = a * capacity + b``), so the two measurements give the size at ``--target`` transitions without
allocating it: on a shared machine a 1M buffer may not fit beside others' work. The plain buffer and
Stable-Baselines3's are computed from their layouts: stacks in ``observations`` and ``next_observations``
(SB3's ``optimize_memory_usage=True`` keeps one stack per transition).

    python scripts/frame_memory.py                                  # 50k and 100k transitions, 1M extrapolated
    python scripts/frame_memory.py --capacities 100000 200000 --target 1000000

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from rl_lightning.buffers import FrameStackReplayBuffer

STACK, SIDE = 4, 84
STACK_BYTES = STACK * SIDE * SIDE
# Per transition beside the observations in SB3 and the plain buffer: action (int64), reward, done / discount,
# termination (float32 each).
OTHER_FIELDS = 8 + 3 * 4


def resident_bytes() -> int:
    """Resident memory of this process now (Linux: the second field of /proc/self/statm, in pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(capacity: int) -> dict[str, int]:
    before = resident_bytes()
    buffer = FrameStackReplayBuffer(capacity, (SIDE, SIDE), torch.uint8, STACK, "reset", (), torch.long)
    # Touch every page: zeros from the allocator may not be resident until written.
    buffer.frames.fill_(1)
    for tensor in buffer.storage.values():
        tensor.fill_(1)
    buffer._row_first_frame.fill(1)
    return {"capacity": capacity, "nbytes": buffer.nbytes, "resident_rise": resident_bytes() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacities", type=int, nargs=2, default=(50_000, 100_000))
    parser.add_argument("--target", type=int, default=1_000_000)
    args = parser.parse_args()
    small, large = (measure(capacity) for capacity in args.capacities)
    per_transition = (large["nbytes"] - small["nbytes"]) / (large["capacity"] - small["capacity"])
    offset = large["nbytes"] - per_transition * large["capacity"]
    print(
        json.dumps(
            {
                "measured": [small, large],
                "frame_stack_bytes_per_transition": round(per_transition, 1),
                f"frame_stack_GB_at_{args.target}": round((per_transition * args.target + offset) / 1e9, 2),
                f"plain_buffer_GB_at_{args.target}": round((2 * STACK_BYTES + OTHER_FIELDS) * args.target / 1e9, 2),
                f"sb3_optimize_memory_usage_GB_at_{args.target}": round(
                    (STACK_BYTES + OTHER_FIELDS) * args.target / 1e9, 2
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
