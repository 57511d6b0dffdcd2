"""The semantic cache: embeddings of prompts in an ANN index, looked up by similarity."""
