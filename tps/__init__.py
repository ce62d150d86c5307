"""Kinetics-TPS: vocabulary, file formats, the exact scorer, labels, drawing and synthetic data."""
