"""Write the demo's reference checkpoint, ``hookgnn/data/demo_reference.pt`` (not a test).

Trains the model ``hookgnn demo --train`` trains (:func:`hookgnn.cli.demo.demo_config`: an MPNN on
Bellman-Ford, 400 steps, seed 0) and saves it with :func:`hookgnn.training.save_checkpoint`
(plain tensors and data: ``torch.load(..., weights_only=True)`` reads it). Training depends
on the CPU's torch code path and thread count, so a file written on another machine can
differ; the analyses ``hookgnn demo`` runs on one given file do not. After writing a new
file, run ``hookgnn demo --out out/demo > tests/data/demo_stdout.txt`` and paste that block
into the README's main-job section (``make demo-check`` compares them).

    python scripts/make_demo_reference.py                # hookgnn/data/demo_reference.pt
    python scripts/make_demo_reference.py --out ref.pt --seed 1
"""

from __future__ import annotations

import argparse
import time

import torch

from hookgnn.cli.demo import REFERENCE, demo_config, machine_header
from hookgnn.ops.threads import use_threads
from hookgnn.training import evaluate_model, save_checkpoint, train
from hookgnn.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REFERENCE), help=f"where to write it (default {REFERENCE})")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0, the reference)")
    parser.add_argument("--steps", type=int, default=400, help="training steps (default 400, the reference)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the demo)")
    args = parser.parse_args()
    config = demo_config(seed=args.seed, train_steps=args.steps)
    with use_threads(args.threads):
        print(machine_header(args.threads))
        start = time.perf_counter()
        model, history = train(config)
        model.eval()
        task = get_task(config.task)
        test = task.sample(32, "erdos_renyi", seed=args.seed + 1012, n=12, p=0.3)
        metrics = evaluate_model(model, task, test, rounds=config.rounds)
    save_checkpoint(args.out, model, config.task, config, metrics)
    print(f"trained in {time.perf_counter() - start:.1f} s, loss {history[0]['loss']:.3f} -> "
          f"{history[-1]['loss']:.3f}, predecessor accuracy at n=12 {metrics['pi.accuracy']:.3f}; wrote {args.out} "
          f"({torch.load(args.out, weights_only=True)['format']})")


if __name__ == "__main__":
    main()
