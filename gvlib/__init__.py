"""gvlib: the loops and kernels behind the book that reproduces *Mind the Gap* (Song et al., ICLR 2025).

Modules
-------
metrics    the paper's definitions (§2, §3): gap, relative gap, pass@k, log-linear fit, bootstrap CIs, ROC AUC,
           a filter's (TPR, FPR) and the gap they predict
analysis   the verification study (§6): threshold sweeps, tournament rounds, overlap, AND-ensembles, budgets
tasks      tasks with prompts, answer extraction and utilities (GSM8K, MATH, NQ-open, Sudoku, organism)
backends   samplers and scorers behind one interface (transformers on CPU/GPU, vLLM on GPUs)
organism   a family of tiny language models trained from scratch on the CPU
plan       compute, GPU-hours, memory and disk of a paper-scale run, before it starts
launch     a notebook's models (and replicas) at once on disjoint GPU sets, then the notebook
build      the book: the organism, the notebooks through papermill, the HTML
"""

__version__ = "0.1.0"
