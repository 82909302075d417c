"""Data: audio corpora -> manifests -> datasets, samplers and batches."""
