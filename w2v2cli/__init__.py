"""w2v2: a wav2vec 2.0 toolkit — manifests, pretraining, CTC fine-tuning, decoding and scoring."""

__version__ = "0.1.0"
