"""Training throughput on 1 process against 2 DDP processes under torchrun (gloo, CPU).

On chips exported from the sample scene it runs, in the same run and with the same
settings, ``geogan train`` in one process (with all the cores) and
``torchrun --standalone --nproc-per-node 2 -m geogan train`` (each process with half of
them), and prints for each the seconds per optimiser step and the chips per second
(a DDP step takes a batch on every process), read from the training log, so start-up
and the final validation are left out. The ratio is chips per second of 2 processes
over 1.

On one machine's CPU cores the processes share the arithmetic that one process already
spreads over its threads; what DDP adds there is the gradient all-reduce. The gain
comes from more machines or GPUs, which this measures the overhead of.

    python benchmarks/ddp.py                   # ~3 minutes on 2 CPU cores
    python benchmarks/ddp.py --preset paper --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from geogan import ExportOptions, export_chips, write_sample_pair


def seconds_per_step(log: Path, skip: int) -> float:
    """Training seconds per step between the log line at step ``skip`` and the last."""
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    first = next(line for line in lines if line["step"] >= skip)
    last = lines[-1]
    return (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])


def train(chips: Path, out: Path, processes: int, args: argparse.Namespace) -> float:
    settings = ["train", str(chips), "-o", str(out / "m.pt"), "--preset", args.preset,
                "--steps", str(args.steps), "--val-every", str(args.steps // 4),
                "--precision", args.precision, "--device", "cpu", "--batch-size",
                str(args.batch_size)]
    threads = max(1, (os.cpu_count() or 1) // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc-per-node={processes}", "-m", "geogan", "-q"]
                if processes > 1 else [sys.executable, "-m", "geogan", "-q"])
    done = subprocess.run([*launcher, *settings], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    return seconds_per_step(out / "m-train" / "log.jsonl", args.steps // 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        pair = write_sample_pair(tmp / "scene", "sat-map", size=1024, seed=1)
        chips = tmp / "chips"
        export_chips(pair.input_path, pair.target_path, chips, ExportOptions(tile_size=256))
        print(f"pix2pix {args.preset}, batch {args.batch_size} per process, 256², "
              f"{args.precision}, {os.cpu_count()} cores, {args.steps} steps")
        results = {}
        for processes in (1, 2):
            (tmp / f"p{processes}").mkdir()
            step = train(chips, tmp / f"p{processes}", processes, args)
            chips_per_second = processes * args.batch_size / step
            results[processes] = chips_per_second
            print(f"{processes} process{'es' if processes > 1 else ''}: {step:.3f} s/step, "
                  f"{chips_per_second:.2f} chips/s")
        print(f"2 processes / 1 process: {results[2] / results[1]:.2f}x chips/s")


if __name__ == "__main__":
    main()
