"""Synthetic training data: procedural scenes, ray casting, rendering, attributes and training examples."""
