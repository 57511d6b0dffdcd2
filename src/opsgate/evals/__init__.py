"""Evaluations: scorers (rules, embeddings, judges, the hallucination detector) and eval runs."""
