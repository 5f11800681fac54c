"""The experiment layer as a library: protocols and seed-free runs, sweeps (warm pool, Slurm jobs), result tables and
figures, analyses (feature shift, corruption, LAMM continual), serving (predict, export) and maintenance (cache, bench,
GPU check, toy CLIP). It parses no command lines and never imports ``tools`` or the ``train`` script; the command lines
are ``python -m tools.<name>``."""
