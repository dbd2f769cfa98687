"""asc-sweep: ablation studies for acoustic scene classification."""

__version__ = "0.1.0"
