"""Training: one loop (`Trainer`) shared by pretraining and fine-tuning, which differ only by a `Task`.

    >>> from w2v2cli.train import train, training_preset, PretrainTask
    >>> cfg = training_preset("tiny", **{"data.train": [{"path": "train.tsv"}]})
    >>> result = train(cfg, PretrainTask(cfg), out_dir="exp/pt")
"""

from w2v2cli.train.config import TrainConfig, load_train_config, training_preset, TRAIN_PRESETS  # noqa: F401
