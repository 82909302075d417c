"""The wav2vec 2.0 model: encoder, pretraining model, CTC model, their config and objectives.

    >>> from w2v2cli.model import build_model, model_preset
    >>> model = build_model(model_preset("base"), "pretrain")      # 95,044,608 parameters
    >>> ctc = build_model(model_preset("base", vocab_size=32), "ctc")
"""

from w2v2cli.model.components import InputShapeError
from w2v2cli.model.config import ModelConfig, model_preset
from w2v2cli.model.masking import compute_channel_mask, compute_span_mask, sample_negatives
from w2v2cli.model.quantizer import GumbelVectorQuantizer, gumbel_temperature
from w2v2cli.model.wav2vec2 import (
    EncoderOutput,
    PretrainOutput,
    Wav2Vec2ForCTC,
    Wav2Vec2ForPreTraining,
    Wav2Vec2Model,
    build_model,
    contrastive_logits,
)

__all__ = [
    "EncoderOutput", "GumbelVectorQuantizer", "InputShapeError", "ModelConfig", "PretrainOutput",
    "Wav2Vec2ForCTC", "Wav2Vec2ForPreTraining", "Wav2Vec2Model", "build_model", "compute_channel_mask",
    "compute_span_mask", "contrastive_logits", "gumbel_temperature", "model_preset", "sample_negatives",
]
