"""Choosing a recipe: comparisons over seeds, the learning-rate range test, reports."""
