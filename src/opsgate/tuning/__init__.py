"""Fine-tuning: training data from datasets, LoRA adapters, their evaluation (issue 20)."""
