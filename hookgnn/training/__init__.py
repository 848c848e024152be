"""Training and evaluating neural algorithmic reasoners.

    config  ->  build_model  ->  train (data -> losses -> Adam)  ->  evaluate_model (metrics)  ->  checkpoint

>>> from hookgnn.training import TrainConfig, evaluate_model, train
>>> model, history = train(TrainConfig(task="bfs", d_hidden=8, max_steps=8, sizes=(5,), batch_size=2, steps=2,
...                                    sampler_kwargs={"p": 0.5}, progress=False))
>>> from hookgnn.tasks import get_task
>>> metrics = evaluate_model(model, "bfs", get_task("bfs").sample(2, "path", seed=0, n=5))
>>> "pi.accuracy" in metrics
True
"""

from hookgnn.metrics.features import feature_metrics, item_correct, pointer_sources, primary_metric
from hookgnn.training.checkpoint import Checkpoint, CheckpointError, checkpoint_dict, load_checkpoint, save_checkpoint
from hookgnn.training.config import (
    ROUND_POLICIES,
    ConfigError,
    TrainConfig,
    build_model,
    input_widths,
    model_config,
    model_from_config,
    num_rounds,
)
from hookgnn.training.data import sample_batch
from hookgnn.training.evaluate import evaluate, evaluate_model
from hookgnn.training.loop import l1_penalty, teacher_forcing_prob, train
from hookgnn.training.losses import hint_loss, hint_loss_sum, item_losses, loss_sums, output_loss, task_loss

__all__ = [
    "ROUND_POLICIES",
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "TrainConfig",
    "build_model",
    "checkpoint_dict",
    "evaluate",
    "evaluate_model",
    "feature_metrics",
    "hint_loss",
    "hint_loss_sum",
    "input_widths",
    "item_correct",
    "item_losses",
    "l1_penalty",
    "load_checkpoint",
    "loss_sums",
    "model_config",
    "model_from_config",
    "num_rounds",
    "output_loss",
    "pointer_sources",
    "primary_metric",
    "sample_batch",
    "save_checkpoint",
    "task_loss",
    "teacher_forcing_prob",
    "train",
]
