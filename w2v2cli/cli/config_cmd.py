"""`w2v2 config show NAME`: print a training preset (or a config file, resolved) as YAML.

    w2v2 config show base
    w2v2 config show tiny --set optim.lr=1e-3
    w2v2 config list
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
import yaml

config_app = typer.Typer(help="Show training configurations (presets: tiny, base, large, xlsr, base_10m ...).",
                         no_args_is_help=True)


@config_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Preset name or FILE.yaml.")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override KEY=VALUE; repeatable.")] = None,
) -> None:
    """Print the resolved configuration as YAML.

    Example: w2v2 config show base --set optim.update_freq=8
    """
    from w2v2cli.config import to_dict
    from w2v2cli.train.config import load_train_config

    cfg = load_train_config(name, set_ or [])
    typer.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False), nl=False)


@config_app.command("list")
def list_presets() -> None:
    """List the preset names. Example: w2v2 config list"""
    from w2v2cli.train.config import TRAIN_PRESETS, training_preset

    for name in TRAIN_PRESETS:
        cfg = training_preset(name)
        typer.echo(f"{name}\t{cfg.task.name}\tlr={cfg.optim.lr:g}\tupdates={cfg.optim.max_updates}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
