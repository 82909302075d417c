"""The wav2vec 2.0 model: encoder, pretraining models, CTC model, their config and objectives.

    >>> from w2v2cli.model import build_model, model_preset
    >>> model = build_model(model_preset("base"), "pretrain")      # 95,044,608 parameters
    >>> rq = build_model(model_preset("tiny_fbank_rq"), "pretrain")  # BEST-RQ (model.objective: bestrq)
    >>> ctc = build_model(model_preset("base", vocab_size=32), "ctc")
"""

from w2v2cli.model.bestrq import BestRQOutput, RandomProjectionQuantizer, Wav2Vec2ForBestRQ, stack_frames
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
    "BestRQOutput", "EncoderOutput", "GumbelVectorQuantizer", "InputShapeError", "ModelConfig", "PretrainOutput",
    "RandomProjectionQuantizer", "Wav2Vec2ForBestRQ", "Wav2Vec2ForCTC", "Wav2Vec2ForPreTraining", "Wav2Vec2Model",
    "build_model", "compute_channel_mask", "compute_span_mask", "contrastive_logits", "gumbel_temperature",
    "model_preset", "sample_negatives", "stack_frames",
]
