"""Training curves of a run directory (DIR/metrics.jsonl) as one PNG.

    >>> png = plot_run("exp/pt")                 # exp/pt/curves.png: loss, accuracy, perplexities, lr, ...

matplotlib is an optional extra (`pip install matplotlib`, or `pip install w2v2[plot]`).
"""

from __future__ import annotations

import os
from pathlib import Path

from w2v2cli.errors import DataError, ToolMissingError
from w2v2cli.textio import atomic_path
from w2v2cli.train.logging import METRICS_FILE, read_metrics

# (metric keys drawn together, panel title)
PANELS = [
    (("loss", "contrastive"), "loss (nats per item)"),
    (("accuracy",), "accuracy (masked frames)"),
    (("code_perplexity", "prob_perplexity"), "code perplexity"),
    (("wer", "cer"), "error rate"),
    (("temperature",), "Gumbel temperature"),
    (("lr",), "learning rate"),
    (("grad_norm",), "gradient norm"),
    (("audio_s_per_s",), "throughput (audio s / s)"),
]


def series(records: list[dict], split: str, key: str) -> tuple[list[int], list[float]]:
    """(updates, values) of one metric; the last record per update wins."""
    points: dict[int, float] = {}
    for r in records:
        if r.get("split") == split and isinstance(r.get(key), (int, float)):
            points[int(r["update"])] = float(r[key])
    xs = sorted(points)
    return xs, [points[x] for x in xs]


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ToolMissingError("plotting needs matplotlib, which is not installed",
                               hint="pip install matplotlib") from err
    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    if not records:
        raise DataError(f"no training metrics in {run_dir / METRICS_FILE}",
                        hint="point at a run directory written by `w2v2 pretrain` or `w2v2 finetune`")
    panels = [(keys, title) for keys, title in PANELS
              if any(series(records, s, k)[0] for k in keys for s in ("train", "valid"))]
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.2 * rows), squeeze=False)
    for ax, (keys, title) in zip(axes.flat, panels):
        for key in keys:
            for split, style in (("train", "-"), ("valid", "o--")):
                xs, ys = series(records, split, key)
                if xs:
                    ax.plot(xs, ys, style, label=f"{split} {key}", markersize=3)
        ax.set_title(title)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(str(run_dir))
    fig.tight_layout()
    out = Path(out) if out else run_dir / "curves.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out
