"""gvlib: the loops and kernels behind the book that reproduces *Mind the Gap* (Song et al., ICLR 2025).

Modules
-------
metrics    the paper's definitions (§2, §3): gap, relative gap, pass@k, log-linear fit, bootstrap CIs
tasks      tasks with prompts, answer extraction and utilities (GSM8K, MATH, NQ-open, Sudoku, organism)
backends   samplers and scorers behind one interface (transformers on CPU/GPU, vLLM on GPUs)
organism   a family of tiny language models trained from scratch on the CPU
"""

__version__ = "0.1.0"
