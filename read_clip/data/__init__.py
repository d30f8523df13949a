"""Readers of the training data in its upstream formats."""
