"""fsvae: Park (2021), "Improving Fashion Style Classification Accuracy using VAE in Class
Imbalance Problem", as code: data and GFSL split, backbone -> beta-VAE -> classifier, metrics.

Imports torch and torchvision only; Ray, Optuna and MLflow live in `study`.
"""

__version__ = "0.1.0"
