"""Kinetics-TPS: vocabulary, the scorer's file formats, the exact scorer, labels and synthetic data."""
